package ingest

import (
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
		start, end := it.clickStart, it.clickEnd // found by the decoder's scan
		e := edit{item: it, start: start, end: end}
		if start < 0 {
			e.size = len(it.Data) + len(clickIDMember) + uuidTextLen
		} else {
			e.size = len(it.Data) - (end - start) + 2 + uuidTextLen
		}
		if e.size > messages.MaxRecordBytes && len(tooBig) < maxListedErrors {
			tooBig = append(tooBig, fieldError(i, "click_id", fmt.Sprintf(
				"event of %d bytes has no click_id; with the one the ingest adds it would be %d bytes, over the record limit of %d",
				len(it.Data), e.size, messages.MaxRecordBytes)))
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
