// Package settings is the one error type for a configuration value out of range, shared by every
// library of clickfleet: the field it concerns (as the library's Config spells it) and the reason. A
// library's Validate returns one (errors.As), wrapped with the library's own sentinel (errors.Is); a
// program maps the field to its own name for it — a flag, a variable, a key of a file — and says what to
// change in its own words. Libraries never word errors in a program's terms.
package settings

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrInvalid is wrapped by every *Error.
var ErrInvalid = errors.New("settings: invalid setting")

// Error is a setting out of range.
type Error struct {
	// Field is the setting's field in the library's configuration, a dotted path for a nested one
	// ("Lease.FailoverTime").
	Field string
	// Reason says what is wrong, naming other fields as their Field paths where it compares them.
	Reason string
}

// Invalid returns the *Error for field, with the reason formatted from format and args.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Within returns err with prefix and a dot put before the field of the *Error it holds, for a
// configuration nested in another (consumer.Config's Lease); other errors are returned as they are.
func Within(prefix string, err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	return &Error{Field: prefix + "." + e.Field, Reason: e.Reason}
}

var fieldWord = regexp.MustCompile(`[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)*`)

// Rename returns e's field and reason with every field in names replaced by its name there (a flag, a
// variable), so that a program tells the user about settings in its own terms; fields not in names stay
// as they are. ok is false when e's own field is not in names.
func (e *Error) Rename(names map[string]string) (field, reason string, ok bool) {
	field, ok = names[e.Field]
	if !ok {
		field = e.Field
	}
	reason = fieldWord.ReplaceAllStringFunc(e.Reason, func(w string) string {
		if n, ok := names[w]; ok {
			return n
		}
		return w
	})
	return field, reason, ok
}
