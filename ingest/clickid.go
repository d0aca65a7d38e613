package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"

	"github.com/clickfleet/clickfleet/messages"
)

// clickIDMember is what an event without a click_id member gets, before the closing brace: the name and
// the quotes around the id.
const clickIDMember = `,"click_id":""`

// uuidTextLen is the length of a UUID's text form.
const uuidTextLen = 36

// assignClickIDs gives every valid item whose event has no click_id (the member absent, null or "") a new
// one from newID, before anything is put: the id goes into Event.ClickID and into the item's bytes, so
// every PutRecords attempt of the event carries the same id, and a retried call that stores an event twice
// stores one id twice, which the consumer recognises. The bytes are otherwise kept as they are: a null or
// empty click_id has its value replaced in place; else the member is added as the object's last
// (`,"click_id":"<uuid>"` before the closing brace). The new bytes of all items share one allocation;
// items that have a click_id keep theirs and their bytes.
//
// It returns a *RequestError (413) naming the events that their click_id would take over
// messages.MaxRecordBytes, and newID's error (then no item is changed).
func assignClickIDs(items []Item, newID func() (uuid.UUID, error)) error {
	type edit struct {
		item       *Item
		start, end int // the click_id value to replace; start < 0: append the member
		size       int
	}
	var edits []edit
	var tooBig []FieldError
	total := 0
	for i := range items {
		it := &items[i]
		if it.Event == nil || it.Event.ClickID != "" {
			continue
		}
		start, end, err := memberValue(it.Data, "click_id")
		if err != nil { // validated already: cannot happen
			return fmt.Errorf("event %d: %w", i, err)
		}
		e := edit{item: it, start: start, end: end}
		if start < 0 {
			e.size = len(it.Data) + len(clickIDMember) + uuidTextLen
		} else {
			e.size = len(it.Data) - (end - start) + 2 + uuidTextLen
		}
		if e.size > messages.MaxRecordBytes && len(tooBig) < maxListedErrors {
			tooBig = append(tooBig, FieldError{Index: i, Field: "click_id", Reason: fmt.Sprintf(
				"event of %d bytes has no click_id; with the one the ingest adds it would be %d bytes, over the record limit of %d",
				len(it.Data), e.size, messages.MaxRecordBytes)})
		}
		edits = append(edits, e)
		total += e.size
	}
	if len(tooBig) > 0 {
		return &RequestError{Status: http.StatusRequestEntityTooLarge, Message: "events over the size limit", Errors: tooBig}
	}
	if len(edits) == 0 {
		return nil
	}
	ids := make([]string, len(edits))
	for i := range ids {
		id, err := newID()
		if err != nil {
			return fmt.Errorf("new click id: %w", err)
		}
		ids[i] = id.String()
	}
	buf := make([]byte, 0, total)
	for i, e := range edits {
		data, from := e.item.Data, len(buf)
		if e.start < 0 {
			buf = append(buf, data[:len(data)-1]...)
			buf = append(buf, clickIDMember[:len(clickIDMember)-1]...)
			buf = append(buf, ids[i]...)
			buf = append(buf, `"}`...)
		} else {
			buf = append(buf, data[:e.start]...)
			buf = append(buf, '"')
			buf = append(buf, ids[i]...)
			buf = append(buf, '"')
			buf = append(buf, data[e.end:]...)
		}
		e.item.Data = buf[from:len(buf):len(buf)]
		e.item.Event.ClickID = ids[i]
	}
	return nil
}

var errNotObject = errors.New("not a JSON object")

// memberValue returns where the value of the top-level member name of the JSON object data starts and
// ends, or -1, -1 when there is no such member. Keys are compared unescaped. data must be valid JSON
// without surrounding white space whose keys are unique (as DecodeRequest's valid items are); otherwise
// the answer is an error or the first member of that name.
func memberValue(data []byte, name string) (start, end int, err error) {
	if len(data) < 2 || data[0] != '{' || data[len(data)-1] != '}' {
		return -1, -1, errNotObject
	}
	i := skipSpace(data, 1)
	if data[i] == '}' {
		return -1, -1, nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return -1, -1, errNotObject
		}
		kend, escaped, err := scanString(data, i)
		if err != nil {
			return -1, -1, err
		}
		match := string(data[i+1:kend-1]) == name
		if escaped {
			var key string
			match = json.Unmarshal(data[i:kend], &key) == nil && key == name
		}
		i = skipSpace(data, kend)
		if i >= len(data) || data[i] != ':' {
			return -1, -1, errNotObject
		}
		vstart := skipSpace(data, i+1)
		vend, err := skipValue(data, vstart, 1)
		if err != nil {
			return -1, -1, err
		}
		if match {
			return vstart, vend, nil
		}
		i = skipSpace(data, vend)
		if i >= len(data) {
			return -1, -1, errNotObject
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return -1, -1, nil
		default:
			return -1, -1, errNotObject
		}
	}
}
