package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Kinesis failing a tenth of the entries of every PutRecords call (a partial failure; the fault layer
// in front of the emulator) loses none of a flush's outputs and keeps each user's order on the output
// stream: read back, the last copy of each user's records comes in the order the user's records were
// given, and nothing else is on the stream. The outputs are given interleaved across users (every call
// carries many users' records), with one user's more than a call holds.
func TestPutRecordsKeepsEachUsersOrderThroughPartialFailures(t *testing.T) {
	s := newSinks(t)
	out := testenv.Stream(t, s.kin, 2)
	cfg := s.config("in")
	l := refusingKinesis(t, &cfg, 0.1, 7)
	cfg.WriteConcurrency = 4
	sh := &shardShared{f: newFactory(t, cfg), shard: testShard, log: zap.NewNop()}

	// 40 users with 20 records each, round robin, then a busy user's 650 among the last ones.
	want := map[string][]string{}
	var recs []outRecord
	add := func(user string) {
		data := fmt.Sprintf("%s/%d", user, len(want[user]))
		want[user] = append(want[user], data)
		recs = append(recs, outRecord{key: user, data: []byte(data)})
	}
	for i := range 20 * 40 {
		add(fmt.Sprintf("u%02d", i%40))
		if i >= 20*40-650 {
			add("busy")
		}
	}
	if err := sh.putRecords(context.Background(), out, "offer", recs); err != nil {
		t.Fatal(err)
	}
	if n := l.FailedEntries("PutRecords"); n < len(recs)/20 {
		t.Fatalf("the layer failed %d entries of %d: the test did not exercise partial failures", n, len(recs))
	}

	got := map[string][]string{}
	copies := 0
	for _, r := range readStream(t, s.kin, out) {
		user := aws.ToString(r.PartitionKey)
		if !strings.HasPrefix(string(r.Data), user+"/") {
			t.Fatalf("record %q under partition key %q", r.Data, user)
		}
		got[user] = append(got[user], string(r.Data))
	}
	for user, seq := range got {
		last := lastCopies(seq)
		copies += len(seq) - len(last)
		if !slices.Equal(last, want[user]) {
			t.Errorf("user %s: the last copies of its records are\n %v\nwant\n %v", user, last, want[user])
		}
	}
	for user := range want {
		if _, ok := got[user]; !ok {
			t.Errorf("user %s: none of its %d records on the stream", user, len(want[user]))
		}
	}
	t.Logf("%d records, %d entries failed by the layer, %d stored again behind a failed entry of their user", len(recs), l.FailedEntries("PutRecords"), copies)
}

// refusingKinesis points cfg's Kinesis client at a fault layer in front of the emulator that refuses
// fraction of the entries of every PutRecords call (drawn from seed) as a throttled shard does.
func refusingKinesis(t *testing.T, cfg *Config, fraction float64, seed uint64) *faults.AWSLayer {
	t.Helper()
	l, endpoint := testenv.AWSFaultLayer(t, os.Getenv("AWS_ENDPOINT_URL_KINESIS"), seed)
	if err := l.Set(faults.Fault{Kind: faults.ThroughputExceeded, Fraction: fraction, Entries: true}); err != nil {
		t.Fatal(err)
	}
	cfg.Kinesis = kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(endpoint) })
	return l
}

// lastCopies returns l without every element that appears again later in l.
func lastCopies(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for i := len(l) - 1; i >= 0; i-- {
		if !seen[l[i]] {
			seen[l[i]] = true
			out = append(out, l[i])
		}
	}
	slices.Reverse(out)
	return out
}

// outRecs returns records of the given keys, each key's numbered in order: "a/0", "b/0", "a/1", ….
func outRecs(keys ...string) []outRecord {
	n := map[string]int{}
	out := make([]outRecord, len(keys))
	for i, k := range keys {
		out[i] = outRecord{key: k, data: []byte(fmt.Sprintf("%s/%d", k, n[k]))}
		n[k]++
	}
	return out
}

