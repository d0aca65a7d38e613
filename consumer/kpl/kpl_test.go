package kpl_test

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"math/big"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/clickfleet/clickfleet/consumer/kpl"
)

const (
	maxKey  = "340282366920938463463374607431768211455" // 2^128 − 1
	halfKey = "170141183460469231731687303715884105728" // 2^127

	// Hash keys computed independently (python3 hashlib.md5, int(hexdigest, 16)).
	hashOfA      = "16955237001963240173058271559858726497"  // md5("a") = 0cc175b9c0f1b6a831c399e269772661, lower half
	hashOfEmpty  = "281949768489412648962353822266799178366" // md5("") = d41d8cd98f00b204e9800998ecf8427e, upper half
	hashOfUser42 = "157107139746365290205026809710278036035" // md5("user-42") = 7631bc07a1cc8fcd56e70fc6b2fb4a43, lower half
)

// wrap frames a protobuf body as an aggregate: magic, body, MD5(body).
func wrap(body []byte) []byte {
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, body...)
	sum := md5.Sum(body)
	return append(out, sum[:]...)
}

// Hand encoders for messages.proto, written out field by field.
func pkEntry(b []byte, s string) []byte {
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func ehkEntry(b []byte, s string) []byte {
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func recordField(b []byte, rec []byte) []byte {
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendBytes(b, rec)
}

// rec encodes a Record; ehk < 0 leaves explicit_hash_key_index out.
func rec(pk uint64, ehk int, data string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, pk)
	if ehk >= 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ehk))
	}
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendString(b, data)
}

func mustRange(t testing.TB, start, end string) *kpl.HashRange {
	t.Helper()
	r, err := kpl.ParseHashRange(start, end)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func checkSubs(t *testing.T, got, want []kpl.SubRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d sub-records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey ||
			!bytes.Equal(g.Data, w.Data) || g.SubSequence != w.SubSequence {
			t.Fatalf("sub-record %d = {%q %q %q %d}, want {%q %q %q %d}", i,
				g.PartitionKey, g.ExplicitHashKey, g.Data, g.SubSequence,
				w.PartitionKey, w.ExplicitHashKey, w.Data, w.SubSequence)
		}
	}
}

func numbered(in []kpl.SubRecord) []kpl.SubRecord {
	out := make([]kpl.SubRecord, len(in))
	for i, s := range in {
		s.SubSequence = int64(i)
		out[i] = s
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	many := func(n, pkMod, ehkEvery int) []kpl.SubRecord {
		out := make([]kpl.SubRecord, n)
		for i := range out {
			out[i] = kpl.SubRecord{
				PartitionKey: fmt.Sprintf("user-%d", i%pkMod),
				Data:         bytes.Repeat([]byte{byte(i)}, i%300),
			}
			if ehkEvery > 0 && i%ehkEvery == 0 {
				out[i].ExplicitHashKey = fmt.Sprint(i % 5 * 1000)
			}
		}
		return out
	}
	tests := []struct {
		name     string
		in       []kpl.SubRecord
		distinct int // distinct partition keys + explicit hash keys: the tables' size
	}{
		{"1 record", []kpl.SubRecord{{PartitionKey: "a", Data: []byte("hello")}}, 1},
		{"1 record with explicit hash key", []kpl.SubRecord{{PartitionKey: "a", ExplicitHashKey: "42", Data: []byte("x")}}, 2},
		{"1 record with empty data", []kpl.SubRecord{{PartitionKey: "a", Data: nil}}, 1},
		{"2 records sharing a partition key", []kpl.SubRecord{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "a", Data: []byte("2")}}, 1},
		{"2 records with distinct keys", []kpl.SubRecord{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}}, 2},
		{"2 records sharing an explicit hash key", []kpl.SubRecord{
			{PartitionKey: "a", ExplicitHashKey: maxKey, Data: []byte("1")},
			{PartitionKey: "b", ExplicitHashKey: maxKey, Data: []byte("2")}}, 3},
		{"2 records with distinct explicit hash keys", []kpl.SubRecord{
			{PartitionKey: "a", ExplicitHashKey: "0", Data: []byte("1")},
			{PartitionKey: "a", ExplicitHashKey: "7", Data: []byte("2")}}, 3},
		{"500 records, distinct partition keys", many(500, 500, 0), 500},
		{"500 records, 7 shared partition keys", many(500, 7, 0), 7},
		{"500 records, 7 partition keys, 5 explicit hash keys", many(500, 7, 3), 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg, err := kpl.Aggregate(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !kpl.IsAggregated(agg) {
				t.Fatal("IsAggregated(Aggregate(…)) = false")
			}
			if got := tableSize(t, agg); got != tt.distinct {
				t.Errorf("key tables hold %d entries, want %d (de-duplicated)", got, tt.distinct)
			}
			for _, r := range []*kpl.HashRange{nil, mustRange(t, "0", maxKey)} {
				subs, aggregated, err := kpl.Deaggregate(agg, "outer", r)
				if err != nil || !aggregated {
					t.Fatalf("Deaggregate(range %v) = aggregated %v, err %v", r, aggregated, err)
				}
				checkSubs(t, subs, numbered(tt.in))
			}
		})
	}
}

