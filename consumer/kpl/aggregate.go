package kpl

import (
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Aggregate encodes records as one KPL aggregate (magic, AggregatedRecord,
// MD5) that the KPL's consumers — the Java KCL, its deaggregation libraries
// and [Deaggregate] — read back as the same sub-records in the same order.
// Like the KPL, it stores each distinct partition key and explicit hash key
// once, in order of first use, and writes fields in field-number order. It
// writes no tags and ignores SubSequence.
//
// It returns an error if records is empty (an aggregate with an empty body is
// read as a plain record) or if an ExplicitHashKey is not "" and not a decimal
// integer in [0, 2^128−1]. It does not enforce Kinesis' limits (partition keys
// of 1 to 256 characters, the record-size limit) — check the result's length
// against the stream's limit before putting it.
//
// Put the aggregate with the first record's partition key and, if it has one,
// its explicit hash key, as the KPL does; consumers given the shard's range
// drop the aggregate (ErrOutOfShardRange) unless every record's hash key falls
// in the shard that receives it.
func Aggregate(records []SubRecord) ([]byte, error) {
	if len(records) == 0 {
		return nil, errors.New("kpl: no records to aggregate")
	}
	type ref struct {
		pk, ehk uint64
		hasEHK  bool
		size    int // encoded Record size
	}
	var (
		refs   = make([]ref, len(records))
		pkIdx  = make(map[string]uint64)
		ehkIdx = make(map[string]uint64)
		pks    []string
		ehks   []string
		size   int
	)
	for i, r := range records {
		var f ref
		idx, ok := pkIdx[r.PartitionKey]
		if !ok {
			idx = uint64(len(pks))
			pkIdx[r.PartitionKey] = idx
			pks = append(pks, r.PartitionKey)
			size += protowire.SizeTag(fieldPartitionKeyTable) + protowire.SizeBytes(len(r.PartitionKey))
		}
		f.pk = idx
		f.size = protowire.SizeTag(fieldPartitionKeyIndex) + protowire.SizeVarint(f.pk)
		if r.ExplicitHashKey != "" {
			if k, ok := parseExplicitHashKey([]byte(r.ExplicitHashKey)); !ok || !k.inRange(fullSpan) {
				return nil, fmt.Errorf("kpl: record %d: explicit hash key %q is not a decimal integer in [0, 2^128-1]", i, r.ExplicitHashKey)
			}
			idx, ok := ehkIdx[r.ExplicitHashKey]
			if !ok {
				idx = uint64(len(ehks))
				ehkIdx[r.ExplicitHashKey] = idx
				ehks = append(ehks, r.ExplicitHashKey)
				size += protowire.SizeTag(fieldExplicitHashKeyTable) + protowire.SizeBytes(len(r.ExplicitHashKey))
			}
			f.ehk, f.hasEHK = idx, true
			f.size += protowire.SizeTag(fieldExplicitHashKeyIndex) + protowire.SizeVarint(f.ehk)
		}
		f.size += protowire.SizeTag(fieldData) + protowire.SizeBytes(len(r.Data))
		size += protowire.SizeTag(fieldRecords) + protowire.SizeBytes(f.size)
		refs[i] = f
	}

	buf := make([]byte, 0, len(magic)+size+md5.Size)
	buf = append(buf, magic[:]...)
	for _, k := range pks {
		buf = protowire.AppendTag(buf, fieldPartitionKeyTable, protowire.BytesType)
		buf = protowire.AppendString(buf, k)
	}
	for _, k := range ehks {
		buf = protowire.AppendTag(buf, fieldExplicitHashKeyTable, protowire.BytesType)
		buf = protowire.AppendString(buf, k)
	}
	for i, f := range refs {
		buf = protowire.AppendTag(buf, fieldRecords, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(f.size))
		buf = protowire.AppendTag(buf, fieldPartitionKeyIndex, protowire.VarintType)
		buf = protowire.AppendVarint(buf, f.pk)
		if f.hasEHK {
			buf = protowire.AppendTag(buf, fieldExplicitHashKeyIndex, protowire.VarintType)
			buf = protowire.AppendVarint(buf, f.ehk)
		}
		buf = protowire.AppendTag(buf, fieldData, protowire.BytesType)
		buf = protowire.AppendBytes(buf, records[i].Data)
	}
	sum := md5.Sum(buf[len(magic):])
	return append(buf, sum[:]...), nil
}
