package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/clickfleet/clickfleet/consumer/kpl"
	"github.com/clickfleet/clickfleet/internal/crashpoint"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// fleet is one archive application (its stream, lease table and bucket) served by `clickfleet archive`
// processes built with the crash points.
type fleet struct {
	t      *testing.T
	kin    *kinesis.Client
	ddb    *dynamodb.Client
	s3     *s3.Client
	stream string
	leases string
	bucket string

	closed map[string]bool // shards closed by a reshard

	mu    sync.Mutex
	procs map[string]*exec.Cmd
	logs  map[string]*bytes.Buffer
}

func newFleet(t *testing.T, shards int32) *fleet {
	f := &fleet{t: t, kin: testenv.Kinesis(t), ddb: testenv.DynamoDB(t), s3: testenv.S3(t), procs: map[string]*exec.Cmd{}, logs: map[string]*bytes.Buffer{}}
	f.stream = testenv.Stream(t, f.kin, shards)
	f.bucket = testenv.Bucket(t, f.s3)
	f.leases = testenv.Name(t, "archive-leases")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lease.EnsureTable(ctx, f.ddb, f.leases); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for id, p := range f.procs {
			if p.ProcessState == nil {
				_ = p.Process.Signal(syscall.SIGCONT)
				_ = p.Process.Kill()
				_ = p.Wait()
			}
			if t.Failed() {
				t.Logf("log of worker %s:\n%s", id, tail(f.logs[id].String(), 4000))
				if dir := os.Getenv("CLICKFLEET_TEST_LOGS"); dir != "" { // whole logs, for debugging
					_ = os.WriteFile(filepath.Join(dir, t.Name()+"-"+id+".log"), f.logs[id].Bytes(), 0o644)
				}
			}
		}
		_ = lease.DeleteTables(context.Background(), f.ddb, f.leases)
	})
	return f
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// start runs a worker; env is added to the test's environment.
func (f *fleet) start(id string, env ...string) *exec.Cmd {
	f.t.Helper()
	args := []string{"archive", "--stream", f.stream, "--lease-table", f.leases, "--worker-id", id,
		"--lake-url", "s3://" + f.bucket + "/", "--http-listen", "", "--log-format", "json", "--redis-url", "", "--geo-mmdb", "",
		"--failover-time", "2s", "--take-interval", "300ms", "--idle-time", "100ms", "--shard-sync-interval", "1s",
		"--parent-poll-interval", "300ms", "--max-records", "500", "--buffer-bytes", "32768",
		"--buffer-interval", "1s", "--buffer-interval-unchecked", "--shutdown-timeout", "15s"}
	cmd := exec.Command(testenv.Binary(f.t), args...)
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.procs[id], f.logs[id] = cmd, &buf
	f.mu.Unlock()
	return cmd
}

// stopAll stops every running worker with SIGTERM and checks that each exits 0.
func (f *fleet) stopAll() {
	f.t.Helper()
	for id, p := range f.procs {
		if p.ProcessState != nil {
			continue
		}
		_ = p.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(); err != nil {
			f.t.Errorf("worker %s did not stop cleanly: %v\n%s", id, err, tail(f.logs[id].String(), 4000))
		}
	}
}

// input is what a test put on the stream: each user record's bytes, by identity, and the last position
// put on each shard.
type input struct {
	mu    sync.Mutex
	data  map[string]string           // identity → record bytes
	bad   map[string]bool             // record bytes of malformed records
	last  map[string]lease.Checkpoint // shard → last position put
	count int
}

func newInput() *input {
	return &input{data: map[string]string{}, bad: map[string]bool{}, last: map[string]lease.Checkpoint{}}
}

// identity of a valid record as both the input and a Parquet row know it: the POC's click_id, or the
// lab's user_id and event time (unique per record here).
func identity(userID, clickID string, eventMs int64) string {
	if clickID != "" {
		return clickID
	}
	return userID + "@" + strconv.FormatInt(eventMs, 10)
}

