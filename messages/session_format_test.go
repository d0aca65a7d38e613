package messages

import (
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// The hand-written formatters agree with the layouts they replace, also before 1970 and around leap days.
func TestSessionTimeFormatsMatchLayouts(t *testing.T) {
	for _, ms := range []int64{0, 1, 999, 1626091318732, 951782399999, 951782400000, -1, -86400001, 4102444799999, 1795306411131} {
		t.Run(strconv.FormatInt(ms, 10), func(t *testing.T) {
			tm := time.UnixMilli(ms).UTC()
			if got, want := SessionID("u", "d", ms), "u_d_"+tm.Format(SessionIDTimeLayout); got != want {
				t.Fatalf("SessionID = %s, want %s", got, want)
			}
			if got, want := SessionTime(ms), tm.Format(SessionTimeLayout); got != want {
				t.Fatalf("SessionTime = %s, want %s", got, want)
			}
		})
	}
}

// A session's strings are its own: NewSession's DeviceType does not point into the event's decoded
// strings (a user actor keeps its session for minutes; the event's block would stay with it), and it
// reads as the device type given, "unknown" when none was.
func TestNewSessionKeepsNoEventString(t *testing.T) {
	ev, err := Decode([]byte(`{"user_id":"u-1","device_type":"tablet","event_timestamp":1626091318732,"event_name":"page_view"}`))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	for _, tc := range []struct{ device, want string }{{ev.DeviceType, "tablet"}, {"", UnknownDeviceType}} {
		s := NewSession("u-1", tc.device, 1626091318732)
		if s.DeviceType != tc.want || s.SessionID != "u-1_"+tc.want+"_20210712T120158.732Z" || s.SessionTime != "12:01:58" || s.UserID != "u-1" {
			t.Fatalf("NewSession = %+v, want device type %q, session id u-1_%[2]s_20210712T120158.732Z, time 12:01:58", s, tc.want)
		}
		if tc.device != "" && unsafe.StringData(s.DeviceType) == unsafe.StringData(tc.device) {
			t.Fatalf("DeviceType %q shares the event's memory", s.DeviceType)
		}
	}
}
