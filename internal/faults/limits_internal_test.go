package faults

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
)

// fakeLimits is a Limits whose clock the test moves; it never reaches its upstream.
func fakeLimits(t *testing.T) (*Limits, *time.Time) {
	t.Helper()
	layer, err := NewAWSLayer("http://127.0.0.1:1", 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLimits(layer, LimitsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	return l, &now
}

// GetRecords on one shard: five calls at once (a second's worth), then one per 200 ms; a read of 10 MiB
// refuses the shard's calls for the next 4 s (its first 2 MiB are the second's), whatever the call budget;
// reads of less than 2 MiB a second, however they fall, are never refused for bytes.
func TestReadLimitsOnOneShard(t *testing.T) {
	l, now := fakeLimits(t)
	admit := func() string { return l.admitRead("s", "shardId-0") }
	for i := range 5 {
		if got := admit(); got != "" {
			t.Fatalf("call %d of a quiet shard refused (%s)", i+1, got)
		}
	}
	if got := admit(); got != "calls" {
		t.Fatalf("sixth call in the same instant: %q, want refused for calls", got)
	}
	*now = now.Add(199 * time.Millisecond)
	if got := admit(); got != "calls" {
		t.Fatalf("after 199 ms: %q, want still refused (one call per 200 ms)", got)
	}
	*now = now.Add(time.Millisecond)
	if got := admit(); got != "" {
		t.Fatalf("after 200 ms: refused (%s), want a call admitted", got)
	}
	if got := l.admitRead("s", "shardId-1"); got != "" {
		t.Fatalf("another shard's first call refused (%s): limits are per shard", got)
	}

	*now = now.Add(10 * time.Second) // calls back at 5
	l.afterRead(issuedIterator{stream: "s", shard: "shardId-0"}, 10*mib, nil)
	*now = now.Add(3990 * time.Millisecond)
	if got := admit(); got != "bytes" {
		t.Fatalf("3.99 s after a 10 MiB read: %q, want refused for bytes", got)
	}
	*now = now.Add(10 * time.Millisecond)
	if got := admit(); got != "" {
		t.Fatalf("4 s after a 10 MiB read: refused (%s), want admitted", got)
	}

	// Two readers calling 10 ms apart every 500 ms: reading 0.45 MiB each (1.8 MiB/s together) they are
	// never refused for bytes, though each read follows the other's at once; reading 0.9 MiB each (3.6
	// MiB/s offered), some calls are refused for bytes.
	*now = now.Add(10 * time.Second)
	it := issuedIterator{stream: "s", shard: "shardId-2"}
	refusedForBytes := 0
	for i := range 80 { // 20 s
		if i%2 == 0 {
			*now = now.Add(490 * time.Millisecond)
		} else {
			*now = now.Add(10 * time.Millisecond)
		}
		got := l.admitRead("s", "shardId-2")
		switch {
		case i < 40 && got != "":
			t.Fatalf("call %d, reading 1.8 MiB/s in all: refused for %s", i, got)
		case i < 40:
			l.afterRead(it, 45*mib/100, nil)
		case got == "bytes":
			refusedForBytes++
		case got == "":
			l.afterRead(it, 9*mib/10, nil)
		}
	}
	if refusedForBytes == 0 {
		t.Fatal("reads offered at 3.6 MiB/s were never refused for bytes")
	}
	st := l.Stats("GetRecords", "s", "shardId-0")
	if st.Calls != 10 || st.Throttled != 3 || st.Bytes != 10*mib {
		t.Fatalf("stats %+v, want 10 calls, 3 throttled, 10 MiB", st)
	}
}

// PutRecords on one shard: 1,000 records and 1 MiB per second, each a bucket holding one second's worth.
func TestWriteLimitsOnOneShard(t *testing.T) {
	l, now := fakeLimits(t)
	write := func(size int64) string { return l.admitWrite("PutRecords", "s", "shardId-0", size, *now) }
	for i := range 1000 {
		if got := write(10); got != "" {
			t.Fatalf("record %d of 1000 refused (%s)", i+1, got)
		}
	}
	if got := write(10); got != "records" {
		t.Fatalf("record 1001 in the same instant: %q, want refused for records", got)
	}
	*now = now.Add(2 * time.Second)
	if got := write(mib - 10*1000); got != "" {
		t.Fatalf("a record of 1 MiB less 10,000 bytes after 2 s: refused (%s)", got)
	}
	if got := write(10_001); got != "bytes" {
		t.Fatalf("10,001 more bytes in the same instant: %q, want refused for bytes", got)
	}
	if got := write(10_000); got != "" {
		t.Fatalf("the last 10,000 bytes of the second: refused (%s)", got)
	}
}

// A control-plane rate counts per its scope: ListShards per stream, DescribeStreamSummary per account.
func TestCallLimitsCountPerScope(t *testing.T) {
	l, now := fakeLimits(t)
	lim := callLimits["DescribeStreamSummary"]
	rt := rate{lim.perSecond, lim.perSecond, "DescribeStreamSummary", "calls"}
	for i := range 20 {
		if !l.admitCall("DescribeStreamSummary", rt, "", "") {
			t.Fatalf("call %d of 20 refused", i+1)
		}
	}
	if l.admitCall("DescribeStreamSummary", rt, "", "") {
		t.Fatal("call 21 in the same instant admitted")
	}
	*now = now.Add(50 * time.Millisecond)
	if !l.admitCall("DescribeStreamSummary", rt, "", "") {
		t.Fatal("a call 50 ms later refused (20 per second: one per 50 ms)")
	}
}

// dataLen is the decoded length of a base64 blob, for every padding.
func TestDataLen(t *testing.T) {
	for n := range 12 {
		raw := strings.Repeat("x", n)
		enc, _ := json.Marshal([]byte(raw)) // encoding/json writes []byte as padded base64
		var d dataLen
		if err := json.Unmarshal(enc, &d); err != nil {
			t.Fatal(err)
		}
		dec, err := base64.StdEncoding.DecodeString(strings.Trim(string(enc), `"`))
		if err != nil || int(d) != len(dec) || int(d) != n {
			t.Fatalf("%s: dataLen %d, want %d", enc, d, n)
		}
	}
}

// Records go to the open shard whose range holds the MD5 of their partition key read as a number, or
// their explicit hash key.
func TestShardMapPlacesRecords(t *testing.T) {
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	top := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	key := func(n *big.Int) hashKey { h, _ := parseHashKey(n.String()); return h }
	m := &shardMap{open: []shardRange{
		{lo: key(big.NewInt(0)), hi: key(new(big.Int).Sub(half, big.NewInt(1))), id: "low"},
		{lo: key(half), hi: key(top), id: "high"},
	}}
	for _, pk := range []string{"user1", "user2", "35", "x", ""} {
		sum := md5.Sum([]byte(pk))
		want := "low"
		if new(big.Int).SetBytes(sum[:]).Cmp(half) >= 0 {
			want = "high"
		}
		if got, ok := m.find(recordHashKey(pk, "")); !ok || got != want {
			t.Errorf("partition key %q: shard %q (%v), want %q", pk, got, ok, want)
		}
	}
	if got, _ := m.find(recordHashKey("user1", half.String())); got != "high" {
		t.Errorf("explicit hash key 2^127: %q, want high", got)
	}
	if got, _ := m.find(recordHashKey("user1", "0")); got != "low" {
		t.Errorf("explicit hash key 0: %q, want low", got)
	}
	gap := &shardMap{open: []shardRange{{lo: key(half), hi: key(top), id: "high"}}}
	if got, ok := gap.find(key(big.NewInt(5))); ok {
		t.Errorf("a key below every listed range was placed on %q", got)
	}
}
