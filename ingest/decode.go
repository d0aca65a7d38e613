package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/clickfleet/clickfleet/messages"
)

// Format is the shape of a request body, chosen by its Content-Type.
type Format int

// The body formats.
const (
	// FormatJSON is application/json (or any +json type): one event object, or an array of them.
	FormatJSON Format = iota + 1
	// FormatNDJSON is application/x-ndjson (also application/ndjson, application/jsonl,
	// application/x-jsonlines): one event object per line; blank lines are ignored.
	FormatNDJSON
)

// MaxDepth is the deepest nesting of objects and arrays accepted inside an event (the seed events need 2).
const MaxDepth = 32

// FormatOf returns the format named by a Content-Type header, or a *RequestError with status 415.
func FormatOf(contentType string) (Format, error) {
	if contentType == "" {
		return 0, &RequestError{Status: http.StatusUnsupportedMediaType,
			Message: "missing Content-Type: use application/json or application/x-ndjson"}
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, &RequestError{Status: http.StatusUnsupportedMediaType, Message: fmt.Sprintf("bad Content-Type %q: %v", contentType, err)}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return 0, &RequestError{Status: http.StatusUnsupportedMediaType, Message: fmt.Sprintf("charset %q: only utf-8 is accepted", cs)}
	}
	switch {
	case mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")):
		return FormatJSON, nil
	case mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl" ||
		mt == "application/x-jsonlines" || mt == "application/jsonlines":
		return FormatNDJSON, nil
	}
	return 0, &RequestError{Status: http.StatusUnsupportedMediaType,
		Message: fmt.Sprintf("Content-Type %q is not accepted: use application/json or application/x-ndjson", mt)}
}

// FieldError is one problem with one event of a request, as the 400 answer lists it: the field error of
// package messages and the event's index.
type FieldError struct {
	// Index is the event's position in the request: its array index, or its line's position among the
	// non-blank lines of NDJSON; -1 when the request as a whole is at fault.
	Index int `json:"index"`
	messages.FieldError
}

// fieldError returns the FieldError of event index about field.
func fieldError(index int, field, reason string) FieldError {
	return FieldError{Index: index, FieldError: messages.FieldError{Field: field, Reason: reason}}
}

// RequestError is a request that cannot be served as a whole: its HTTP status, a message and, when
// events are at fault, their field errors.
type RequestError struct {
	Status  int
	Message string
	Errors  []FieldError
}

func (e *RequestError) Error() string {
	if len(e.Errors) == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s (%d errors, first: index %d %s: %s)", e.Message, len(e.Errors), e.Errors[0].Index,
		e.Errors[0].Field, e.Errors[0].Reason)
}

// Limits bound what DecodeRequest accepts.
type Limits struct {
	// MaxEvents is the most events in one request. Required.
	MaxEvents int
	// MaxEventBytes is the largest event in bytes. Required.
	MaxEventBytes int
	// MaxClockSkew and MaxEventAge bound event timestamps around Now; 0 means no bound.
	MaxClockSkew, MaxEventAge time.Duration
	// Now is the time timestamps are checked against; zero means no check.
	Now time.Time
}

// Item is one event of a request.
type Item struct {
	// Data is the event's JSON, without surrounding white space: a slice of the body, not a copy.
	Data []byte
	// Event is the decoded event; nil when Errors is not empty.
	Event *messages.Event
	// Errors lists what is wrong with the event (all with this item's index).
	Errors []FieldError
	// clickStart and clickEnd delimit in Data the value of the click_id member (-1: no such member).
	clickStart, clickEnd int
}

// maxListedErrors bounds the field errors one answer lists.
const maxListedErrors = 100

// DecodeRequest splits body into events as format says and decodes and validates each with package
// messages in one scan per event, adding the checks a front door needs (messages.Strict): no duplicate
// keys, nesting at most MaxDepth, the timestamp window; and the size and count limits. It returns one
// Item per event, valid or not, in order. A *RequestError is returned when the body cannot be split
// (400: not JSON, truncated, trailing data, no events) or is over a limit (413: too many events, an event
// too large); then no item is usable. It never panics, and is safe for concurrent use.
func DecodeRequest(body []byte, format Format, lim Limits) ([]Item, error) {
	d := requestDecoder{lim: lim, strict: messages.Strict{MaxDepth: MaxDepth, NoDuplicateKeys: true,
		Now: lim.Now, MaxClockSkew: lim.MaxClockSkew, MaxEventAge: lim.MaxEventAge}}
	var err error
	switch format {
	case FormatJSON:
		err = d.splitJSON(body)
	case FormatNDJSON:
		err = d.splitNDJSON(body)
	default:
		err = &RequestError{Status: http.StatusUnsupportedMediaType, Message: "unknown body format"}
	}
	if err != nil {
		return nil, err
	}
	if len(d.tooBig) > 0 {
		return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Message: "events over the size limit", Errors: d.tooBig}
	}
	if len(d.items) == 0 {
		return nil, &RequestError{Status: http.StatusBadRequest, Message: "no events in the body"}
	}
	return d.items, nil
}

