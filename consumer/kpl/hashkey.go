package kpl

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/bits"
)

// maxHashKey is 2^128 − 1, the largest Kinesis hash key.
var maxHashKey = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// HashRange is a shard's inclusive hash-key range, as Kinesis reports it in
// Shard.HashKeyRange. Both bounds must be set and satisfy
// 0 <= Start <= End <= 2^128−1; [Deaggregate] returns an error otherwise. A
// HashRange is only read, never modified, so one value may be shared by
// concurrent calls.
type HashRange struct {
	Start, End *big.Int
}

// ParseHashRange builds a HashRange from the decimal strings Kinesis returns in
// Shard.HashKeyRange.StartingHashKey and EndingHashKey. It returns an error if
// either is not a decimal integer or if 0 <= start <= end <= 2^128−1 does not
// hold.
func ParseHashRange(start, end string) (*HashRange, error) {
	s, ok := new(big.Int).SetString(start, 10)
	if !ok {
		return nil, fmt.Errorf("kpl: starting hash key %q is not a decimal integer", start)
	}
	e, ok := new(big.Int).SetString(end, 10)
	if !ok {
		return nil, fmt.Errorf("kpl: ending hash key %q is not a decimal integer", end)
	}
	r := &HashRange{Start: s, End: e}
	if _, err := r.bounds(); err != nil {
		return nil, err
	}
	return r, nil
}

// HashKey returns the hash key Kinesis derives from a partition key: the MD5
// of its bytes read as an unsigned 128-bit big-endian integer. A record
// without an explicit hash key goes to the shard whose range contains it.
func HashKey(partitionKey string) *big.Int {
	sum := md5.Sum([]byte(partitionKey))
	return new(big.Int).SetBytes(sum[:])
}

// u128 is an unsigned 128-bit integer; comparing hash keys with it keeps
// big.Int (and its allocations) off the per-record path.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func u128FromBytes(b *[16]byte) u128 {
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func u128FromBig(x *big.Int) u128 {
	var b [16]byte
	x.FillBytes(b[:]) // caller guarantees 0 <= x <= 2^128−1
	return u128FromBytes(&b)
}

// span is a validated HashRange in u128 form.
type span struct{ lo, hi u128 }

var fullSpan = span{lo: u128{}, hi: u128{^uint64(0), ^uint64(0)}}

func (s span) contains(k u128) bool { return !k.less(s.lo) && !s.hi.less(k) }

// bounds checks r and converts it; a nil r is the whole key space, which is
// what the KCL uses when it is not told the shard's range.
func (r *HashRange) bounds() (span, error) {
	if r == nil {
		return fullSpan, nil
	}
	if r.Start == nil || r.End == nil {
		return span{}, fmt.Errorf("kpl: hash range has a nil bound")
	}
	if r.Start.Sign() < 0 || r.End.Cmp(maxHashKey) > 0 || r.Start.Cmp(r.End) > 0 {
		return span{}, fmt.Errorf("kpl: hash range [%s, %s] is not within 0 <= start <= end <= 2^128-1", r.Start, r.End)
	}
	return span{lo: u128FromBig(r.Start), hi: u128FromBig(r.End)}, nil
}

// hashKeyOf is a parsed explicit hash key. Java's BigInteger(String) accepts
// an optional sign and decimal digits; a negative value or one above 2^128−1
// is valid syntax but lies outside every shard, which inRange reports.
type hashKeyOf struct {
	v        u128
	negative bool // non-zero and below zero
	overflow bool // above 2^128−1
}

func (k hashKeyOf) inRange(s span) bool { return !k.negative && !k.overflow && s.contains(k.v) }

// parseExplicitHashKey parses an explicit hash key; ok is false when b is not
// an optionally signed string of ASCII decimal digits.
func parseExplicitHashKey(b []byte) (k hashKeyOf, ok bool) {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return k, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return hashKeyOf{}, false
		}
		if k.overflow {
			continue
		}
		// v = v*10 + digit, watching for overflow past 128 bits.
		hh, hl := bits.Mul64(k.v.hi, 10)
		lh, ll := bits.Mul64(k.v.lo, 10)
		hi, carry := bits.Add64(hl, lh, 0)
		if hh != 0 || carry != 0 {
			k.overflow = true
			continue
		}
		lo, carry := bits.Add64(ll, uint64(c-'0'), 0)
		hi, carry = bits.Add64(hi, 0, carry)
		if carry != 0 {
			k.overflow = true
			continue
		}
		k.v = u128{hi, lo}
	}
	k.negative = neg && (k.overflow || k.v != u128{})
	return k, true
}

func (k hashKeyOf) String() string {
	if k.overflow {
		return "> 2^128-1"
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.v.hi)
	binary.BigEndian.PutUint64(b[8:], k.v.lo)
	s := new(big.Int).SetBytes(b[:]).String()
	if k.negative {
		return "-" + s
	}
	return s
}
