package kpl

import (
	"crypto/md5"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// magic starts the data of every KPL aggregate.
var magic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// ErrOutOfShardRange is returned (wrapped, match it with errors.Is) by
// [Deaggregate] when a sub-record's hash key lies outside the shard's hash
// range. The whole aggregate must be dropped: it was written to the parent
// shard before a split or merge and its in-range sub-records are delivered by
// the shard that owns them. The caller should log and count it, then move on
// (the record's sequence number may still be checkpointed).
var ErrOutOfShardRange = errors.New("kpl: sub-record hash key outside the shard's hash range")

// SubRecord is one user record of a KPL aggregate.
type SubRecord struct {
	// PartitionKey is the sub-record's partition key, from the aggregate's
	// partition-key table (or the Kinesis record's own key for a plain record).
	PartitionKey string
	// ExplicitHashKey is the sub-record's explicit hash key as a decimal
	// string, or "" if it has none; its hash key is then HashKey(PartitionKey).
	ExplicitHashKey string
	// Data is the user payload. Deaggregate returns slices of its input, so
	// Data aliases the Kinesis record's data: copy it before modifying either.
	Data []byte
	// SubSequence is the sub-record's index in the aggregate (0, 1, 2, …),
	// which with the record's sequence number forms the KCL's extended
	// sequence number for checkpoints. Aggregate ignores it.
	SubSequence int64
}

// IsAggregated reports whether data has the shape of a KPL aggregate: the
// magic bytes followed by at least one protobuf byte and the 16-byte MD5. It
// checks neither the digest nor the protobuf; [Deaggregate] does.
func IsAggregated(data []byte) bool {
	return len(data) > len(magic)+md5.Size && [4]byte(data[:len(magic)]) == magic
}

// Deaggregate splits a Kinesis record into its KPL sub-records, as the Java
// KCL's AggregatorUtil does. data is the record's data, partitionKey its
// partition key, and hashRange the range of the shard it was read from (nil
// means the whole key space, 0 to 2^128−1, which is what the KCL assumes when
// it is not told the shard).
//
// If data is not an aggregate (no magic, too short, wrong MD5, malformed
// protobuf — including a missing required field, a table index out of range
// or an explicit hash key that is not a decimal integer), Deaggregate returns
// aggregated=false and one SubRecord {partitionKey, "", data, 0}: the record is
// delivered as a plain record. Unknown protobuf fields are skipped.
//
// Otherwise it returns aggregated=true and the sub-records in order,
// SubSequence i for the i-th. An aggregate with no records yields none. If
// any sub-record's hash key — its explicit hash key if it has one, else
// HashKey(PartitionKey) — lies outside hashRange (bounds inclusive), it
// returns no sub-records, aggregated=true and an error wrapping
// [ErrOutOfShardRange]; a malformed aggregate is plain even if it also has
// out-of-range sub-records. An invalid hashRange (a nil bound, or not
// 0 <= Start <= End <= 2^128−1) is an error for any data.
//
// Sub-record Data aliases data; the partition and explicit hash keys are new
// strings. Deaggregate keeps no state and is safe for concurrent use.
func Deaggregate(data []byte, partitionKey string, hashRange *HashRange) (subs []SubRecord, aggregated bool, err error) {
	sp, err := hashRange.bounds()
	if err != nil {
		return nil, false, err
	}
	plain := func() ([]SubRecord, bool, error) {
		return []SubRecord{{PartitionKey: partitionKey, Data: data}}, false, nil
	}
	if !IsAggregated(data) {
		return plain()
	}
	body := data[len(magic) : len(data)-md5.Size]
	if md5.Sum(body) != [md5.Size]byte(data[len(data)-md5.Size:]) {
		return plain()
	}
	subs, out, ok := decode(body, sp)
	if !ok {
		return plain()
	}
	if out >= 0 {
		return nil, true, outOfRange(subs, out, hashRange)
	}
	return subs, true, nil
}

func outOfRange(subs []SubRecord, i int, r *HashRange) error {
	s := subs[i]
	var key string
	if s.ExplicitHashKey != "" {
		k, _ := parseExplicitHashKey([]byte(s.ExplicitHashKey)) // validated by decode
		key = fmt.Sprintf("explicit hash key %s", k)
	} else {
		key = fmt.Sprintf("hash key %s of partition key %q", HashKey(s.PartitionKey), s.PartitionKey)
	}
	bounds := "[0, 2^128-1]"
	if r != nil {
		bounds = fmt.Sprintf("[%s, %s]", r.Start, r.End)
	}
	return fmt.Errorf("%w: sub-record %d of %d: %s not in %s", ErrOutOfShardRange, i, len(subs), key, bounds)
}

// Field numbers of messages.proto.
const (
	fieldPartitionKeyTable    = 1 // AggregatedRecord: repeated string
	fieldExplicitHashKeyTable = 2 // AggregatedRecord: repeated string
	fieldRecords              = 3 // AggregatedRecord: repeated Record

	fieldPartitionKeyIndex    = 1 // Record: required uint64
	fieldExplicitHashKeyIndex = 2 // Record: optional uint64
	fieldData                 = 3 // Record: required bytes
	fieldTags                 = 4 // Record: repeated Tag

	fieldTagKey   = 1 // Tag: required string
	fieldTagValue = 2 // Tag: optional string
)

// Table entry states; a hash key is computed at most once per table entry.
const (
	keyUnknown uint8 = iota
	keyIn
	keyOut
	keyBad // explicit hash key that is not a decimal integer
)

type entry struct {
	raw   []byte // the key's bytes, aliasing the input
	off   int    // offset of the key in the shared string
	key   string
	state uint8
}

// decode parses an AggregatedRecord. ok is false if it is malformed. out is
// the index of the first sub-record whose hash key is outside sp, or -1.
//
// It makes three passes over the top level (each skips what it does not need)
// so that it allocates exactly three times: the table entries, one string
// holding every table key, and the sub-records.
func decode(body []byte, sp span) (subs []SubRecord, out int, ok bool) {
	// Pass 1: validate the top level and count.
	var npk, nehk, nrec, keyBytes int
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return nil, -1, false
		}
		b = b[n:]
		if typ != protowire.BytesType || num > fieldRecords {
			// Unknown field, or a known number with a foreign wire type,
			// which protobuf parsers also keep as an unknown field.
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return nil, -1, false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, -1, false
		}
		b = b[n:]
		switch num {
		case fieldPartitionKeyTable:
			npk++
			keyBytes += len(v)
		case fieldExplicitHashKeyTable:
			nehk++
			keyBytes += len(v)
		case fieldRecords:
			nrec++
		}
	}

	// Pass 2: the key tables, partition keys first.
	entries := make([]entry, npk+nehk)
	var sb strings.Builder
	sb.Grow(keyBytes)
	ipk, iehk := 0, npk
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		b = b[n:]
		if typ != protowire.BytesType || num > fieldRecords {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		var e *entry
		switch num {
		case fieldPartitionKeyTable:
			e = &entries[ipk]
			ipk++
		case fieldExplicitHashKeyTable:
			e = &entries[iehk]
			iehk++
		default:
			continue
		}
		e.raw, e.off = v, sb.Len()
		sb.Write(v)
	}
	keys := sb.String()
	for i := range entries {
		entries[i].key = keys[entries[i].off : entries[i].off+len(entries[i].raw)]
	}
	pks, ehks := entries[:npk], entries[npk:]

	// Pass 3: the records.
	subs = make([]SubRecord, 0, nrec)
	out = -1
	checkPK := sp != fullSpan // an MD5 is always within the full key space
	for b := body; len(b) > 0; {
		num, typ, n := consumeTag(b)
		b = b[n:]
		if typ != protowire.BytesType || num != fieldRecords {
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		b = b[n:]
		r, ok := parseRecord(v)
		if !ok || r.pk >= uint64(npk) || (r.hasEHK && r.ehk >= uint64(nehk)) {
			return nil, -1, false
		}
		s := SubRecord{PartitionKey: pks[r.pk].key, Data: r.data, SubSequence: int64(len(subs))}
		var e *entry
		if r.hasEHK {
			e = &ehks[r.ehk]
			s.ExplicitHashKey = e.key
			if e.state == keyUnknown {
				k, valid := parseExplicitHashKey(e.raw)
				switch {
				case !valid:
					e.state = keyBad
				case k.inRange(sp):
					e.state = keyIn
				default:
					e.state = keyOut
				}
			}
		} else if checkPK {
			e = &pks[r.pk]
			if e.state == keyUnknown {
				e.state = keyOut
				if sum := md5.Sum(e.raw); sp.contains(u128FromBytes(&sum)) {
					e.state = keyIn
				}
			}
		}
		if e != nil {
			switch {
			case e.state == keyBad:
				return nil, -1, false
			case e.state == keyOut && out < 0:
				out = len(subs)
			}
		}
		subs = append(subs, s)
	}
	return subs, out, true
}