// requestDecoder collects the items of one request.
type requestDecoder struct {
	lim    Limits
	strict messages.Strict
	items  []Item
	tooBig []FieldError
}

// next decodes the event at body[i] and returns the offset after it; a *RequestError when the event
// cannot be delimited or is one too many.
func (d *requestDecoder) next(body []byte, i int) (int, error) {
	idx := len(d.items)
	if idx >= d.lim.MaxEvents {
		return i, &RequestError{Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("too many events: more than %d in one request", d.lim.MaxEvents)}
	}
	dec, end, err := messages.DecodeNext(body, i, d.strict)
	var se *messages.SyntaxError
	if errors.As(err, &se) {
		return end, syntaxError(idx, se)
	}
	it := Item{Data: dec.Raw, Event: dec.Event, clickStart: dec.ClickIDStart, clickEnd: dec.ClickIDEnd}
	switch {
	case len(it.Data) > d.lim.MaxEventBytes:
		if len(d.tooBig) < maxListedErrors {
			d.tooBig = append(d.tooBig, fieldError(idx, "", fmt.Sprintf("event is %d bytes, max %d", len(it.Data), d.lim.MaxEventBytes)))
		}
		it.Event = nil
	case it.Data[0] != '{':
		it.Errors = []FieldError{fieldError(idx, "", "an event must be a JSON object")}
	case err != nil:
		var ve *messages.ValidationError
		if errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				it.Errors = append(it.Errors, FieldError{Index: idx, FieldError: fe})
			}
		} else {
			it.Errors = []FieldError{fieldError(idx, "", err.Error())}
		}
	}
	d.items = append(d.items, it)
	return end, nil
}

func (d *requestDecoder) splitJSON(body []byte) error {
	i := skipSpace(body, 0)
	if i == len(body) {
		return &RequestError{Status: http.StatusBadRequest, Message: "empty body"}
	}
	switch body[i] {
	case '{':
		end, err := d.next(body, i)
		if err != nil {
			return err
		}
		if j := skipSpace(body, end); j != len(body) {
			return syntaxError(-1, fmt.Errorf("unexpected data after the event at byte %d", j))
		}
		return nil
	case '[':
		i = skipSpace(body, i+1)
		if i < len(body) && body[i] == ']' {
			if j := skipSpace(body, i+1); j != len(body) {
				return syntaxError(-1, fmt.Errorf("unexpected data after the array at byte %d", j))
			}
			return nil // no events: reported by the caller
		}
		for idx := 0; ; idx++ {
			end, err := d.next(body, i)
			if err != nil {
				return err
			}
			i = skipSpace(body, end)
			if i >= len(body) {
				return syntaxError(idx, errors.New("unexpected end of input: the array is not closed"))
			}
			switch body[i] {
			case ',':
				i = skipSpace(body, i+1)
			case ']':
				if j := skipSpace(body, i+1); j != len(body) {
					return syntaxError(-1, fmt.Errorf("unexpected data after the array at byte %d", j))
				}
				return nil
			default:
				return syntaxError(idx, fmt.Errorf("want , or ] after the event at byte %d, found %s", i, quoteByte(body[i])))
			}
		}
	default:
		return syntaxError(-1, fmt.Errorf("the body is not a JSON object or array (starts with %s); for one event per line use Content-Type application/x-ndjson", quoteByte(body[i])))
	}
}

// splitNDJSON decodes each non-blank line as one event. A line that is not one whole JSON value is an
// invalid event (not a malformed request): the other lines stand.
func (d *requestDecoder) splitNDJSON(body []byte) error {
	for len(body) > 0 {
		line := body
		if nl := bytes.IndexByte(body, '\n'); nl >= 0 {
			line, body = body[:nl], body[nl+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		idx := len(d.items)
		if line[0] != '{' {
			if idx >= d.lim.MaxEvents {
				_, err := d.next(line, 0) // too many
				return err
			}
			d.items = append(d.items, Item{Data: line, Errors: []FieldError{fieldError(idx, "", "an event must be a JSON object")}, clickStart: -1, clickEnd: -1})
			continue
		}
		end, err := d.next(line, 0)
		var re *RequestError
		switch {
		case errors.As(err, &re) && re.Status == http.StatusBadRequest:
			// Not JSON: this line's event is invalid.
			d.items = append(d.items, Item{Data: line, Errors: []FieldError{fieldError(idx, "", re.Errors[0].Reason)}, clickStart: -1, clickEnd: -1})
		case err != nil:
			return err
		case end != len(line):
			d.items[idx].Event = nil
			d.items[idx].Data = line
			d.items[idx].Errors = []FieldError{fieldError(idx, "", fmt.Sprintf("invalid JSON: unexpected data after the event at byte %d", skipSpace(line, end)))}
		}
	}
	return nil
}

func syntaxError(index int, err error) error {
	msg := err.Error()
	var se *messages.SyntaxError
	if errors.As(err, &se) {
		msg = fmt.Sprintf("%s at byte %d", se.Msg, se.Offset)
	}
	return &RequestError{Status: http.StatusBadRequest, Message: "malformed JSON",
		Errors: []FieldError{fieldError(index, "", "invalid JSON: "+msg)}}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