// tableSize counts the entries in an aggregate's two key tables.
func tableSize(t *testing.T, agg []byte) int {
	body := agg[4 : len(agg)-16]
	n := 0
	for len(body) > 0 {
		num, typ, l := protowire.ConsumeTag(body)
		if l < 0 {
			t.Fatal(protowire.ParseError(l))
		}
		body = body[l:]
		if num == 1 || num == 2 {
			n++
		}
		body = body[protowire.ConsumeFieldValue(num, typ, body):]
	}
	return n
}

func TestAggregateErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []kpl.SubRecord
	}{
		{"no records", nil},
		{"explicit hash key not decimal", []kpl.SubRecord{{PartitionKey: "a", ExplicitHashKey: "0x10"}}},
		{"explicit hash key negative", []kpl.SubRecord{{PartitionKey: "a", ExplicitHashKey: "-1"}}},
		{"explicit hash key above 2^128-1", []kpl.SubRecord{{PartitionKey: "a", ExplicitHashKey: "340282366920938463463374607431768211456"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if agg, err := kpl.Aggregate(tt.in); err == nil {
				t.Fatalf("Aggregate = %x, want an error", agg)
			}
		})
	}
}

// TestDeaggregatePlain: whatever is not a well-formed aggregate comes back as
// the plain record it is.
func TestDeaggregatePlain(t *testing.T) {
	good := func() []byte { // a valid aggregate, copied for each case to damage
		return wrap(recordField(pkEntry(nil, "a"), rec(0, -1, "payload")))
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"plain text", []byte(`{"event":"click"}`)},
		{"magic only", []byte{0xF3, 0x89, 0x9A, 0xC2}},
		{"empty body", wrap(nil)}, // 20 bytes: the KCL wants at least one protobuf byte
		{"wrong magic", func() []byte { b := good(); b[0] = 0xF4; return b }()},
		{"bad MD5", func() []byte { b := good(); b[len(b)-1] ^= 1; return b }()},
		{"body changed under the MD5", func() []byte { b := good(); b[len(b)-17] ^= 1; return b }()},
		{"truncated protobuf, MD5 of the truncated bytes", func() []byte {
			b := good()
			return wrap(b[4 : len(b)-16-3])
		}()},
		{"truncated record (length prefix longer than the body)", wrap(recordField(pkEntry(nil, "a"), rec(0, -1, "payload"))[:5])},
		{"field number 0", wrap([]byte{0x00, 0x01})},
		{"partition_key_index out of the table", wrap(recordField(pkEntry(nil, "a"), rec(1, -1, "x")))},
		{"partition_key_index with an empty table", wrap(recordField(nil, rec(0, -1, "x")))},
		{"explicit_hash_key_index out of the table", wrap(recordField(ehkEntry(pkEntry(nil, "a"), "5"), rec(0, 1, "x")))},
		{"explicit hash key not decimal", wrap(recordField(ehkEntry(pkEntry(nil, "a"), "12a"), rec(0, 0, "x")))},
		{"explicit hash key empty", wrap(recordField(ehkEntry(pkEntry(nil, "a"), ""), rec(0, 0, "x")))},
		{"record without partition_key_index (required)", func() []byte {
			r := protowire.AppendTag(nil, 3, protowire.BytesType)
			return wrap(recordField(pkEntry(nil, "a"), protowire.AppendString(r, "x")))
		}()},
		{"record without data (required)", func() []byte {
			r := protowire.AppendTag(nil, 1, protowire.VarintType)
			return wrap(recordField(pkEntry(nil, "a"), protowire.AppendVarint(r, 0)))
		}()},
		{"data with the varint wire type (an unknown field, so data is missing)", func() []byte {
			r := protowire.AppendTag(nil, 1, protowire.VarintType)
			r = protowire.AppendVarint(r, 0)
			r = protowire.AppendTag(r, 3, protowire.VarintType)
			return wrap(recordField(pkEntry(nil, "a"), protowire.AppendVarint(r, 7)))
		}()},
		{"tag without its key (required)", func() []byte {
			tag := protowire.AppendTag(nil, 2, protowire.BytesType)
			tag = protowire.AppendString(tag, "v")
			r := protowire.AppendTag(rec(0, -1, "x"), 4, protowire.BytesType)
			return wrap(recordField(pkEntry(nil, "a"), protowire.AppendBytes(r, tag)))
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs, aggregated, err := kpl.Deaggregate(tt.data, "outer-key", nil)
			if err != nil || aggregated {
				t.Fatalf("Deaggregate = aggregated %v, err %v; want a plain record", aggregated, err)
			}
			if len(subs) != 1 || subs[0].PartitionKey != "outer-key" || subs[0].ExplicitHashKey != "" ||
				!bytes.Equal(subs[0].Data, tt.data) || subs[0].SubSequence != 0 {
				t.Fatalf("Deaggregate = %+v, want the record itself", subs)
			}
		})
	}
}