// genRecords makes n user records starting at number from: both seed shapes, 1% malformed.
func genRecords(in *input, from, n int, r *rand.Rand) [][]byte {
	out := make([][]byte, n)
	in.mu.Lock()
	defer in.mu.Unlock()
	for j := range n {
		i := from + j
		u := strconv.Itoa(r.IntN(200))
		var b []byte
		switch {
		case i%100 == 99:
			if i%200 == 199 {
				b = []byte(fmt.Sprintf(`not json %d`, i))
			} else {
				b = []byte(fmt.Sprintf(`{"user_id":"%s","event_name":"Search","marker":"bad-%d"}`, u, i))
			}
			in.bad[string(b)] = true
		case i%2 == 0:
			click := fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15)
			b = []byte(fmt.Sprintf(`{"timestamp":"2021-07-12 12:01:58.%06d","user_id":"%s","pixel_id":"px%d","click_id":"%s","insertion_timestamp":"2021-07-12 12:01:58.732800","event_name":"ViewContent","user_ip":"","additional_data":{"time_on_data":%d,"percent_viewed":%d.5,"product_id":%d,"price":%d.25}}`,
				i%1000000, u, i, click, r.IntN(100), r.IntN(100), 100000+i, r.IntN(900)))
			in.data[click] = string(b)
		default:
			ms := int64(1_626_091_318_000) + int64(i)
			b = []byte(fmt.Sprintf(`{"user_id":"user%s","event_timestamp":"%d","event_name":"checkout","event_type":"click","device_type":"desktop"}`, u, ms))
			in.data[identity("user"+u, "", ms)] = string(b)
		}
		out[j] = b
	}
	in.count += n
	return out
}

// put puts n generated records: a third of them inside KPL aggregates of 10 (one partition key each, so
// an aggregate never straddles shards), the rest plain; failed entries are put again.
func (f *fleet) put(in *input, from, n int, seed uint64) {
	f.t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	recs := genRecords(in, from, n, r)
	type entry struct {
		data []byte
		pk   string
		subs int
	}
	var entries []entry
	for i := 0; i < len(recs); {
		pk := "pk-" + strconv.Itoa(r.IntN(1000))
		if r.IntN(3) == 0 && i+10 <= len(recs) {
			subs := make([]kpl.SubRecord, 10)
			for j := range subs {
				subs[j] = kpl.SubRecord{PartitionKey: pk, Data: recs[i+j]}
			}
			agg, err := kpl.Aggregate(subs)
			if err != nil {
				f.t.Fatal(err)
			}
			entries = append(entries, entry{agg, pk, 10})
			i += 10
			continue
		}
		entries = append(entries, entry{recs[i], pk, 0})
		i++
	}
	ctx := context.Background()
	for len(entries) > 0 {
		batch := entries[:min(500, len(entries))]
		reqs := make([]ktypes.PutRecordsRequestEntry, len(batch))
		for i, e := range batch {
			reqs[i] = ktypes.PutRecordsRequestEntry{Data: e.data, PartitionKey: aws.String(e.pk)}
		}
		out, err := f.kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(f.stream), Records: reqs})
		if err != nil {
			f.t.Fatalf("PutRecords: %v", err)
		}
		var again []entry
		in.mu.Lock()
		for i, res := range out.Records {
			if res.ErrorCode != nil {
				again = append(again, batch[i])
				continue
			}
			pos := lease.Checkpoint{SequenceNumber: aws.ToString(res.SequenceNumber)}
			if batch[i].subs > 0 {
				pos.SubSequence = int64(batch[i].subs - 1)
			}
			if cur, ok := in.last[aws.ToString(res.ShardId)]; !ok || pos.Compare(cur) > 0 {
				in.last[aws.ToString(res.ShardId)] = pos
			}
		}
		in.mu.Unlock()
		entries = append(again, entries[len(batch):]...)
	}
}