type record struct {
	pk, ehk uint64
	hasEHK  bool
	data    []byte
}

// parseRecord parses a Record; ok is false if it is malformed or lacks a
// required field. Tags are checked and dropped.
func parseRecord(b []byte) (r record, ok bool) {
	var hasPK, hasData bool
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return r, false
		}
		b = b[n:]
		switch {
		case num == fieldPartitionKeyIndex && typ == protowire.VarintType:
			r.pk, n = protowire.ConsumeVarint(b)
			hasPK = true
		case num == fieldExplicitHashKeyIndex && typ == protowire.VarintType:
			r.ehk, n = protowire.ConsumeVarint(b)
			r.hasEHK = true
		case num == fieldData && typ == protowire.BytesType:
			r.data, n = protowire.ConsumeBytes(b)
			hasData = true
		case num == fieldTags && typ == protowire.BytesType:
			var tag []byte
			if tag, n = protowire.ConsumeBytes(b); n >= 0 && !validTag(tag) {
				return r, false
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return r, false
		}
		b = b[n:]
	}
	return r, hasPK && hasData
}

// validTag reports whether b is a well-formed Tag with its required key.
func validTag(b []byte) bool {
	hasKey := false
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if (num == fieldTagKey || num == fieldTagValue) && typ == protowire.BytesType {
			_, n = protowire.ConsumeBytes(b)
			hasKey = hasKey || num == fieldTagKey
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	return hasKey
}

// consumeTag is protowire.ConsumeTag that also rejects field numbers above
// 2^29−1, which the protobuf spec forbids and the protobuf runtime refuses.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, typ, n
}