func TestOutOfShardRange(t *testing.T) {
	lower := mustRange(t, "0", "170141183460469231731687303715884105727") // [0, 2^127 − 1]
	upper := mustRange(t, halfKey, maxKey)                                // [2^127, 2^128 − 1]
	one := func(pk, ehk string) []kpl.SubRecord {
		return []kpl.SubRecord{{PartitionKey: pk, ExplicitHashKey: ehk, Data: []byte("d")}}
	}
	agg := func(recs ...[]kpl.SubRecord) []byte {
		var all []kpl.SubRecord
		for _, r := range recs {
			all = append(all, r...)
		}
		b, err := kpl.Aggregate(all)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Explicit hash keys the encoder refuses, written by hand.
	handEHK := func(ehk string) []byte {
		return wrap(recordField(ehkEntry(pkEntry(nil, "a"), ehk), rec(0, 0, "d")))
	}
	tests := []struct {
		name   string
		data   []byte
		r      *kpl.HashRange
		inside bool
	}{
		{"partition key in the shard", agg(one("a", "")), lower, true},
		{"partition key in the other shard", agg(one("a", "")), upper, false},
		{"explicit hash key overrides the partition key", agg(one("a", halfKey)), upper, true},
		{"explicit hash key on the start bound", agg(one("x", "5")), mustRange(t, "5", "9"), true},
		{"explicit hash key on the end bound", agg(one("x", "9")), mustRange(t, "5", "9"), true},
		{"explicit hash key one below the start", agg(one("x", "4")), mustRange(t, "5", "9"), false},
		{"explicit hash key one above the end", agg(one("x", "10")), mustRange(t, "5", "9"), false},
		{"leading zeros and a plus sign", agg(one("x", "+0009")), mustRange(t, "5", "9"), true},
		{"all in but the last", agg(one("a", ""), one("user-42", ""), one("", "")), lower, false},
		{"all in but the first", agg(one("", ""), one("a", ""), one("user-42", "")), lower, false},
		{"all in", agg(one("a", ""), one("user-42", ""), one("z", "0")), lower, true},
		{"negative explicit hash key, whole key space", handEHK("-1"), nil, false},
		{"explicit hash key 2^128, whole key space", handEHK("340282366920938463463374607431768211456"), nil, false},
		{"huge explicit hash key, whole key space", handEHK("99999999999999999999999999999999999999999999999999"), nil, false},
		{"minus zero, whole key space", handEHK("-0"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs, aggregated, err := kpl.Deaggregate(tt.data, "outer", tt.r)
			if !aggregated {
				t.Fatal("aggregated = false")
			}
			if tt.inside {
				if err != nil || len(subs) == 0 {
					t.Fatalf("got %d sub-records, err %v; want all", len(subs), err)
				}
				return
			}
			if !errors.Is(err, kpl.ErrOutOfShardRange) || subs != nil {
				t.Fatalf("got %d sub-records, err %v; want none and ErrOutOfShardRange", len(subs), err)
			}
			t.Log(err)
		})
	}
}

func TestHashKey(t *testing.T) {
	tests := []struct{ name, pk, want string }{
		{"a", "a", hashOfA},
		{"empty", "", hashOfEmpty},
		{"user-42", "user-42", hashOfUser42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kpl.HashKey(tt.pk).String(); got != tt.want {
				t.Fatalf("HashKey(%q) = %s, want %s", tt.pk, got, tt.want)
			}
		})
	}
}

