package messages

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Strict holds the checks a decoder at a trust boundary (the ingest API) adds to Decode's rules. They run
// in the same single scan of the record. The zero value adds nothing.
type Strict struct {
	// MaxDepth bounds the nesting of objects and arrays, the event's own object counting as 1; deeper
	// input is a *SyntaxError "nested deeper than N levels". 0: encoding/json's 10000.
	MaxDepth int
	// NoDuplicateKeys reports every key repeated within one object as a field error "duplicate key",
	// named by its path ("additional_data.price"), at most 100 per record.
	NoDuplicateKeys bool
	// Now, when not zero, is the time against which the event time is checked: at most MaxClockSkew
	// ahead (0: no limit) and at most MaxEventAge old (0: any age). The field error names timestamp or
	// event_timestamp, whichever gave the time.
	Now                       time.Time
	MaxClockSkew, MaxEventAge time.Duration
}

// check adds s's findings to the result err of Decode's own rules.
func (s *Strict) check(e *Event, err error, dups []FieldError) error {
	ve, _ := err.(*ValidationError) // decodeFields' own, never wrapped
	if err != nil && ve == nil {
		return err
	}
	var list []FieldError
	list = append(list, dups...)
	if ve != nil {
		list = append(list, ve.Errors...)
	} else if !s.Now.IsZero() {
		field := "timestamp"
		if e.Schema == SchemaLab {
			field = "event_timestamp"
		}
		now := s.Now.UnixMilli()
		switch {
		case s.MaxClockSkew > 0 && e.EventTimeMs > now+s.MaxClockSkew.Milliseconds():
			list = append(list, FieldError{Field: field,
				Reason: fmt.Sprintf("%s ahead of the server's clock (max %s)", time.Duration(e.EventTimeMs-now)*time.Millisecond, s.MaxClockSkew)})
		case s.MaxEventAge > 0 && e.EventTimeMs < now-s.MaxEventAge.Milliseconds():
			list = append(list, FieldError{Field: field, Reason: fmt.Sprintf("older than %s", s.MaxEventAge)})
		}
	}
	if len(list) == 0 {
		return nil
	}
	return &ValidationError{Errors: list}
}

// Decoded is one event that DecodeNext delimited in a larger input.
type Decoded struct {
	// Event is the decoded event; nil when the value was not a valid event.
	Event *Event
	// Raw is the value's bytes in the input.
	Raw []byte
	// ClickIDStart and ClickIDEnd delimit, in Raw, the value of the click_id member (a string with its
	// quotes, or null) so that a front door can fill in a missing id without scanning again; both -1 when
	// the event has no click_id member.
	ClickIDStart, ClickIDEnd int
}

// DecodeNext decodes the JSON value that starts at data[start] (after white space) as one event, with
// Decode's rules and s's, in one scan, and returns it with the offset just after the value. When the
// value is not valid JSON it cannot be delimited: err is a *SyntaxError (its Offset counts from the
// start of data) and the rest of data is unusable. Otherwise a value that is not a valid event — not an
// object, over MaxRecordBytes, not UTF-8, or failing a field rule — gives a *ValidationError and a
// Decoded with Raw set and Event nil, and the caller can go on at end.
func DecodeNext(data []byte, start int, s Strict) (d Decoded, end int, err error) {
	from := start
	for from < len(data) && isSpace(data[from]) {
		from++
	}
	box := new(struct {
		e  Event
		ad AdditionalData
	})
	end, click, err := decodeValue(data, from, &box.e, &box.ad, &s)
	if _, ok := err.(*SyntaxError); ok {
		return Decoded{}, end, err
	}
	d = Decoded{Raw: data[from:end], ClickIDStart: -1, ClickIDEnd: -1}
	if click[0] >= 0 {
		d.ClickIDStart, d.ClickIDEnd = click[0]-from, click[1]-from
	}
	switch {
	case len(d.Raw) > MaxRecordBytes:
		err = recordErr(fmt.Sprintf("record is too large (%d bytes, max %d)", len(d.Raw), MaxRecordBytes))
	case !utf8.Valid(d.Raw):
		err = recordErr("record is not valid UTF-8")
	}
	if err != nil {
		return d, end, err
	}
	d.Event = &box.e
	return d, end, nil
}

// DecodeStrict is Decode with s's checks added, in the same single scan.
func DecodeStrict(data []byte, s Strict) (*Event, error) {
	d, end, err := DecodeNext(data, 0, s)
	if err := whole(data, end, err); err != nil {
		return nil, err
	}
	return d.Event, nil
}
