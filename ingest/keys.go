package ingest

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Key-length bounds: long enough not to be guessed by a rate-limited client, short enough for a header.
const (
	MinKeyLength = 8
	MaxKeyLength = 256
)

// Keys is a set of API keys, each with a name that may be logged and used as a metric-free label for
// the rate limiter. The keys themselves are kept only as SHA-256 digests and never appear in logs or
// errors. A Keys is immutable after construction and safe for concurrent use; a nil *Keys holds no key.
type Keys struct {
	names   []string
	digests [][sha256.Size]byte
}

// NewKeys returns a set holding keys, named "key-1", "key-2", … in order. Empty strings are skipped; a
// key shorter than MinKeyLength, longer than MaxKeyLength, or holding white space or a comma is an error
// that names its position (never its value).
func NewKeys(keys []string) (*Keys, error) {
	k := &Keys{}
	for i, key := range keys {
		key = strings.TrimSpace(key)
		if key == "" {
			continue
		}
		if err := k.add("key-"+strconv.Itoa(i+1), key); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
	}
	return k, nil
}

// ReadKeys reads a keys file: one key per line, either "KEY" or "NAME KEY" (the name is what logs show);
// blank lines and lines starting with # are ignored. Errors name the line, never the key.
func ReadKeys(r io.Reader) (*Keys, error) {
	k := &Keys{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		var name, key string
		switch len(fields) {
		case 1:
			name, key = "line-"+strconv.Itoa(line), fields[0]
		case 2:
			name, key = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("line %d: want KEY or NAME KEY, found %d words", line, len(fields))
		}
		if err := k.add(name, key); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	return k, nil
}

// LoadKeysFile reads the keys file at path (see [ReadKeys]).
func LoadKeysFile(path string) (*Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("api keys file: %w", err)
	}
	defer f.Close()
	k, err := ReadKeys(f)
	if err != nil {
		return nil, fmt.Errorf("api keys file %s: %w", path, err)
	}
	return k, nil
}

// Merge returns a set holding the keys of k and o (either may be nil).
func (k *Keys) Merge(o *Keys) *Keys {
	m := &Keys{}
	for _, s := range []*Keys{k, o} {
		if s != nil {
			m.names = append(m.names, s.names...)
			m.digests = append(m.digests, s.digests...)
		}
	}
	return m
}

func (k *Keys) add(name, key string) error {
	switch {
	case len(key) < MinKeyLength:
		return fmt.Errorf("key is shorter than %d characters", MinKeyLength)
	case len(key) > MaxKeyLength:
		return fmt.Errorf("key is longer than %d characters", MaxKeyLength)
	case strings.ContainsAny(key, " \t\r\n,"):
		return fmt.Errorf("key holds white space or a comma")
	}
	d := sha256.Sum256([]byte(key))
	for _, have := range k.digests {
		if have == d {
			return fmt.Errorf("key %s repeats an earlier key", name)
		}
	}
	k.names = append(k.names, name)
	k.digests = append(k.digests, d)
	return nil
}

// Len returns how many keys the set holds.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.digests)
}

// Lookup returns the index and name of presented when it is one of the keys. It compares digests in
// constant time and always looks at every key, so timing tells neither which key matched nor how much of
// a wrong key was right.
func (k *Keys) Lookup(presented string) (index int, name string, ok bool) {
	if k == nil {
		return -1, "", false
	}
	d := sha256.Sum256([]byte(presented))
	index = -1
	for i := range k.digests {
		if subtle.ConstantTimeCompare(d[:], k.digests[i][:]) == 1 {
			index = i
		}
	}
	if index < 0 {
		return -1, "", false
	}
	return index, k.names[index], true
}
