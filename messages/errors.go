package messages

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalid is matched (with errors.Is) by every error [Decode] and
// [DecodeInto] return: the record is not a valid event. Such a record belongs
// on the error stream, never in a retry loop; decoding it again gives the
// same error. Unlike the other sentinels its message has no package prefix: it begins every
// [ValidationError]'s text, which is the reason stored in error records (the error stream, the lake's
// errors/ objects), and that stored text stays as it is.
var ErrInvalid = errors.New("invalid event")

// FieldError is one reason a record was rejected.
type FieldError struct {
	// Field names the offending field as it appears on the wire, with a dot
	// for nesting ("user_id", "additional_data.price"). It is empty when the
	// record as a whole is at fault (not JSON, not an object, too large, not
	// UTF-8).
	Field string `json:"field,omitempty"`
	// Reason says what is wrong, e.g. "missing", "not a string",
	// `not a time: "yesterday"`, "too long (300 bytes, max 256)".
	Reason string `json:"reason"`
}

// Error returns "field: reason", or just the reason for a record-level error.
func (f FieldError) Error() string {
	if f.Field == "" {
		return f.Reason
	}
	return f.Field + ": " + f.Reason
}

// ValidationError lists every problem found in one record, in field order.
// It unwraps to [ErrInvalid]. Use errors.As to get at the field errors.
type ValidationError struct {
	// Errors holds at least one field error.
	Errors []FieldError
}

// Error returns "invalid event: " followed by the field errors joined by "; ".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalid.Error())
	for i, f := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap returns [ErrInvalid].
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Field returns the first error about the named field and whether there is
// one. Use "" for record-level errors.
func (e *ValidationError) Field(name string) (FieldError, bool) {
	for _, f := range e.Errors {
		if f.Field == name {
			return f, true
		}
	}
	return FieldError{}, false
}

// maxQuoted bounds how much of an offending value an error message repeats.
const maxQuoted = 64

// quote returns s as a Go-quoted string, cut to maxQuoted bytes on a rune
// boundary with "..." appended when longer.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
