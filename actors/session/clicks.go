package session

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// RecentClicksSize is N, how many of a user's most recently applied click ids [RecentClicks] keeps.
//
// A copy of an event is recognised while fewer than N other events of the same user with click ids were
// applied between the original and the copy. A producer's retry (a PutRecords call that timed out after
// storing its records, sent again) puts each copy right behind the same call's originals, so the copies
// of a retried call are all dropped as long as it held at most N events of the user. Memory: N
// fingerprints of 8 bytes, 264 bytes of a User with the ring's two counters; the hash field
// [FieldRecentClicks] holds at most ceil(8N*4/3) = 342 characters.
//
// False drops: fingerprints are 64-bit hashes (xxHash64, taken as a random function of distinct ids), so
// a new click id is mistaken for one of the N in its user's window with probability at most N/2^64, about
// 1.7e-18 for N = 32: 0.17 expected false drops in 10^17 events. Windows are per user, so the number of
// users does not enter.
const RecentClicksSize = 32

// RecentClicks is a bounded window over the fingerprints of a user's most recently applied click ids:
// the last [RecentClicksSize] of them, the oldest dropped first. It is a value (no pointers inside), so
// a copy of a User is a snapshot. The zero value is empty and ready to use.
type RecentClicks struct {
	fp   [RecentClicksSize]uint64 // a ring; fp[(next+i)%N] for i < n, oldest first
	n    uint8                    // entries held
	next uint8                    // the slot the next Add writes when full (the oldest entry)
}

// ClickFingerprint returns the 64-bit fingerprint of a click id that the window keeps (xxHash64 of its
// bytes: stable across processes and versions of Go).
func ClickFingerprint(clickID string) uint64 { return xxhash.Sum64String(clickID) }

// Len returns the number of fingerprints held, at most [RecentClicksSize].
func (w *RecentClicks) Len() int { return int(w.n) }

// Contains reports whether fp is in the window.
func (w *RecentClicks) Contains(fp uint64) bool {
	for _, v := range w.fp[:w.n] {
		if v == fp {
			return true
		}
	}
	return false
}

// Add puts fp in the window as its newest entry, dropping the oldest when the window is full. It does
// not check for fp already being there.
func (w *RecentClicks) Add(fp uint64) {
	if int(w.n) < RecentClicksSize {
		w.fp[w.n] = fp
		w.n++
		return
	}
	w.fp[w.next] = fp
	w.next = uint8((int(w.next) + 1) % RecentClicksSize)
}

// Fingerprints returns the fingerprints held, oldest first.
func (w *RecentClicks) Fingerprints() []uint64 {
	out := make([]uint64, 0, w.n)
	for i := 0; i < int(w.n); i++ {
		out = append(out, w.fp[(int(w.next)+i)%RecentClicksSize])
	}
	return out
}

var clicksEncoding = base64.RawURLEncoding.Strict()

// Encode encodes the window as the value of the hash field [FieldRecentClicks]: the fingerprints, oldest
// first, as 8-byte big-endian words, in unpadded URL-safe base64; "" for an empty window.
func (w *RecentClicks) Encode() string {
	var raw [RecentClicksSize * 8]byte
	for i := 0; i < int(w.n); i++ {
		binary.BigEndian.PutUint64(raw[i*8:], w.fp[(int(w.next)+i)%RecentClicksSize])
	}
	var text [(RecentClicksSize*8*4 + 2) / 3]byte
	n := clicksEncoding.EncodedLen(int(w.n) * 8)
	clicksEncoding.Encode(text[:n], raw[:int(w.n)*8])
	return string(text[:n])
}

// ParseRecentClicks decodes [RecentClicks.Encode]'s output; "" gives an empty window. A value holding more
// than [RecentClicksSize] fingerprints (written with a larger window) keeps the newest ones. A value that
// is not unpadded URL-safe base64 of whole 8-byte words is an error, and the window is then empty.
func ParseRecentClicks(s string) (RecentClicks, error) {
	var w RecentClicks
	if s == "" {
		return w, nil
	}
	raw, err := clicksEncoding.DecodeString(s)
	if err != nil {
		return w, fmt.Errorf("bad recent clicks (want unpadded URL-safe base64): %w", err)
	}
	if len(raw)%8 != 0 {
		return w, fmt.Errorf("bad recent clicks: %d bytes is not a whole number of 8-byte fingerprints", len(raw))
	}
	if max := RecentClicksSize * 8; len(raw) > max {
		raw = raw[len(raw)-max:]
	}
	for i := 0; i < len(raw); i += 8 {
		w.Add(binary.BigEndian.Uint64(raw[i:]))
	}
	return w, nil
}
