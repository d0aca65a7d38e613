package ingest

import (
	"bytes"
	"encoding/json"
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

// FieldError is one problem with one event of a request, as the 400 answer lists it.
type FieldError struct {
	// Index is the event's position in the request: its array index, or its line's position among the
	// non-blank lines of NDJSON; -1 when the request as a whole is at fault.
	Index int `json:"index"`
	// Field names the field with dots for nesting ("additional_data.price"); empty for the whole event.
	Field string `json:"field,omitempty"`
	// Reason says what is wrong.
	Reason string `json:"reason"`
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
}

// maxListedErrors bounds the field errors one answer lists.
const maxListedErrors = 100

// DecodeRequest splits body into events as format says and decodes and validates each with package
// messages, adding the checks a front door needs: no duplicate keys, nesting at most MaxDepth, the size
// and count limits and the timestamp window. It returns one Item per event, valid or not, in order. A
// *RequestError is returned when the body cannot be split (400: not JSON, truncated, trailing data, no
// events) or is over a limit (413: too many events, an event too large); then no item is usable.
// It never panics, and is safe for concurrent use.
func DecodeRequest(body []byte, format Format, lim Limits) ([]Item, error) {
	var items []Item
	var tooBig []FieldError
	add := func(data []byte) error {
		idx := len(items)
		if idx >= lim.MaxEvents {
			return &RequestError{Status: http.StatusRequestEntityTooLarge,
				Message: fmt.Sprintf("too many events: more than %d in one request", lim.MaxEvents)}
		}
		if len(data) > lim.MaxEventBytes {
			if len(tooBig) < maxListedErrors {
				tooBig = append(tooBig, FieldError{Index: idx, Reason: fmt.Sprintf("event is %d bytes, max %d", len(data), lim.MaxEventBytes)})
			}
			items = append(items, Item{Data: data})
			return nil
		}
		items = append(items, decodeItem(idx, data, lim))
		return nil
	}
	var err error
	switch format {
	case FormatJSON:
		err = splitJSON(body, add)
	case FormatNDJSON:
		err = splitNDJSON(body, add)
	default:
		err = &RequestError{Status: http.StatusUnsupportedMediaType, Message: "unknown body format"}
	}
	if err != nil {
		return nil, err
	}
	if len(tooBig) > 0 {
		return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Message: "events over the size limit", Errors: tooBig}
	}
	if len(items) == 0 {
		return nil, &RequestError{Status: http.StatusBadRequest, Message: "no events in the body"}
	}
	return items, nil
}

func splitJSON(body []byte, add func([]byte) error) error {
	i := skipSpace(body, 0)
	if i == len(body) {
		return &RequestError{Status: http.StatusBadRequest, Message: "empty body"}
	}
	switch body[i] {
	case '{':
		end, err := skipValue(body, i, 0)
		if err != nil {
			return syntaxError(-1, err)
		}
		if j := skipSpace(body, end); j != len(body) {
			return syntaxError(-1, fmt.Errorf("unexpected data after the event at byte %d", j))
		}
		return add(body[i:end])
	case '[':
		i = skipSpace(body, i+1)
		if i < len(body) && body[i] == ']' {
			if j := skipSpace(body, i+1); j != len(body) {
				return syntaxError(-1, fmt.Errorf("unexpected data after the array at byte %d", j))
			}
			return nil // no events: reported by the caller
		}
		for idx := 0; ; idx++ {
			if i >= len(body) {
				return syntaxError(idx, errEOF)
			}
			start := i
			end, err := skipValue(body, i, 1)
			if err != nil {
				return syntaxError(idx, err)
			}
			if err := add(body[start:end]); err != nil {
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

func splitNDJSON(body []byte, add func([]byte) error) error {
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
		if err := add(line); err != nil {
			return err
		}
	}
	return nil
}

func syntaxError(index int, err error) error {
	return &RequestError{Status: http.StatusBadRequest, Message: "malformed JSON",
		Errors: []FieldError{{Index: index, Reason: "invalid JSON: " + err.Error()}}}
}

// decodeItem validates one event: the structural checks of this package, then messages.Decode, then the
// timestamp window.
func decodeItem(idx int, data []byte, lim Limits) Item {
	it := Item{Data: data}
	if data[0] != '{' {
		it.Errors = []FieldError{{Index: idx, Reason: "an event must be a JSON object"}}
		return it
	}
	c := checker{idx: idx}
	if _, err := c.value(data, 0, 0, ""); err != nil {
		it.Errors = append(c.errs, FieldError{Index: idx, Reason: "invalid JSON: " + err.Error()})
		return it
	}
	ev, err := messages.Decode(data)
	if err != nil {
		var ve *messages.ValidationError
		if errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				c.errs = append(c.errs, FieldError{Index: idx, Field: fe.Field, Reason: fe.Reason})
			}
		} else {
			c.errs = append(c.errs, FieldError{Index: idx, Reason: err.Error()})
		}
	} else if !lim.Now.IsZero() {
		field := "timestamp"
		if ev.Schema == messages.SchemaLab {
			field = "event_timestamp"
		}
		now := lim.Now.UnixMilli()
		switch {
		case lim.MaxClockSkew > 0 && ev.EventTimeMs > now+lim.MaxClockSkew.Milliseconds():
			c.errs = append(c.errs, FieldError{Index: idx, Field: field,
				Reason: fmt.Sprintf("%s ahead of the server's clock (max %s)", time.Duration(ev.EventTimeMs-now)*time.Millisecond, lim.MaxClockSkew)})
		case lim.MaxEventAge > 0 && ev.EventTimeMs < now-lim.MaxEventAge.Milliseconds():
			c.errs = append(c.errs, FieldError{Index: idx, Field: field,
				Reason: fmt.Sprintf("older than %s", lim.MaxEventAge)})
		}
	}
	if len(c.errs) > 0 {
		it.Errors = c.errs
		return it
	}
	it.Event = ev
	return it
}

var errEOF = errors.New("unexpected end of input")

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

// skipValue returns the end of the JSON value starting at b[i], checking syntax and depth only.
func skipValue(b []byte, i, depth int) (int, error) {
	c := checker{idx: -1, noKeys: true}
	return c.value(b, i, depth, "")
}

// checker walks one JSON value, checking syntax, nesting depth and (unless noKeys) duplicate object keys,
// which it records as field errors.
type checker struct {
	idx    int
	noKeys bool
	errs   []FieldError
}

func (c *checker) value(b []byte, i, depth int, path string) (int, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return i, errEOF
	}
	switch b[i] {
	case '{':
		return c.object(b, i, depth+1, path)
	case '[':
		return c.array(b, i, depth+1, path)
	case '"':
		end, _, err := scanString(b, i)
		return end, err
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	default:
		if b[i] == '-' || (b[i] >= '0' && b[i] <= '9') {
			return scanNumber(b, i)
		}
		return i, fmt.Errorf("unexpected %s at byte %d", quoteByte(b[i]), i)
	}
}

