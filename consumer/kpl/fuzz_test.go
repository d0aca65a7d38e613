package kpl_test

import (
	"errors"
	"math/big"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/clickfleet/clickfleet/consumer/kpl"
)

// aggregatedRecordDesc describes messages.proto (proto2) for the protobuf
// runtime, which the fuzzer uses as an independent reference parser.
var aggregatedRecordDesc = func() protoreflect.MessageDescriptor {
	field := func(name string, num int32, label descriptorpb.FieldDescriptorProto_Label,
		typ descriptorpb.FieldDescriptorProto_Type, msg string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Label: label.Enum(), Type: typ.Enum()}
		if msg != "" {
			f.TypeName = proto.String(msg)
		}
		return f
	}
	const (
		req = descriptorpb.FieldDescriptorProto_LABEL_REQUIRED
		opt = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		rep = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		str = descriptorpb.FieldDescriptorProto_TYPE_STRING
		u64 = descriptorpb.FieldDescriptorProto_TYPE_UINT64
		byt = descriptorpb.FieldDescriptorProto_TYPE_BYTES
		msg = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("messages.proto"),
		Package: proto.String("kpltest"),
		Syntax:  proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("AggregatedRecord"), Field: []*descriptorpb.FieldDescriptorProto{
				field("partition_key_table", 1, rep, str, ""),
				field("explicit_hash_key_table", 2, rep, str, ""),
				field("records", 3, rep, msg, ".kpltest.Record"),
			}},
			{Name: proto.String("Tag"), Field: []*descriptorpb.FieldDescriptorProto{
				field("key", 1, req, str, ""),
				field("value", 2, opt, str, ""),
			}},
			{Name: proto.String("Record"), Field: []*descriptorpb.FieldDescriptorProto{
				field("partition_key_index", 1, req, u64, ""),
				field("explicit_hash_key_index", 2, opt, u64, ""),
				field("data", 3, req, byt, ""),
				field("tags", 4, rep, msg, ".kpltest.Tag"),
			}},
		},
	}, nil)
	if err != nil {
		panic(err)
	}
	return fd.Messages().ByName("AggregatedRecord")
}()

// reference de-aggregates body with the protobuf runtime and math/big: what a
// KCL would return, with a malformed aggregate reported as !ok.
func reference(body []byte, start, end *big.Int) (subs []kpl.SubRecord, ok, outside bool) {
	m := dynamicpb.NewMessage(aggregatedRecordDesc)
	if err := proto.Unmarshal(body, m); err != nil {
		return nil, false, false
	}
	fields := aggregatedRecordDesc.Fields()
	pks := m.Get(fields.ByNumber(1)).List()
	ehks := m.Get(fields.ByNumber(2)).List()
	recs := m.Get(fields.ByNumber(3)).List()
	for i := 0; i < recs.Len(); i++ {
		r := recs.Get(i).Message()
		rf := r.Descriptor().Fields()
		pki := r.Get(rf.ByNumber(1)).Uint()
		if pki >= uint64(pks.Len()) {
			return nil, false, false
		}
		s := kpl.SubRecord{PartitionKey: pks.Get(int(pki)).String(), Data: r.Get(rf.ByNumber(3)).Bytes(), SubSequence: int64(i)}
		key := kpl.HashKey(s.PartitionKey)
		if r.Has(rf.ByNumber(2)) {
			ehki := r.Get(rf.ByNumber(2)).Uint()
			if ehki >= uint64(ehks.Len()) {
				return nil, false, false
			}
			s.ExplicitHashKey = ehks.Get(int(ehki)).String()
			var valid bool
			if key, valid = new(big.Int).SetString(s.ExplicitHashKey, 10); !valid {
				return nil, false, false
			}
		}
		if key.Cmp(start) < 0 || key.Cmp(end) > 0 {
			outside = true
		}
		subs = append(subs, s)
	}
	return subs, true, outside
}

// FuzzDeaggregate checks that Deaggregate never panics, agrees with the
// protobuf runtime on every input, and that whatever it reads as an aggregate
// re-aggregates to the same sub-records. With framed set the input is the
// protobuf body and gets a valid magic and MD5, so the fuzzer explores the
// parser rather than the digest check.
func FuzzDeaggregate(f *testing.F) {
	seed := func(recs ...kpl.SubRecord) []byte {
		b, err := kpl.Aggregate(recs)
		if err != nil {
			f.Fatal(err)
		}
		return b[4 : len(b)-16]
	}
	f.Add(seed(kpl.SubRecord{PartitionKey: "a", Data: []byte("x")}), true, false)
	f.Add(seed(kpl.SubRecord{PartitionKey: "a", ExplicitHashKey: "12", Data: []byte("x")},
		kpl.SubRecord{PartitionKey: "user-42", Data: []byte("yy")}), true, true)
	f.Add(wrap(seed(kpl.SubRecord{PartitionKey: "b", Data: []byte("z")})), false, false)
	f.Add(wrap(recordField(ehkEntry(pkEntry(nil, "a"), "-0"), rec(0, 0, "d"))), false, true)
	f.Add([]byte("plain"), false, false)

	lower := mustRange(f, "0", "170141183460469231731687303715884105727")
	f.Fuzz(func(t *testing.T, in []byte, framed, ranged bool) {
		data := in
		if framed {
			data = wrap(in)
		}
		r := (*kpl.HashRange)(nil)
		start, end := big.NewInt(0), mustRange(t, "0", maxKey).End
		if ranged {
			r, start, end = lower, lower.Start, lower.End
		}
		subs, aggregated, err := kpl.Deaggregate(data, "outer", r)

		want, ok, outside := []kpl.SubRecord(nil), false, false
		if kpl.IsAggregated(data) && framed {
			want, ok, outside = reference(in, start, end)
		}
		switch {
		case framed && kpl.IsAggregated(data) && ok != aggregated:
			t.Fatalf("aggregated = %v, reference parser says %v", aggregated, ok)
		case !aggregated:
			if err != nil || len(subs) != 1 || subs[0].PartitionKey != "outer" || string(subs[0].Data) != string(data) {
				t.Fatalf("plain record: got %+v, %v", subs, err)
			}
			return
		case errors.Is(err, kpl.ErrOutOfShardRange):
			if subs != nil {
				t.Fatalf("%d sub-records with ErrOutOfShardRange", len(subs))
			}
			if framed && !outside {
				t.Fatalf("ErrOutOfShardRange, reference parser finds every key in range: %v", err)
			}
			return
		case err != nil:
			t.Fatalf("unexpected error: %v", err)
		}
		if framed {
			if outside {
				t.Fatal("sub-records returned, reference parser finds a key out of range")
			}
			checkSubs(t, subs, want)
		}
		if len(subs) == 0 {
			return // an aggregate of nothing; Aggregate refuses to write one
		}
		again, err := kpl.Aggregate(subs)
		if err != nil {
			t.Fatalf("Aggregate(Deaggregate(…)): %v", err)
		}
		subs2, aggregated, err := kpl.Deaggregate(again, "outer", r)
		if err != nil || !aggregated {
			t.Fatalf("re-aggregated: aggregated %v, err %v", aggregated, err)
		}
		checkSubs(t, subs2, subs)
	})
}
