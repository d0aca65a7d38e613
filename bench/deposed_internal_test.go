package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// A deposed owner's state write that is already on its way to Redis when the new owner starts must not
// land (the interleaving inferred from chaos seed 2's failure, made deterministic): old owner A writes a
// flush's rows (user X: count 3) and sends its Redis state write, which the network holds; A's
// DynamoDB goes away, so its lease runs out and B takes the shard from the older checkpoint, one record
// per flush; while B writes X's row from its older view (count 2), the network delivers A's held state
// write. Without a fence it lands (position of the 3rd event, beyond B's), B's own state write is
// refused and B finds its next flush already written ("dropped effects …"); the shard's fence, raised
// by B before it read any state, refuses it. The row must end at count 3 and B must never find its
// effects already written by someone else.
func TestDeposedOwnerLateStateWrite(t *testing.T) {
	ctx := context.Background()
	kin, ddb, rdb := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.Redis(t)
	stream := testenv.Stream(t, kin, 1)
	leases := testenv.LeaseTable(t, ddb)
	sessions := testenv.Name(t, "sessions")
	if _, err := provision.EnsureSessionsTable(ctx, ddb, sessions); err != nil {
		t.Fatal(err)
	}
	offers, errs := testenv.Stream(t, kin, 1), testenv.Stream(t, kin, 1)
	prefix := testenv.Name(t, "p") + ":"
	ropts, err := redis.ParseURL(os.Getenv("CLICKFLEET_REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}

	// Each worker gets its own Redis proxy and its own DynamoDB chain (Toxiproxy → counting layer).
	px := faults.NewProxies()
	t.Cleanup(px.Close)
	front := map[string]string{}
	layers := map[string]*faults.AWSLayer{}
	for _, w := range []string{"a", "b"} {
		l, endpoint := testenv.AWSFaultLayer(t, os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"), 1)
		layers[w] = l
		var err error
		if front["ddb-"+w], err = px.Add("ddb-"+w, "127.0.0.1:0", strings.TrimPrefix(endpoint, "http://")); err != nil {
			t.Fatal(err)
		}
		if front["redis-"+w], err = px.Add("redis-"+w, "127.0.0.1:0", ropts.Addr); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if d := os.Getenv("CLICKFLEET_TEST_LOGS"); d != "" { // whole logs, for debugging
		dir = d
	}
	fleet := func(w string, extra ...string) *Fleet {
		return &Fleet{Binary: testenv.Binary(t), LogDir: dir, Env: []string{"AWS_ENDPOINT_URL_DYNAMODB=http://" + front["ddb-"+w]},
			Args: append([]string{"--processor", "actors", "--stream", stream, "--lease-table", leases, "--sessions-table", sessions,
				"--offers-stream", offers, "--errors-stream", errs, "--redis-url", "redis://" + front["redis-"+w] + "/0", "--key-prefix", prefix,
				"--geo-mmdb", "", "--failover-time", "3s", "--take-interval", "500ms", "--idle-time", "100ms", "--shard-sync-interval", "2s",
				"--flush-interval", "200ms", "--session-update-interval", "1ms"}, extra...)}
	}
	fa, fb := fleet("a"), fleet("b", "--max-records", "1", "--flush-max-records", "1")
	t.Cleanup(func() {
		fa.StopAll()
		fb.StopAll()
		if t.Failed() {
			for _, w := range []string{"A", "B"} {
				b, _ := os.ReadFile(dir + "/" + w + ".log")
				t.Logf("log of %s (last 4000 bytes):\n%s", w, tailString(string(b), 4000))
			}
		}
	})
	owner := func() (lease.Lease, bool) {
		ls, err := lease.NewTable(ddb, leases).List(ctx)
		if err != nil || len(ls) != 1 {
			return lease.Lease{}, false
		}
		return ls[0], true
	}
	if err := fa.Start(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "A to hold the lease", 60*time.Second, func() bool { l, ok := owner(); return ok && l.Owner == "A" })
	if err := fb.Start(ctx, "B"); err != nil {
		t.Fatal(err)
	}

	user := "x"
	base := int64(1_764_547_200_000)
	put := func(offsets ...int64) []string {
		var entries []ktypes.PutRecordsRequestEntry
		for _, o := range offsets {
			data := fmt.Sprintf(`{"timestamp":%q,"user_id":%q,"click_id":"c%d","event_name":"Search","user_ip":""}`,
				time.UnixMilli(base+o).UTC().Format("2006-01-02 15:04:05.000000"), user, o)
			entries = append(entries, ktypes.PutRecordsRequestEntry{Data: []byte(data), PartitionKey: aws.String(user)})
		}
		out, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		var seqs []string
		for _, r := range out.Records {
			if r.ErrorCode != nil {
				t.Fatalf("put: %s", aws.ToString(r.ErrorMessage))
			}
			seqs = append(seqs, aws.ToString(r.SequenceNumber))
		}
		return seqs
	}
	rowCount := func() int64 {
		got, err := scanChaosSessions(ctx, ddb, sessions)
		if err != nil {
			return -1
		}
		for _, s := range got {
			if s.UserID == user {
				return s.EventCount
			}
		}
		return 0
	}
	// e1, flushed and checkpointed by A.
	s1 := put(0)
	testenv.WaitFor(t, "A to checkpoint the first event", 60*time.Second, func() bool { l, _ := owner(); return l.Checkpoint.SequenceNumber == s1[0] })

	// e2 and e3 in one flush of A: its rows land (slowly); the network holds its state write.
	if _, err := px.Latency("ddb-a", 400*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	batches, _ := layers["a"].Total("BatchWriteItem")
	writes := sessionWrites(fa, "A")
	s23 := put(1000, 2000)
	// The rows' request passed the proxy; its answer takes another 0.4 s, and the state write follows it.
	testenv.WaitFor(t, "A's BatchWriteItem to reach DynamoDB", 30*time.Second, func() bool { n, _ := layers["a"].Total("BatchWriteItem"); return n > batches })
	held, err := px.Latency("redis-a", time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "A's rows (count 3)", 30*time.Second, func() bool { return rowCount() == 3 })
	// A counts the rows when their answer arrives, and sends the state write right after.
	testenv.WaitFor(t, "A to have its rows' answer", 30*time.Second, func() bool { return sessionWrites(fa, "A") > writes })
	// A loses DynamoDB: its lease runs out by its own clock and B takes over.
	if err := px.Disable("ddb-a"); err != nil {
		t.Fatal(err)
	}

	// B takes over from e1's checkpoint and flushes one record at a time, slowly.
	if _, err := px.Latency("ddb-b", 400*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	bBatches, _ := layers["b"].Total("BatchWriteItem")
	testenv.WaitFor(t, "B to take the lease", 60*time.Second, func() bool { l, _ := owner(); return l.Owner == "B" })
	testenv.WaitFor(t, "B's first BatchWriteItem (e2 only)", 60*time.Second, func() bool { n, _ := layers["b"].Total("BatchWriteItem"); return n > bBatches })
	// B's rows for e2 are written, its state write follows in 0.4 s: A's held writes arrive now.
	if err := px.Remove("redis-a", held); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "B to checkpoint e3", 90*time.Second, func() bool { l, _ := owner(); return l.Owner == "B" && l.Checkpoint.SequenceNumber == s23[1] })
	if err := px.Clear("ddb-b"); err != nil {
		t.Fatal(err)
	}
	if err := fb.Terminate("B", time.Minute); err != nil {
		t.Fatal(err)
	}
	h, _ := rdb.HGetAll(ctx, session.UserKey(prefix, user)).Result()
	if n := rowCount(); n != 3 {
		t.Fatalf("the session row counts %d events after the takeover, want 3 (Redis state: %v)", n, h)
	}
	if b, _ := os.ReadFile(dir + "/B.log"); strings.Contains(string(b), "dropped effects of users already written beyond this flush") {
		t.Fatalf("B found its effects already written: a deposed owner's write landed after B started (Redis state: %v)", h)
	}
}

// sessionWrites reads clickfleet_actors_session_writes_total from worker id of f (-1 when it does not answer).
func sessionWrites(f *Fleet, id string) float64 {
	f.mu.Lock()
	w := f.workers[id]
	f.mu.Unlock()
	if w == nil {
		return -1
	}
	m, err := scrape(context.Background(), w.addr, "clickfleet_actors_session_writes_total")
	if err != nil {
		return -1
	}
	return m[0]
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