func (c *checker) object(b []byte, i, depth int, path string) (int, error) {
	if depth > MaxDepth {
		return i, fmt.Errorf("nested deeper than %d levels at byte %d", MaxDepth, i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	var keys []string
	var keySet map[string]struct{}
	for {
		if i >= len(b) {
			return i, errEOF
		}
		if b[i] != '"' {
			return i, fmt.Errorf("want a key at byte %d, found %s", i, quoteByte(b[i]))
		}
		end, escaped, err := scanString(b, i)
		if err != nil {
			return end, err
		}
		if !c.noKeys {
			key := string(b[i+1 : end-1])
			if escaped {
				if err := json.Unmarshal(b[i:end], &key); err != nil {
					return i, fmt.Errorf("bad key at byte %d: %v", i, err)
				}
			}
			dup := false
			if keySet != nil {
				_, dup = keySet[key]
				keySet[key] = struct{}{}
			} else {
				for _, k := range keys {
					if k == key {
						dup = true
						break
					}
				}
				keys = append(keys, key)
				if len(keys) > 16 {
					keySet = make(map[string]struct{}, 64)
					for _, k := range keys {
						keySet[k] = struct{}{}
					}
				}
			}
			if dup && len(c.errs) < maxListedErrors {
				c.errs = append(c.errs, FieldError{Index: c.idx, Field: joinPath(path, key), Reason: "duplicate key"})
			}
			path2 := ""
			if n := skipSpace(b, skipSpace(b, end)+1); n < len(b) && (b[n] == '{' || b[n] == '[') {
				path2 = joinPath(path, key)
			}
			i = skipSpace(b, end)
			if i >= len(b) {
				return i, errEOF
			}
			if b[i] != ':' {
				return i, fmt.Errorf("want : after a key at byte %d, found %s", i, quoteByte(b[i]))
			}
			if i, err = c.value(b, i+1, depth, path2); err != nil {
				return i, err
			}
		} else {
			i = skipSpace(b, end)
			if i >= len(b) {
				return i, errEOF
			}
			if b[i] != ':' {
				return i, fmt.Errorf("want : after a key at byte %d, found %s", i, quoteByte(b[i]))
			}
			if i, err = c.value(b, i+1, depth, ""); err != nil {
				return i, err
			}
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, errEOF
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, fmt.Errorf("want , or } at byte %d, found %s", i, quoteByte(b[i]))
		}
	}
}

func (c *checker) array(b []byte, i, depth int, path string) (int, error) {
	if depth > MaxDepth {
		return i, fmt.Errorf("nested deeper than %d levels at byte %d", MaxDepth, i)
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = c.value(b, i, depth, path); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, errEOF
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			return i + 1, nil
		default:
			return i, fmt.Errorf("want , or ] at byte %d, found %s", i, quoteByte(b[i]))
		}
	}
}

func joinPath(path, key string) string {
	if len(key) > 64 {
		key = key[:64] + "..."
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// scanString returns the end (after the closing quote) of the string starting at b[i], and whether it
// holds escapes. It checks escapes and control characters; UTF-8 is checked by messages.Decode.
func scanString(b []byte, i int) (int, bool, error) {
	start := i
	escaped := false
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			i++
			if i >= len(b) {
				return i, escaped, errEOF
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return len(b), escaped, errEOF
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return i, escaped, fmt.Errorf("bad \\u escape at byte %d", i-1)
					}
				}
				i += 4
			default:
				return i, escaped, fmt.Errorf("bad escape \\%c at byte %d", b[i], i-1)
			}
		case c < 0x20:
			return i, escaped, fmt.Errorf("control character 0x%02x in a string at byte %d", c, i)
		}
	}
	return i, escaped, fmt.Errorf("unexpected end of input in the string starting at byte %d", start)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) {
		return len(b), errEOF
	}
	if string(b[i:i+len(lit)]) != lit {
		return i, fmt.Errorf("unexpected %s at byte %d", quoteByte(b[i]), i)
	}
	return i + len(lit), nil
}

func scanNumber(b []byte, i int) (int, error) {
	start := i
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, errEOF
	}
	if b[i] == '0' {
		i++
	} else if digits() == 0 {
		return i, fmt.Errorf("bad number at byte %d", start)
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return i, fmt.Errorf("bad number at byte %d", start)
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, fmt.Errorf("bad number at byte %d", start)
		}
	}
	return i, nil
}
