package messages

import (
	"bytes"
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

// SyntaxError is a JSON syntax error at a byte offset of the input; DecodeNext returns it when the value
// cannot be delimited.
type SyntaxError struct {
	// Offset is where the scanner stopped, from the start of the input given to the decoder.
	Offset int
	// Msg says what was found instead of valid JSON ("unexpected end of input looking for a value").
	Msg string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("record is not valid JSON: %s at offset %d", e.Msg, e.Offset)
}

// syntaxError is the scanner's name for SyntaxError.
type syntaxError = SyntaxError

// scanner walks JSON in data; it validates exactly RFC 8259 syntax (what
// json.Valid accepts) without building values.
type scanner struct {
	data []byte
	pos  int
	// add receives the members of a top-level "additional_data" object
	// (see object) when wantAdd is set.
	add     [nAdditional]span
	wantAdd bool
	// limit is the deepest nesting accepted (0: maxDepth); deeper input is a
	// syntax error naming the limit when it was set (Strict.MaxDepth).
	limit int
	// strict turns on duplicate-key checks: dups receives a "duplicate key"
	// field error for every key repeated within one object, named by its path.
	strict bool
	dups   fieldErrs
}

// tooDeep is the error for nesting beyond the scanner's limit.
func (s *scanner) tooDeep() error {
	if s.limit > 0 {
		return &syntaxError{Offset: s.pos, Msg: fmt.Sprintf("nested deeper than %d levels", s.limit)}
	}
	return &syntaxError{Offset: s.pos, Msg: "nesting too deep"}
}

func (s *scanner) maxNesting() int {
	if s.limit > 0 {
		return s.limit
	}
	return maxDepth
}

// maxListedDups bounds the duplicate keys one record reports.
const maxListedDups = 100

// joinPath names a member for a field error: the parent's path, a dot, the key (cut at 64 bytes).
func joinPath(path, key string) string {
	if len(key) > 64 {
		key = key[:64] + "..."
	}
	if path == "" {
		return key
	}
	return path + "." + key
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
		return &syntaxError{Offset: s.pos, Msg: "unexpected end of input " + looking}
	}
	return &syntaxError{Offset: s.pos, Msg: fmt.Sprintf("unexpected %q %s", rune(s.data[s.pos]), looking)}
}

// value scans one value after optional white space. depth is the nesting
// depth of the value's container (0 at top level); path names the value for
// duplicate-key errors (only kept when s.strict is set).
func (s *scanner) value(depth int, path string) (span, error) {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return span{}, s.fail("looking for a value")
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.str()
	case c == '{' || c == '[':
		if depth >= s.maxNesting() {
			return span{}, s.tooDeep()
		}
		var err error
		k := kindObject
		if c == '{' {
			err = s.object(depth+1, tableNone, nil, path)
		} else {
			k = kindArray
			err = s.array(depth+1, path)
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
// duplicate key wins, as in encoding/json). With s.strict set, a repeated key
// is reported under path.
func (s *scanner) object(depth, table int, out []span, path string) error {
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	var keyBuf [128]byte
	var seen []span                 // the keys so far, with s.strict set
	var seenSet map[string]struct{} // then, once there are more than 16 or one holds escapes
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
		var child string
		if s.strict {
			child = s.member(&seen, &seenSet, key, path)
		}
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
		if table == tableTop && i == fAdditionalData && s.pos < len(s.data) && s.data[s.pos] == '{' && s.wantAdd {
			// Scan additional_data's members in the same pass.
			if depth >= s.maxNesting() {
				return s.tooDeep()
			}
			s.add = [nAdditional]span{}
			v = span{start: s.pos, kind: kindObject}
			if err := s.object(depth+1, tableAdditional, s.add[:], child); err != nil {
				return err
			}
			v.end = s.pos
		} else if v, err = s.value(depth, child); err != nil {
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

// member records the key of an object member for s.strict, reporting it when the object repeats it, and
// returns the member's path when its value is an object or an array (nested duplicates are named by it),
// "" otherwise. Keys are compared as bytes against a short list of spans, then in a set once there are
// more than 16 or a key holds escapes (so a huge object costs no more than linear time).
func (s *scanner) member(seen *[]span, set *map[string]struct{}, key span, path string) string {
	k := s.data[key.start:key.end]
	if key.esc {
		k = appendUnescaped(nil, k)
	}
	if *set == nil && (key.esc || len(*seen) >= 16) {
		*set = make(map[string]struct{}, 2*len(*seen)+1)
		for _, p := range *seen {
			(*set)[string(s.data[p.start:p.end])] = struct{}{}
		}
	}
	dup := false
	if *set != nil {
		_, dup = (*set)[string(k)]
		if !dup {
			(*set)[string(k)] = struct{}{}
		}
	} else {
		for _, p := range *seen {
			if bytes.Equal(s.data[p.start:p.end], k) {
				dup = true
				break
			}
		}
		if !dup {
			*seen = append(*seen, key)
		}
	}
	if dup && len(s.dups.list) < maxListedDups {
		s.dups.add(joinPath(path, string(k)), "duplicate key")
	}
	i := s.pos
	for i < len(s.data) && isSpace(s.data[i]) {
		i++
	}
	if i < len(s.data) && (s.data[i] == '{' || s.data[i] == '[') {
		return joinPath(path, string(k))
	}
	return ""
}

// array scans an array starting at '['; its elements share its path.
func (s *scanner) array(depth int, path string) error {
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if _, err := s.value(depth, path); err != nil {
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