// repeat returns key n times.
func repeat(key string, n int) []string { return slices.Repeat([]string{key}, n) }

// shape describes a call as its runs of one key: "a×2 b×1".
func shape(call []outRecord) string {
	var parts []string
	for i := 0; i < len(call); {
		j := i
		for j < len(call) && call[j].key == call[i].key {
			j++
		}
		parts = append(parts, fmt.Sprintf("%s×%d", call[i].key, j-i))
		i = j
	}
	return strings.Join(parts, " ")
}

// planPuts groups each key's records, packs whole groups into calls within Kinesis' limits, and chains
// only the calls a group continues over; every key's records keep their order.
func TestPlanPutsKeepsEachKeysOrder(t *testing.T) {
	big := func(key string, n int) []outRecord { // n records of 1 MiB
		out := make([]outRecord, n)
		for i := range out {
			out[i] = outRecord{key: key, data: append([]byte(fmt.Sprintf("%s/%d ", key, i)), make([]byte, 1<<20)...)}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		recs  []outRecord
		lanes [][]string // each lane's calls, by shape
	}{
		{"interleaved keys grouped in one call", outRecs("a", "b", "a", "c", "b", "a"), [][]string{{"a×3 b×2 c×1"}}},
		{"a group that does not fit starts the next call", outRecs(slices.Concat(repeat("a", 200), repeat("b", 200), repeat("c", 200))...),
			[][]string{{"a×200 b×200"}, {"c×200"}}},
		{"a group larger than a call continues in the next ones, in one lane", outRecs(slices.Concat(repeat("x", 10), repeat("h", 1200), repeat("y", 10))...),
			[][]string{{"x×10"}, {"h×500", "h×500", "h×200 y×10"}}},
		{"the size limit", slices.Concat(big("k", 3), big("m", 3)), [][]string{{"k×3"}, {"m×3"}}},
		{"the size limit within a group", big("k", 6), [][]string{{"k×4", "k×2"}}},
		{"one record", outRecs("a"), [][]string{{"a×1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lanes := planPuts(tc.recs)
			var got [][]string
			perKey := map[string][]string{}
			for _, lane := range lanes {
				var calls []string
				for _, call := range lane {
					calls = append(calls, shape(call))
					size := 0
					for _, r := range call {
						size += len(r.data) + len(r.key)
						perKey[r.key] = append(perKey[r.key], strings.Fields(string(r.data))[0])
					}
					if len(call) > 500 || size > 5<<20 {
						t.Errorf("a call of %d records, %d bytes", len(call), size)
					}
				}
				got = append(got, calls)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.lanes) {
				t.Fatalf("lanes %v, want %v", got, tc.lanes)
			}
			for k, l := range perKey {
				for i, d := range l {
					if d != fmt.Sprintf("%s/%d", k, i) {
						t.Fatalf("key %s: record %d is %s", k, i, d)
					}
				}
			}
		})
	}
}

// A call's queue: a key whose entry failed keeps that entry and every later record of its, stored or
// not, and sends them one at a time, then doubling while nothing of it fails; other keys go whole.
func TestPutQueueOrderAfterAFailure(t *testing.T) {
	q := newPutQueue(outRecs("a", "a", "a", "a", "a", "a", "b", "b", "b"))
	for i, step := range []struct {
		sent   string   // the entries of the attempt
		failed []string // which of them fail
		stored int
	}{
		{"a/0 a/1 a/2 a/3 a/4 a/5 b/0 b/1 b/2", []string{"a/1", "b/2"}, 3}, // a/2…a/5 stored too, but ahead of a/1
		{"a/1 b/2", nil, 2},
		{"a/2 a/3", []string{"a/3"}, 1},
		{"a/3", nil, 1},
		{"a/4 a/5", nil, 2},
	} {
		sent := q.next()
		var names []string
		failed := make([]bool, len(sent))
		for j, r := range sent {
			names = append(names, string(r.data))
			failed[j] = slices.Contains(step.failed, string(r.data))
		}
		if strings.Join(names, " ") != step.sent {
			t.Fatalf("attempt %d sends %v, want %s", i+1, names, step.sent)
		}
		if n := q.done(failed); n != step.stored {
			t.Fatalf("attempt %d stored %d for good, want %d", i+1, n, step.stored)
		}
	}
	if !q.empty() {
		t.Fatalf("%d records left after the last attempt", q.len())
	}
}

// Against a model of Kinesis that stores every entry not failed, in the call's order, random failures of
// entries never lose a record, and the last copy of each key's records is in the key's order.
func TestPutQueueKeepsOrderUnderRandomFailures(t *testing.T) {
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 11))
		var keys []string
		for range 50 + r.IntN(700) {
			keys = append(keys, fmt.Sprintf("k%d", r.IntN(1+r.IntN(8))))
		}
		recs := outRecs(keys...)
		want := map[string][]string{}
		for _, rec := range recs {
			want[rec.key] = append(want[rec.key], string(rec.data))
		}
		stream := map[string][]string{}
		p := 0.05 + 0.4*r.Float64()
		attempts := 0
		for _, lane := range planPuts(recs) {
			for _, call := range lane {
				q := newPutQueue(call)
				for !q.empty() {
					if attempts++; attempts > 100000 {
						t.Fatalf("seed %d: no end after %d attempts", seed, attempts)
					}
					sent := q.next()
					failed := make([]bool, len(sent))
					for j, rec := range sent {
						if failed[j] = r.Float64() < p; !failed[j] {
							stream[rec.key] = append(stream[rec.key], string(rec.data))
						}
					}
					q.done(failed)
				}
			}
		}
		for k, l := range want {
			if got := lastCopies(stream[k]); !slices.Equal(got, l) {
				t.Fatalf("seed %d (failure rate %.2f): key %s's last copies\n %v\nwant\n %v", seed, p, k, got, l)
			}
		}
	}
}

