package messages

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// kind is the JSON type of a scanned value.
type kind uint8

const (
	kindNone kind = iota // field absent
	kindString
	kindNumber
	kindObject
	kindArray
	kindBool
	kindNull
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "a string"
	case kindNumber:
		return "a number"
	case kindObject:
		return "an object"
	case kindArray:
		return "an array"
	case kindBool:
		return "a boolean"
	case kindNull:
		return "null"
	default:
		return "nothing"
	}
}

// span locates a scanned value in the input. For strings it covers the
// content between the quotes; for everything else the whole literal.
type span struct {
	start, end int
	kind       kind
	esc        bool // string content contains escapes
}

// maxDepth is encoding/json's nesting limit; deeper input is rejected as it
// is there.
const maxDepth = 10000

// syntaxError is a JSON syntax error at a byte offset.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("record is not valid JSON: %s at offset %d", e.msg, e.off)
}

// scanner walks JSON in data; it validates exactly RFC 8259 syntax (what
// json.Valid accepts) without building values.
type scanner struct {
	data []byte
	pos  int
	// add, when not nil, receives the members of a top-level
	// "additional_data" object (see object).
	add *[nAdditional]span
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) skipSpace() {
	data, i := s.data, s.pos
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	s.pos = i
}

func (s *scanner) fail(looking string) error {
	if s.pos >= len(s.data) {
		return &syntaxError{off: s.pos, msg: "unexpected end of input " + looking}
	}
	return &syntaxError{off: s.pos, msg: fmt.Sprintf("unexpected %q %s", rune(s.data[s.pos]), looking)}
}

// value scans one value after optional white space. depth is the nesting
// depth of the value's container (0 at top level).
func (s *scanner) value(depth int) (span, error) {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return span{}, s.fail("looking for a value")
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.str()
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return span{}, &syntaxError{off: s.pos, msg: "nesting too deep"}
		}
		var err error
		k := kindObject
		if c == '{' {
			err = s.object(depth+1, tableNone, nil)
		} else {
			k = kindArray
			err = s.array(depth + 1)
		}
		if err != nil {
			return span{}, err
		}
		return span{start: start, end: s.pos, kind: k}, nil
	case c == 't':
		return s.literal("true", kindBool)
	case c == 'f':
		return s.literal("false", kindBool)
	case c == 'n':
		return s.literal("null", kindNull)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	default:
		return span{}, s.fail("looking for a value")
	}
}

func (s *scanner) literal(lit string, k kind) (span, error) {
	start := s.pos
	for i := 0; i < len(lit); i++ {
		if s.pos >= len(s.data) || s.data[s.pos] != lit[i] {
			return span{}, s.fail("in literal " + lit)
		}
		s.pos++
	}
	return span{start: start, end: s.pos, kind: k}, nil
}

func (s *scanner) digits() int {
	data, i := s.data, s.pos
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	n := i - s.pos
	s.pos = i
	return n
}

func (s *scanner) number() (span, error) {
	start := s.pos
	if s.data[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case s.digits() == 0:
		return span{}, s.fail("in number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return span{}, s.fail("after decimal point in number")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return span{}, s.fail("in exponent of number")
		}
	}
	return span{start: start, end: s.pos, kind: kindNumber}, nil
}

// plainChar marks the bytes that stand for themselves inside a JSON string.
// Read-only.
var plainChar = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// str scans a string starting at its opening quote.
func (s *scanner) str() (span, error) {
	s.pos++ // opening quote
	sp := span{start: s.pos, kind: kindString}
	for s.pos < len(s.data) {
		// Fast path: plain characters.
		data, i := s.data, s.pos
		for i < len(data) && plainChar[data[i]] {
			i++
		}
		s.pos = i
		if i >= len(data) {
			break
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			sp.end = s.pos
			s.pos++
			return sp, nil
		case c == '\\':
			sp.esc = true
			s.pos++
			if s.pos >= len(s.data) {
				return span{}, s.fail("in string escape")
			}
			switch s.data[s.pos] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos++
			case 'u':
				s.pos++
				for i := 0; i < 4; i++ {
					if s.pos >= len(s.data) || !isHex(s.data[s.pos]) {
						return span{}, s.fail("in \\u escape")
					}
					s.pos++
				}
			default:
				return span{}, s.fail("in string escape")
			}
		case c < 0x20:
			return span{}, s.fail("in string literal")
		default:
			s.pos++
		}
	}
	return span{}, s.fail("in string literal")
}

// Key tables for object.
const (
	tableNone       = iota // record no members
	tableTop               // lookupField
	tableAdditional        // lookupAdditional
)

// object scans an object starting at '{'. For each member whose key the
// table maps to an index i ≥ 0, out[i] is set to the value's span (a later
// duplicate key wins, as in encoding/json).
func (s *scanner) object(depth, table int, out []span) error {
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	var keyBuf [128]byte
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.fail("looking for an object key")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail("after object key")
		}
		s.pos++
		i := -1
		if table != tableNone {
			k := s.data[key.start:key.end]
			if key.esc {
				if len(k) > len(keyBuf) {
					k = nil // too long to be a known key
				} else {
					k = appendUnescaped(keyBuf[:0], k)
				}
			}
			if table == tableTop {
				i = lookupField(k)
			} else {
				i = lookupAdditional(k)
			}
		}
		var v span
		s.skipSpace()
		if table == tableTop && i == fAdditionalData && s.pos < len(s.data) && s.data[s.pos] == '{' && s.add != nil {
			// Scan additional_data's members in the same pass.
			if depth >= maxDepth {
				return &syntaxError{off: s.pos, msg: "nesting too deep"}
			}
			*s.add = [nAdditional]span{}
			v = span{start: s.pos, kind: kindObject}
			if err := s.object(depth+1, tableAdditional, s.add[:]); err != nil {
				return err
			}
			v.end = s.pos
		} else if v, err = s.value(depth); err != nil {
			return err
		}
		if i >= 0 {
			out[i] = v
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail("after object member")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.fail("after object member")
		}
	}
}

// array scans an array starting at '['.
func (s *scanner) array(depth int) error {
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if _, err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail("after array element")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.fail("after array element")
		}
	}
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	default:
		return rune(c - 'A' + 10)
	}
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// appendUnescaped appends the unescaped form of src, the content of a string
// already validated by str. Like encoding/json it replaces unpaired
// surrogates with U+FFFD.
func appendUnescaped(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		c := src[i]
		if c != '\\' {
			j := i + 1
			for j < len(src) && src[j] != '\\' {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j
			continue
		}
		e := src[i+1]
		i += 2
		switch e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(src[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(src[i+2:])); r2 != utf8.RuneError {
						r = r2
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
	}
	return dst
}
