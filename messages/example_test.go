package messages_test

import (
	"errors"
	"fmt"

	"github.com/clickfleet/clickfleet/messages"
)

func ExampleDecode() {
	e, err := messages.Decode([]byte(`{"user_id": "user1", "event_timestamp": "1626091318000", "event_name": "checkout", "event_type": "click", "device_type": "desktop"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(e.Schema, e.UserID, e.EventName, e.DeviceType, e.EventTimeMs)
	fmt.Println(messages.SessionID(e.UserID, e.DeviceType, e.EventTimeMs))

	_, err = messages.Decode([]byte(`{"timestamp": "yesterday", "user_id": "35", "user_ip": "999.1.1.1"}`))
	var ve *messages.ValidationError
	if errors.As(err, &ve) {
		for _, fe := range ve.Errors {
			fmt.Println(fe.Field, "|", fe.Reason)
		}
	}
	fmt.Println(errors.Is(err, messages.ErrInvalid))
	// Output:
	// lab user1 checkout desktop 1626091318000
	// user1_desktop_20210712T120158.000Z
	// timestamp | not a time: "yesterday" (want "2006-01-02 15:04:05.000000" or RFC 3339)
	// event_name | missing
	// user_ip | not an IP address: "999.1.1.1"
	// true
}

func ExampleEvent_AppendJSON() {
	e, err := messages.Decode([]byte(`{"timestamp": "2021-07-12 12:01:58.732726", "user_id": 35, "event_name": "ViewContent", "user_ip": "", "additional_data": {"percent_viewed": 87}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	if e.ClickID == "" {
		e.ClickID = messages.DerivedClickID("shardId-000000000000", "1", 0)
	}
	e.Country, e.Region, e.City = "US", "California", "Riverside"
	out, err := e.AppendJSON(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(out))
	// Output:
	// {"timestamp":"2021-07-12 12:01:58.732726","user_id":"35","pixel_id":"","click_id":"20c6574b69c20cc57c5431900802defd","event_name":"ViewContent","user_ip":"","additional_data":{"percent_viewed":87},"country":"US","region":"California","city":"Riverside"}
}

func ExampleNewErrorRecord() {
	data := []byte(`{"user_id": ""}`)
	_, err := messages.Decode(data)
	r := messages.NewErrorRecord("clickstream", "shardId-000000000000", "49590338271490256608559692538361571095921575989136588898", data, err)
	fmt.Println(r.Reason)
	// Output:
	// invalid event: timestamp: missing (an event needs timestamp or event_timestamp); user_id: empty; event_name: missing
}