// TestPartlyRefusedPutRecordsBacksOff: an output stream that refuses half of every call's entries (a
// throttled shard) is sent the rest after pauses that double from RetryBackoff, not after the same
// short pause each time, and every record is stored.
func TestPartlyRefusedPutRecordsBacksOff(t *testing.T) {
	s := newSinks(t)
	out := testenv.Stream(t, s.kin, 2)
	const first = 20 * time.Millisecond
	cfg := s.config("in")
	l := refusingKinesis(t, &cfg, 0.5, 11)
	cfg.RetryBackoff = first
	sh := &shardShared{f: newFactory(t, cfg), shard: testShard, log: zap.NewNop()}
	keys := make([]string, 200) // one record per user: every attempt sends all that is left
	for i := range keys {
		keys[i] = fmt.Sprintf("u%03d", i)
	}
	start := time.Now()
	if err := sh.putRecords(context.Background(), out, "offer", outRecs(keys...)); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	calls, _ := l.Total("PutRecords")
	if calls < 5 {
		t.Fatalf("%d PutRecords calls: the layer did not refuse entries often enough to test the pauses", calls)
	}
	// Pause k is drawn from [d_k/2, d_k], d_k = first·2^k up to a second: the calls' pauses take at least
	// the sum of the halves. The same 20 ms pause each time would take at most (calls−1)·20 ms.
	var least time.Duration
	for k, d := 0, first; k < calls-1; k, d = k+1, min(2*d, time.Second) {
		least += d / 2
	}
	if took < least {
		t.Errorf("%d calls took %v: the pauses between partly refused calls did not double (at least %v)", calls, took, least)
	}
	stored := map[string]bool{}
	for _, r := range readStream(t, s.kin, out) {
		stored[string(r.Data)] = true
	}
	for _, k := range keys {
		if !stored[k+"/0"] {
			t.Errorf("record %s/0 is not on the stream", k)
		}
	}
	t.Logf("%d calls in %v, %d entries refused", calls, took.Round(time.Millisecond), l.FailedEntries("PutRecords"))
}
