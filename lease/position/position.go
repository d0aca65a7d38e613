// Package position is a record's place in a Kinesis shard — a sequence number and, inside a KPL
// aggregate, a sub-sequence number — with the sentinel positions of the KCL's lease table, their one
// ordering, their one text encoding, and the one Lua function that compares positions inside Redis.
//
// Every package that compares or stores positions uses this one: the lease table's checkpoints, the
// consumer's resume filter, the users' replay guard in Redis. It knows nothing of shards' contents and
// does no I/O.
package position

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Position is a place in a shard: SequenceNumber (decimal digits, up to 128 bits, so kept as text) and
// SubSequence (the index inside a KPL aggregate; 0 for a plain record), or one of the sentinels. The
// zero Position is "none": before every record.
type Position struct {
	SequenceNumber string
	SubSequence    int64
}

// Sentinel positions, stored in a lease's checkpoint as the Java KCL does.
var (
	TrimHorizon = Position{SequenceNumber: "TRIM_HORIZON"}
	Latest      = Position{SequenceNumber: "LATEST"}
	AtTimestamp = Position{SequenceNumber: "AT_TIMESTAMP"}
	ShardEnd    = Position{SequenceNumber: "SHARD_END"}
)

// At returns the position of sequence number seq, sub-sequence sub.
func At(seq string, sub int64) Position { return Position{SequenceNumber: seq, SubSequence: sub} }

// IsZero reports whether p is the zero Position (none).
func (p Position) IsZero() bool { return p.SequenceNumber == "" }

// IsSentinel reports whether p is one of the sentinel positions rather than a sequence number.
func (p Position) IsSentinel() bool {
	switch p.SequenceNumber {
	case TrimHorizon.SequenceNumber, Latest.SequenceNumber, AtTimestamp.SequenceNumber, ShardEnd.SequenceNumber:
		return true
	}
	return false
}

// IsShardEnd reports whether p is SHARD_END: the shard is closed and every record in it processed.
func (p Position) IsShardEnd() bool { return p.SequenceNumber == ShardEnd.SequenceNumber }

// IsSequence reports whether p is a real record position: decimal digits and a sub-sequence ≥ 0.
func (p Position) IsSequence() bool {
	return p.SequenceNumber != "" && strings.Trim(p.SequenceNumber, "0123456789") == "" && p.SubSequence >= 0
}

// String returns "seq/sub" for a record position and the name of a sentinel: for logs and errors.
func (p Position) String() string {
	if p.IsSentinel() || p.IsZero() {
		return p.SequenceNumber
	}
	return p.SequenceNumber + "/" + strconv.FormatInt(p.SubSequence, 10)
}

// rank orders the kinds of position: none and the starting sentinels before every record, SHARD_END
// after every record.
func (p Position) rank() int {
	switch {
	case p.IsShardEnd():
		return 2
	case p.IsZero() || p.IsSentinel():
		return 0
	}
	return 1
}

// Compare orders p and q within one shard: -1, 0 or +1. Record positions compare by sequence number as
// a decimal number (leading zeros ignored, a longer one is larger), then by sub-sequence number. The zero
// Position and the starting sentinels (TRIM_HORIZON, LATEST, AT_TIMESTAMP) are before every record and
// equal to each other; SHARD_END is after every record. A malformed sequence number compares as text.
func (p Position) Compare(q Position) int {
	if rp, rq := p.rank(), q.rank(); rp != rq || rp != 1 {
		return cmp.Compare(rp, rq)
	}
	a, b := strings.TrimLeft(p.SequenceNumber, "0"), strings.TrimLeft(q.SequenceNumber, "0")
	switch {
	case len(a) != len(b):
		return cmp.Compare(len(a), len(b))
	case a != b:
		return strings.Compare(a, b)
	}
	return cmp.Compare(p.SubSequence, q.SubSequence)
}

// Encode returns the text form stored in Redis, "seq:sub"; "" for the zero Position.
func (p Position) Encode() string {
	if p.IsZero() {
		return ""
	}
	return p.SequenceNumber + ":" + strconv.FormatInt(p.SubSequence, 10)
}

// Decode parses Encode's output; "" gives the zero Position. Anything else that is not
// <digits>:<sub-sequence ≥ 0> is an error.
func Decode(s string) (Position, error) {
	if s == "" {
		return Position{}, nil
	}
	seq, sub, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(sub, 10, 64)
	p := Position{SequenceNumber: seq, SubSequence: n}
	if !ok || err != nil || !p.IsSequence() {
		return Position{}, fmt.Errorf("bad position %q (want <sequence>:<sub-sequence>)", s)
	}
	return p, nil
}

// LuaBeyond is the Lua source of a function beyond(stored, seq, sub) for scripts run in Redis: true when
// the record position (seq, a string of digits; sub, a number) is after stored, an Encode'd position or
// false/nil for none — the same order as Compare for record positions. Scripts that guard a write on
// the position it carries include it before their own code.
const LuaBeyond = `
local function beyond(stored, seq, sub)
  if not stored or stored == '' then return true end
  local i = string.find(stored, ':', 1, true)
  local sseq, ssub = string.sub(stored, 1, i - 1), tonumber(string.sub(stored, i + 1))
  sseq = (string.gsub(sseq, '^0+', ''))
  seq = (string.gsub(seq, '^0+', ''))
  if #seq ~= #sseq then return #seq > #sseq end
  if seq ~= sseq then return seq > sseq end
  return sub > ssub
end
`