// leaseItems scans the lease table: shard → (owner, checkpoint).
func (f *fleet) leaseItems() map[string]struct {
	owner, handoffFrom string
	cp                 lease.Checkpoint
} {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := f.ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(f.leases), ConsistentRead: aws.Bool(true)})
	if err != nil {
		f.t.Fatalf("scan lease table: %v", err)
	}
	m := map[string]struct {
		owner, handoffFrom string
		cp                 lease.Checkpoint
	}{}
	str := func(it map[string]dtypes.AttributeValue, k string) string {
		if v, ok := it[k].(*dtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	for _, it := range out.Items {
		sub := int64(0)
		if v, ok := it["checkpointSubSequenceNumber"].(*dtypes.AttributeValueMemberN); ok {
			sub, _ = strconv.ParseInt(v.Value, 10, 64)
		}
		m[str(it, "leaseKey")] = struct {
			owner, handoffFrom string
			cp                 lease.Checkpoint
		}{str(it, "leaseOwner"), str(it, "checkpointOwner"), lease.Checkpoint{SequenceNumber: str(it, "checkpoint"), SubSequence: sub}}
	}
	return m
}

// archivedAll says every shard's checkpoint has reached the last position put on it (or SHARD_END).
func (f *fleet) archivedAll(in *input) bool {
	items := f.leaseItems()
	in.mu.Lock()
	defer in.mu.Unlock()
	for shard, last := range in.last {
		it, ok := items[shard]
		if !ok {
			if f.closed[shard] {
				continue // finished parents' leases are deleted once their children run
			}
			return false
		}
		if it.cp.IsShardEnd() {
			continue
		}
		if it.cp.IsSentinel() || it.cp.Compare(last) < 0 {
			return false
		}
	}
	return true
}

// verify checks the bucket against the input: every record in exactly one raw line, every valid one in
// exactly one Parquet row (read with the generic reader, columns as the lake schema says, under the hour
// of its object's first record), every malformed one in exactly one errors line.
func (f *fleet) verify(in *input) {
	t := f.t
	t.Helper()
	objs := listObjects(t, f.s3, f.bucket, "")
	raw, rows, errs := map[string]int{}, map[string]int{}, map[string]int{}
	var want []string
	for _, c := range lake.Events.Columns {
		want = append(want, c.Name)
	}
	slices.Sort(want)
	nObj := map[string]int{}
	for _, o := range objs {
		kind, rest, _ := strings.Cut(o.key, "/")
		nObj[kind]++
		parts := strings.SplitN(rest, "/", 5)
		if len(parts) != 5 || !strings.HasPrefix(parts[4], f.stream+"-shardId-") {
			t.Fatalf("key %s is not <kind>/year=/month=/day=/hour=/<stream>-<shard>-…", o.key)
		}
		hourPrefix := strings.Join(parts[:4], "/") + "/"
		switch kind {
		case "raw":
			for _, l := range lines(t, o) {
				raw[l]++
			}
		case "errors":
			for _, e := range errorLines(t, o) {
				errs[string(e.Data)]++
				if e.Reason == "" {
					t.Errorf("%s: an errors line without a reason", o.key)
				}
			}
		case "events":
			rs, names := parquetRows(t, o)
			got := slices.Clone(names)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%s has columns %v, want %v", o.key, got, want)
			}
			for i, r := range rs {
				at := time.UnixMilli(r["arrival_time"].Int64())
				if i == 0 && lake.HourPrefix(at) != hourPrefix {
					t.Errorf("%s: first row arrived %s, not in the key's hour", o.key, at.UTC())
				}
				id := identity(r["user_id"].String(), "", r["event_time"].Int64())
				if strings.HasPrefix(r["user_id"].String(), "user") {
					derived := messages.DerivedClickID(r["shard_id"].String(), r["sequence_number"].String(), r["sub_sequence"].Int64())
					if r["click_id"].String() != derived {
						t.Errorf("lab row %s: click_id %s, want the derived %s", id, r["click_id"].String(), derived)
					}
				} else {
					id = r["click_id"].String()
					if r["price"].IsNull() || r["product_id"].IsNull() {
						t.Errorf("POC row %s lacks price or product_id", id)
					}
				}
				rows[id]++
			}
		default:
			t.Fatalf("unexpected object %s", o.key)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	bad := 0
	for id, d := range in.data {
		if raw[d] != 1 {
			bad++
			if bad < 10 {
				t.Errorf("record %s: %d raw lines, want 1", id, raw[d])
			}
		}
		if rows[id] != 1 {
			bad++
			if bad < 10 {
				t.Errorf("record %s: %d Parquet rows, want 1", id, rows[id])
			}
		}
	}
	for d := range in.bad {
		if raw[d] != 1 || errs[d] != 1 {
			bad++
			if bad < 10 {
				t.Errorf("malformed record %q: %d raw lines and %d errors lines, want 1 and 1", d, raw[d], errs[d])
			}
		}
	}
	if len(rows) != len(in.data) || len(raw) != in.count {
		t.Errorf("%d distinct rows for %d valid records; %d distinct raw lines for %d records", len(rows), len(in.data), len(raw), in.count)
	}
	if bad > 0 {
		t.Fatalf("%d records not archived exactly once", bad)
	}
	t.Logf("%d records (%d malformed) in %d raw, %d events and %d errors objects, each exactly once", in.count, len(in.bad), nObj["raw"], nObj["events"], nObj["errors"])
}

// waitOwners waits until each of the workers holds at least one lease, and no handoff is under way.
func (f *fleet) waitOwners(d time.Duration, ids ...string) {
	f.t.Helper()
	waitFor(f.t, fmt.Sprintf("leases held by each of %v", ids), d, func() bool {
		held := map[string]bool{}
		for _, it := range f.leaseItems() {
			if it.handoffFrom != "" {
				return false
			}
			held[it.owner] = true
		}
		for _, id := range ids {
			if !held[id] {
				return false
			}
		}
		return true
	})
}

func waitExit137(t *testing.T, f *fleet, id string, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	p := f.procs[id]
	go func() { done <- p.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 137 {
			t.Fatalf("worker %s ended with %v, want exit status 137\n%s", id, err, tail(f.logs[id].String(), 3000))
		}
	case <-time.After(d):
		_ = p.Process.Kill()
		<-done
		t.Fatalf("worker %s did not reach its crash point within %s", id, d)
	}
}

// Three workers over four shards; one dies between an object's PUTs and its checkpoint (crash point
// after-put), another is killed with SIGKILL while its buffers hold records. The survivors and a
// replacement take the shards over; afterwards every record is in exactly one object of each kind it
// belongs to.
func TestFleetCrashes(t *testing.T) {
	f := newFleet(t, 4)
	in := newInput()
	f.start("crash-after-put", crashpoint.Env+"="+crashpoint.AfterPut+":3")
	f.start("killed")
	f.start("steady")
	f.waitOwners(60*time.Second, "crash-after-put", "killed", "steady")
	f.put(in, 0, 4000, 1)
	waitExit137(t, f, "crash-after-put", 60*time.Second)
	f.put(in, 4000, 3000, 2)
	// Kill the second worker once it has stored something, right after more records went in (so its
	// buffers hold some).
	waitFor(t, "the worker to be killed holding a checkpointed shard", 60*time.Second, func() bool {
		for _, it := range f.leaseItems() {
			if it.owner == "killed" && !it.cp.IsSentinel() {
				return true
			}
		}
		return false
	})
	f.put(in, 7000, 1500, 3) // records it is reading now, buffered and not yet stored
	if err := f.procs["killed"].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = f.procs["killed"].Wait()
	f.start("replacement")
	f.put(in, 8500, 1500, 4)
	waitFor(t, "every shard checkpointed at its last record", 90*time.Second, func() bool { return in.count == 10000 && f.archivedAll(in) })
	f.stopAll()
	f.verify(in)
}

// One worker is stopped (SIGSTOP) past the failover time while it holds shards, the others take them
// over, and it is resumed (SIGCONT): its own clock tells it the leases are gone, and its objects, if any
// were in flight, are the ones the new owners adopt. Then the stream is resharded 4 → 8 (UpdateShardCount)
// under load: parents end, children start after them. Every record ends in exactly one object.
func TestFleetStopContAndReshard(t *testing.T) {
	if os.Getenv("CLICKFLEET_STACK_KINESIS") == "kinesalite" {
		t.Skip("kinesalite does not support UpdateShardCount")
	}
	f := newFleet(t, 4)
	in := newInput()
	f.start("paused")
	f.start("w2")
	f.start("w3")
	f.waitOwners(60*time.Second, "paused", "w2", "w3")
	f.put(in, 0, 3000, 11)
	p := f.procs["paused"]
	stopped := false
	defer func() {
		if stopped {
			_ = p.Process.Signal(syscall.SIGCONT)
		}
	}()
	// Stopped while it owns a lease (the leader may have moved its leases away by a balancing handoff
	// before the stop; then it is resumed and stopped again): the leases owned once it stands still are
	// what it must give up.
	var held []string
	var stoppedAt time.Time
	owned := func() []string {
		var ids []string
		for id, it := range f.leaseItems() {
			if it.owner == "paused" {
				ids = append(ids, id)
			}
		}
		return ids
	}
	waitFor(t, "the worker stopped while it owns a lease", 60*time.Second, func() bool {
		if len(owned()) == 0 {
			return false
		}
		if err := p.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stoppedAt, stopped = time.Now(), true
		if held = owned(); len(held) > 0 {
			return true
		}
		if err := p.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		stopped = false
		return false
	})
	t.Logf("stopped the worker while it owned %v", held)
	// The leader may move a lease of the stopped worker by a balancing handoff at once (the lease's owner
	// changes before the worker hands it over); stopped past its failover time (2 s) the worker's own
	// clock ends every lease it held, which is what it must notice when resumed.
	time.Sleep(time.Until(stoppedAt.Add(3 * time.Second)))
	waitFor(t, "the stopped worker's leases taken by the others", 60*time.Second, func() bool { return len(owned()) == 0 })
	f.put(in, 3000, 2000, 12)
	resumed := time.Now()
	if err := p.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false

	ctx := context.Background()
	if _, err := f.kin.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(f.stream),
		TargetShardCount: aws.Int32(8), ScalingType: ktypes.ScalingTypeUniformScaling}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stream ACTIVE after UpdateShardCount", 60*time.Second, func() bool {
		out, err := f.kin.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(f.stream)})
		return err == nil && out.StreamDescriptionSummary.StreamStatus == ktypes.StreamStatusActive && aws.ToInt32(out.StreamDescriptionSummary.OpenShardCount) == 8
	})
	f.closed = map[string]bool{}
	shards, err := f.kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(f.stream)})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards.Shards {
		if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
			f.closed[aws.ToString(sh.ShardId)] = true
		}
	}
	if len(f.closed) != 4 {
		t.Fatalf("%d shards closed by the reshard, want the 4 parents", len(f.closed))
	}
	f.put(in, 5000, 5000, 13)
	waitFor(t, "every shard checkpointed at its last record or SHARD_END", 90*time.Second, func() bool { return f.archivedAll(in) })
	if n := len(in.last); n < 9 {
		t.Fatalf("records went to %d shards; want the 4 parents and the 8 children to be used", n)
	}
	f.stopAll()
	// Read once the process has exited. Its own clock ends a lease it was renewing ("lease lost"); a lease
	// the leader moved by a balancing handoff before the worker was declared gone is still the worker's to
	// hand over, and on resuming it may read the handoff before its deadline timer fires ("claimed by another
	// worker"), then hands over or finds the handoff ended.
	if l := f.logs["paused"].String(); !loggedSince(l, resumed, "lease lost", "lease lost; processor stops without checkpointing",
		"lease claimed by another worker; asking holder to checkpoint and hand over") {
		t.Errorf("the resumed worker (stopped owning %v) did not notice it lost its leases; its log from 2 s before the stop:\n%s",
			held, logSince(l, stoppedAt.Add(-2*time.Second)))
	}
	f.verify(in)
}

// logSince returns the lines of a worker's JSON log at or after t.
func logSince(log string, t time.Time) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		var l struct {
			TS float64 `json:"ts"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.TS >= float64(t.UnixNano())/1e9 {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// loggedSince reports whether a worker's JSON log has a line with one of msgs at or after t.
func loggedSince(log string, t time.Time, msgs ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		var l struct {
			TS  float64 `json:"ts"`
			Msg string  `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.TS < float64(t.UnixNano())/1e9 {
			continue
		}
		if slices.Contains(msgs, l.Msg) {
			return true
		}
	}
	return false
}