func TestParseHashRange(t *testing.T) {
	tests := []struct {
		name, start, end string
		ok               bool
	}{
		{"whole key space", "0", maxKey, true},
		{"one key", "7", "7", true},
		{"start not decimal", "0x0", "7", false},
		{"end empty", "0", "", false},
		{"negative start", "-1", "7", false},
		{"end above 2^128-1", "0", "340282366920938463463374607431768211456", false},
		{"start after end", "8", "7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := kpl.ParseHashRange(tt.start, tt.end)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseHashRange(%q, %q) = %v, %v", tt.start, tt.end, r, err)
			}
			if !tt.ok {
				return
			}
			if r.Start.String() != tt.start || r.End.String() != tt.end {
				t.Fatalf("ParseHashRange = [%s, %s]", r.Start, r.End)
			}
		})
	}
}

func TestInvalidHashRange(t *testing.T) {
	data, err := kpl.Aggregate([]kpl.SubRecord{{PartitionKey: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		r    *kpl.HashRange
	}{
		{"nil bounds", &kpl.HashRange{}},
		{"start after end", &kpl.HashRange{Start: big.NewInt(2), End: big.NewInt(1)}},
		{"negative start", &kpl.HashRange{Start: big.NewInt(-1), End: big.NewInt(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := kpl.Deaggregate(data, "a", tt.r); err == nil || errors.Is(err, kpl.ErrOutOfShardRange) {
				t.Fatalf("err = %v, want an invalid-range error", err)
			}
		})
	}
}

func TestIsAggregated(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want bool
	}{
		{"nil", nil, false},
		{"magic and digest, empty body", wrap(nil), false},
		{"magic, one body byte, digest", wrap([]byte{0}), true}, // the digest is not checked
		{"wrong magic", append([]byte{0xF3, 0x89, 0x9A, 0xC3}, make([]byte, 17)...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kpl.IsAggregated(tt.data); got != tt.want {
				t.Fatalf("IsAggregated = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestGolden builds aggregates byte by byte, as the KPL lays them out, and
// checks Deaggregate reads them and Aggregate writes the same bytes.
func TestGolden(t *testing.T) {
	// Partition-key table ["user-1", "user-2"], explicit-hash-key table
	// ["1000"], records: (user-1, "click-1"), (user-2, ehk 1000, "click-2"),
	// (user-1, "").
	kplLayout := []byte{
		0xF3, 0x89, 0x9A, 0xC2, // magic
		0x0A, 0x06, 'u', 's', 'e', 'r', '-', '1', // partition_key_table = "user-1"
		0x0A, 0x06, 'u', 's', 'e', 'r', '-', '2', // partition_key_table = "user-2"
		0x12, 0x04, '1', '0', '0', '0', // explicit_hash_key_table = "1000"
		0x1A, 0x0B, // records, 11 bytes
		0x08, 0x00, // partition_key_index = 0
		0x1A, 0x07, 'c', 'l', 'i', 'c', 'k', '-', '1', // data
		0x1A, 0x0D, // records, 13 bytes
		0x08, 0x01, // partition_key_index = 1
		0x10, 0x00, // explicit_hash_key_index = 0
		0x1A, 0x07, 'c', 'l', 'i', 'c', 'k', '-', '2', // data
		0x1A, 0x04, // records, 4 bytes
		0x08, 0x00, // partition_key_index = 0
		0x1A, 0x00, // data = ""
	}
	sum := md5.Sum(kplLayout[4:])
	kplLayout = append(kplLayout, sum[:]...)
	want := []kpl.SubRecord{
		{PartitionKey: "user-1", Data: []byte("click-1"), SubSequence: 0},
		{PartitionKey: "user-2", ExplicitHashKey: "1000", Data: []byte("click-2"), SubSequence: 1},
		{PartitionKey: "user-1", Data: []byte{}, SubSequence: 2},
	}

	// The same content with fields out of order, a tag, and unknown fields of
	// every wire type, which a reader must skip.
	var body []byte
	body = protowire.AppendTag(body, 15, protowire.VarintType) // unknown
	body = protowire.AppendVarint(body, 1<<40)
	r0 := rec(0, -1, "click-1")
	r0 = protowire.AppendTag(r0, 4, protowire.BytesType) // tags
	tag := protowire.AppendTag(nil, 1, protowire.BytesType)
	tag = protowire.AppendString(tag, "k")
	tag = protowire.AppendTag(tag, 2, protowire.BytesType)
	tag = protowire.AppendString(tag, "v")
	r0 = protowire.AppendBytes(r0, tag)
	r0 = protowire.AppendTag(r0, 9, protowire.Fixed32Type) // unknown in Record
	r0 = protowire.AppendFixed32(r0, 7)
	body = recordField(body, r0)
	body = pkEntry(body, "user-1")
	body = protowire.AppendTag(body, 4, protowire.StartGroupType) // unknown group
	body = protowire.AppendTag(body, 1, protowire.Fixed64Type)
	body = protowire.AppendFixed64(body, 9)
	body = protowire.AppendTag(body, 4, protowire.EndGroupType)
	body = ehkEntry(body, "1000")
	body = recordField(body, rec(1, 0, "click-2"))
	body = pkEntry(body, "user-2")
	body = recordField(body, rec(0, -1, ""))
	shuffled := wrap(body)

	tests := []struct {
		name        string
		data        []byte
		aggregateTo bool // Aggregate(want) produces exactly these bytes
	}{
		{"KPL layout", kplLayout, true},
		{"fields out of order, tags, unknown fields", shuffled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subs, aggregated, err := kpl.Deaggregate(tt.data, "outer", mustRange(t, "0", maxKey))
			if err != nil || !aggregated {
				t.Fatalf("Deaggregate = aggregated %v, err %v", aggregated, err)
			}
			checkSubs(t, subs, want)
			if !tt.aggregateTo {
				return
			}
			got, err := kpl.Aggregate(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Fatalf("Aggregate =\n%x\nwant\n%x", got, tt.data)
			}
		})
	}
}

// TestDataAliasesInput documents that sub-record data is not copied.
func TestDataAliasesInput(t *testing.T) {
	agg, err := kpl.Aggregate([]kpl.SubRecord{{PartitionKey: "a", Data: []byte("abc")}})
	if err != nil {
		t.Fatal(err)
	}
	subs, _, err := kpl.Deaggregate(agg, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(agg, []byte("abc"))
	agg[i] = 'X'
	if string(subs[0].Data) != "Xbc" {
		t.Fatalf("Data = %q, want it to alias the input", subs[0].Data)
	}
}
