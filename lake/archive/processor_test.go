package archive

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// harness drives processors of one Archiver against a real S3 bucket, without Kinesis or a lease table.
type harness struct {
	t      *testing.T
	s3     *s3.Client
	bucket string
	arch   *Archiver
	cfg    Config
}

func newHarness(t *testing.T, c *s3.Client, bucket string, mod func(*Config)) *harness {
	t.Helper()
	cfg := Config{Stream: "clickstream", Raw: Location{bucket, "raw/"}, Events: Location{bucket, "events/"}, Errors: Location{bucket, "errors/"},
		Backoff: retryFast()}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, s3: c, bucket: bucket, arch: a, cfg: cfg}
}

// initialize starts p's holding period of testShard from TRIM_HORIZON, its lease valid for as long as
// validFor says, and fails the test when Initialize fails.
func initialize(t testing.TB, ctx context.Context, p consumer.Processor, validFor func() time.Duration) {
	t.Helper()
	if err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon, ValidFor: validFor}); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
}

// aMinute is a lease that stays valid for the test: a minute.
func aMinute() time.Duration { return time.Minute }

// run feeds recs to one processor in batches of batch records, then shuts it down (final flush).
func (h *harness) run(recs []consumer.Record, batch int) *fakeCheckpointer {
	h.t.Helper()
	ctx := context.Background()
	cp := &fakeCheckpointer{}
	p := h.arch.NewProcessor(testShard)
	initialize(h.t, ctx, p, aMinute)
	for i := 0; i < len(recs); i += batch {
		if err := p.ProcessRecords(ctx, consumer.Batch{Records: recs[i:min(i+batch, len(recs))], Checkpointer: cp}); err != nil {
			h.t.Fatalf("ProcessRecords: %v", err)
		}
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		h.t.Fatalf("ShutdownRequested: %v", err)
	}
	return cp
}

func pocRecords(n int, at time.Time) []consumer.Record {
	recs := make([]consumer.Record, n)
	for i := range recs {
		recs[i] = pocRecord(i, at.Add(time.Duration(i)*time.Millisecond), i%25 == 24)
	}
	return recs
}

// checkOnce checks that the bucket holds every record of recs in exactly one raw line, every valid one in
// exactly one Parquet row and every bad one in exactly one errors line, and returns the raw keys.
func checkOnce(t *testing.T, objs []object, recs []consumer.Record) []string {
	t.Helper()
	want := map[string]bool{}
	for _, r := range recs {
		want[string(r.Data)] = true
	}
	rawSeen, rowSeen, errSeen := map[string]int{}, map[string]int{}, map[string]int{}
	var rawKeys []string
	for _, o := range objs {
		switch {
		case strings.HasPrefix(o.key, "raw/"):
			rawKeys = append(rawKeys, o.key)
			for _, l := range lines(t, o) {
				rawSeen[l]++
			}
		case strings.HasPrefix(o.key, "events/"):
			rows, _ := parquetRows(t, o)
			for _, r := range rows {
				rowSeen[r["click_id"].String()]++
			}
		case strings.HasPrefix(o.key, "errors/"):
			for _, e := range errorLines(t, o) {
				errSeen[string(e.Data)]++
			}
		}
	}
	for _, r := range recs {
		d := string(r.Data)
		if rawSeen[d] != 1 {
			t.Errorf("record %s: in %d raw lines, want 1", r.SequenceNumber, rawSeen[d])
		}
		if strings.Contains(d, "marker") {
			if errSeen[d] != 1 {
				t.Errorf("bad record %s: in %d errors lines, want 1", r.SequenceNumber, errSeen[d])
			}
			continue
		}
		i, _ := strconv.Atoi(strings.TrimLeft(r.SequenceNumber[4:], "0"))
		id := "click-" + leftPad(i)
		if rowSeen[id] != 1 {
			t.Errorf("record %s (%s): in %d Parquet rows, want 1", r.SequenceNumber, id, rowSeen[id])
		}
	}
	if len(rawSeen) != len(want) {
		t.Errorf("%d distinct raw lines, want %d", len(rawSeen), len(want))
	}
	return rawKeys
}

func leftPad(i int) string {
	s := strconv.Itoa(i)
	return strings.Repeat("0", 6-len(s)) + s
}

// Objects roll at the buffer size: every raw object holds at most BufferBytes of input, each roll is
// checkpointed at its last record, and every record is in exactly one object.
func TestRollsAtBufferBytes(t *testing.T) {
	c := testenv.S3(t)
	h := newHarness(t, c, testenv.Bucket(t, c), func(cfg *Config) { cfg.BufferBytes = 8 << 10 })
	at := time.Date(2026, 12, 1, 10, 15, 0, 0, time.UTC)
	recs := pocRecords(300, at)
	cp := h.run(recs, 37)
	objs := listObjects(t, c, h.bucket, "")
	raw := checkOnce(t, objs, recs)
	total := 0
	for _, r := range recs {
		total += len(r.Data)
	}
	if min := (total + 8<<10 - 1) / (8 << 10); len(raw) < min || len(raw) > min+1 {
		t.Fatalf("%d raw objects for %d bytes at 8 KiB each, want %d or %d", len(raw), total, min, min+1)
	}
	for _, o := range objs {
		if strings.HasPrefix(o.key, "raw/") {
			n := 0
			for _, l := range lines(t, o) {
				n += len(l)
			}
			if n > 8<<10 {
				t.Errorf("%s holds %d bytes of input, more than the 8 KiB buffer", o.key, n)
			}
			if !strings.HasPrefix(o.key, "raw/year=2026/month=12/day=01/hour=10/clickstream-"+testShard+"-") || !strings.HasSuffix(o.key, "-0.ndjson.gz") {
				t.Errorf("unexpected key %s", o.key)
			}
		}
	}
	cps := cp.all()
	if len(cps) != len(raw) || cps[len(cps)-1] != recs[len(recs)-1].Position() {
		t.Fatalf("checkpoints %v for %d objects; want one per object, the last at %s", cps, len(raw), recs[len(recs)-1].Position())
	}
}

// An object never spans an hour: a record arriving in the next hour rolls the buffer at once, and each
// object lies under its first record's arrival hour.
func TestRollsAtHourBoundary(t *testing.T) {
	c := testenv.S3(t)
	h := newHarness(t, c, testenv.Bucket(t, c), nil)
	var recs []consumer.Record
	for i := range 40 {
		at := time.Date(2026, 12, 1, 10, 59, 59, 0, time.UTC).Add(time.Duration(i) * 50 * time.Millisecond) // 10:59:59.00 … 11:00:00.95
		recs = append(recs, pocRecord(i, at, false))
	}
	ctx := context.Background()
	cp := &fakeCheckpointer{}
	p := h.arch.NewProcessor(testShard)
	initialize(t, ctx, p, aMinute)
	if err := p.ProcessRecords(ctx, consumer.Batch{Records: recs, Checkpointer: cp}); err != nil {
		t.Fatal(err)
	}
	// The 10:59 object is stored before any shutdown: the first 11:00 record rolled it (in the background).
	waitFor(t, "the 10:59 object's checkpoint", 20*time.Second, func() bool { return len(cp.all()) == 1 })
	if cps := cp.all(); cps[0] != recs[19].Position() {
		t.Fatalf("checkpoints after the batch: %v, want one at the last 10:59 record %s", cps, recs[19].Position())
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	objs := listObjects(t, c, h.bucket, "")
	checkOnce(t, objs, recs)
	want := map[string]bool{
		"raw/year=2026/month=12/day=01/hour=10/clickstream-" + testShard + "-" + seq(0) + "-0.ndjson.gz":   true,
		"raw/year=2026/month=12/day=01/hour=11/clickstream-" + testShard + "-" + seq(20) + "-0.ndjson.gz":  true,
		"events/year=2026/month=12/day=01/hour=10/clickstream-" + testShard + "-" + seq(0) + "-0.parquet":  true,
		"events/year=2026/month=12/day=01/hour=11/clickstream-" + testShard + "-" + seq(20) + "-0.parquet": true,
	}
	for _, o := range objs {
		if !want[o.key] {
			t.Errorf("unexpected object %s", o.key)
		}
		delete(want, o.key)
	}
	for k := range want {
		t.Errorf("missing object %s", k)
	}
}

// A buffer rolls once it is BufferInterval old (processing time, from its first record), with no new
// batch arriving: the interval ticker stores and checkpoints it — also when the set before it was stored
// in the background (a size roll) and nothing has collected that result yet.
func TestRollsAtBufferInterval(t *testing.T) {
	c := testenv.S3(t)
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	h := newHarness(t, c, testenv.Bucket(t, c), func(cfg *Config) {
		cfg.CheckInterval = 10 * time.Millisecond
		cfg.BufferBytes = 2000
		cfg.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	ctx := context.Background()
	cp := &fakeCheckpointer{}
	p := h.arch.NewProcessor(testShard)
	initialize(t, ctx, p, aMinute)
	defer p.LeaseLost(ctx)
	recs := pocRecords(8, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	if err := p.ProcessRecords(ctx, consumer.Batch{Records: recs, Checkpointer: cp}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the size roll's checkpoint", 20*time.Second, func() bool { return len(cp.all()) == 1 })
	first := cp.all()[0]
	if first == recs[len(recs)-1].Position() {
		t.Fatal("the size roll took every record; the test needs some left in the buffer")
	}
	now.Add(int64(59 * time.Second))
	// Give the ticker many chances to roll too early (it checks every 10 ms).
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if len(cp.all()) != 1 {
			t.Fatal("rolled before the buffer interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
	now.Add(int64(time.Second))
	waitFor(t, "the interval roll's checkpoint", 20*time.Second, func() bool { return len(cp.all()) == 2 })
	if cp.all()[1] != recs[len(recs)-1].Position() {
		t.Fatalf("checkpoints %v, want the last at %s", cp.all(), recs[len(recs)-1].Position())
	}
	checkOnce(t, listObjects(t, c, h.bucket, ""), recs)
	if got := testutil.ToFloat64(h.arch.m.rolls.WithLabelValues("interval")); got != 1 {
		t.Fatalf("interval rolls: %v, want 1", got)
	}
}

// A replay from the same first record names the same objects with the same content; a holder whose
// buffers roll differently (another size, another moment) adopts the ranges the first holder stored,
// shorter or longer than its own, so every record stays in exactly one object and the checkpoints match.
func TestReplayKeepsKeysAndContent(t *testing.T) {
	c := testenv.S3(t)
	recs := pocRecords(400, time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC))
	bucket := testenv.Bucket(t, c)
	first := newHarness(t, c, bucket, func(cfg *Config) { cfg.BufferBytes = 16 << 10 })
	cpFirst := first.run(recs, 50)
	before := listObjects(t, c, bucket, "")
	checkOnce(t, before, recs)

	for _, tc := range []struct {
		name  string
		bytes int
	}{{"same settings", 16 << 10}, {"larger buffer (adopts shorter objects)", 64 << 10}, {"smaller buffer (adopts longer objects)", 5 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			again := newHarness(t, c, bucket, func(cfg *Config) { cfg.BufferBytes = tc.bytes })
			cp := again.run(recs, 33)
			after := listObjects(t, c, bucket, "")
			if len(after) != len(before) {
				t.Fatalf("%d objects after the replay, %d before", len(after), len(before))
			}
			for i := range after {
				if after[i].key != before[i].key || !bytes.Equal(after[i].body, before[i].body) {
					t.Fatalf("object %s changed by the replay", before[i].key)
				}
			}
			if got, want := cp.all(), cpFirst.all(); len(got) != len(want) || got[len(got)-1] != want[len(want)-1] {
				t.Fatalf("replay checkpoints %v, first run %v", got, want)
			} else {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("replay checkpoint %d at %s, first run at %s", i, got[i], want[i])
					}
				}
			}
			if n := testutil.ToFloat64(again.arch.m.existing.WithLabelValues("raw")); n == 0 {
				t.Fatal("no PUT found an existing object")
			}
		})
	}

	// A fresh bucket with the first run's settings gets byte-identical objects under the same keys.
	other := testenv.Bucket(t, c)
	newHarness(t, c, other, func(cfg *Config) { cfg.BufferBytes = 16 << 10 }).run(recs, 77)
	fresh := listObjects(t, c, other, "")
	if len(fresh) != len(before) {
		t.Fatalf("%d objects in a fresh bucket, %d in the first", len(fresh), len(before))
	}
	for i := range fresh {
		if fresh[i].key != before[i].key || !bytes.Equal(fresh[i].body, before[i].body) {
			t.Fatalf("object %s differs between two runs over the same records", before[i].key)
		}
	}
}

// versitygw honours If-None-Match: * on PutObject: the second conditional PUT of a key fails with 412.
func TestServerSupportsConditionalPut(t *testing.T) {
	c := testenv.S3(t)
	bucket := testenv.Bucket(t, c)
	ctx := context.Background()
	put := func(body string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader(body), IfNoneMatch: aws.String("*")})
		return err
	}
	if err := put("one"); err != nil {
		t.Fatalf("first conditional PUT: %v", err)
	}
	err := put("two")
	if !isPreconditionFailed(err) {
		t.Fatalf("second conditional PUT: %v, want 412 PreconditionFailed", err)
	}
	objs := listObjects(t, c, bucket, "")
	if len(objs) != 1 || string(objs[0].body) != "one" {
		t.Fatalf("objects %+v, want k=one", objs)
	}
}

// A holder whose lease validity ran out by its own clock stores nothing and stops with ErrLeaseLost.
func TestDeposedOwnerWritesNothing(t *testing.T) {
	c := testenv.S3(t)
	h := newHarness(t, c, testenv.Bucket(t, c), func(cfg *Config) { cfg.BufferBytes = 1 << 10 })
	ctx := context.Background()
	var valid atomic.Bool
	valid.Store(true)
	p := h.arch.NewProcessor(testShard)
	initialize(t, ctx, p, func() time.Duration {
		if valid.Load() {
			return time.Minute
		}
		return 0
	})
	defer p.LeaseLost(ctx)
	cp := &fakeCheckpointer{}
	recs := pocRecords(40, time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	valid.Store(false)
	err := p.ProcessRecords(ctx, consumer.Batch{Records: recs, Checkpointer: cp})
	if !errors.Is(err, lease.ErrLeaseLost) {
		t.Fatalf("ProcessRecords: %v, want ErrLeaseLost", err)
	}
	if objs := listObjects(t, c, h.bucket, ""); len(objs) != 0 || len(cp.all()) != 0 {
		t.Fatalf("a deposed owner stored %d objects and %d checkpoints", len(objs), len(cp.all()))
	}
}

// A missing bucket is a permanent error: reported on Fatal (naming the location), not retried forever.
func TestMissingBucketIsFatal(t *testing.T) {
	c := testenv.S3(t)
	missing := testenv.Name(t, "b")
	h := newHarness(t, c, missing, nil)
	var fe *FatalError
	if err := h.arch.Check(context.Background()); !errors.As(err, &fe) || fe.Location.Bucket != missing {
		t.Fatalf("Check: %v, want a FatalError on %s", err, missing)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := h.arch.NewProcessor(testShard)
	initialize(t, ctx, p, aMinute)
	defer p.LeaseLost(ctx)
	cp := &fakeCheckpointer{}
	// Three records fit the buffer: nothing is stored yet, or the store fails on the missing bucket.
	if err := p.ProcessRecords(ctx, consumer.Batch{Records: pocRecords(3, time.Now()), Checkpointer: cp}); err != nil && (!errors.As(err, &fe) || fe.Location.Bucket != missing) {
		t.Fatalf("ProcessRecords: %v, want nil (buffered) or a FatalError on %s", err, missing)
	}
	if err := p.ShutdownRequested(ctx, cp); err == nil {
		t.Fatal("storing into a missing bucket succeeded")
	}
	select {
	case err := <-h.arch.Fatal():
		if !errors.As(err, &fe) || fe.Location.Bucket != missing {
			t.Fatalf("Fatal delivered %v", err)
		}
	default:
		t.Fatal("no fatal error reported")
	}
	if ctx.Err() != nil {
		t.Fatal("the missing bucket was retried until the deadline")
	}
}

// While S3 is unreachable the shard waits: PUTs are retried with backoff, Healthy (and so /readyz) is
// false, nothing is checkpointed; once S3 answers again the objects are stored, checkpointed, and every
// record is there exactly once.
func TestUnreachableS3IsRetried(t *testing.T) {
	direct := testenv.S3(t)
	bucket := testenv.Bucket(t, direct)
	u, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, u.Host)
	viaProxy := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle = aws.String("http://"+px.addr), true
	})
	h := newHarness(t, viaProxy, bucket, func(cfg *Config) { cfg.BufferBytes = 4 << 10; cfg.PutTimeout = 2 * time.Second })
	ctx := context.Background()
	cp := &fakeCheckpointer{}
	p := h.arch.NewProcessor(testShard)
	initialize(t, ctx, p, aMinute)
	recs := pocRecords(100, time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC))
	px.down()
	done := make(chan error, 1)
	go func() { done <- p.ProcessRecords(ctx, consumer.Batch{Records: recs, Checkpointer: cp}) }()
	waitFor(t, "Healthy false while S3 is unreachable", 30*time.Second, func() bool { return !h.arch.Healthy() })
	select {
	case err := <-done:
		t.Fatalf("ProcessRecords returned (%v) while S3 was unreachable", err)
	default:
	}
	if n := len(cp.all()); n != 0 {
		t.Fatalf("%d checkpoints while S3 was unreachable", n)
	}
	px.up()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ProcessRecords after S3 came back: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("ProcessRecords still blocked 60 s after S3 came back")
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	if !h.arch.Healthy() {
		t.Fatal("still unhealthy after S3 came back")
	}
	checkOnce(t, listObjects(t, direct, bucket, ""), recs)
	if len(cp.all()) == 0 {
		t.Fatal("nothing checkpointed")
	}
}

// S3 answers 409 ConditionalRequestConflict when two conditional PUTs of one key race, and AWS documents
// it as retryable. Through a fault layer in front of the real S3 server, the first raw PUTs are answered
// 409 — twice before reaching the server, then once after the object landed — and the archive retries
// (counting and logging each retry), adopts the object that landed (its retry gets 412), reports nothing
// on Fatal, and every record ends in exactly one object.
func TestConditionalRequestConflictIsRetried(t *testing.T) {
	direct := testenv.S3(t)
	bucket := testenv.Bucket(t, direct)
	layer, endpoint := testenv.AWSFaultLayer(t, os.Getenv("AWS_ENDPOINT_URL_S3"), 1)
	viaLayer := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle = aws.String(endpoint), true
	})
	conflict := faults.Reply{Status: http.StatusConflict, Code: "ConditionalRequestConflict", Count: 2, Operations: []string{"PUT"},
		Message: "A conflicting operation occurred. If using PutObject you can retry the request."}
	landed := conflict
	landed.Count, landed.Forward = 1, true
	for _, r := range []faults.Reply{conflict, landed} {
		if err := layer.Reply(r); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, viaLayer, bucket, func(cfg *Config) { cfg.BufferBytes = 4 << 10 })
	recs := pocRecords(100, time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC))
	cp := h.run(recs, 10)
	select {
	case err := <-h.arch.Fatal():
		t.Fatalf("the archive reported a fatal error: %v", err)
	default:
	}
	_, answered := layer.Total("PUT")
	if layer.Pending() != 0 || answered != 3 {
		t.Fatalf("%d PUTs answered 409, %d answers pending; want 3 and 0", answered, layer.Pending())
	}
	m := h.arch.m
	if n := testutil.ToFloat64(m.putErrors.WithLabelValues("raw")); n != 3 {
		t.Errorf("%v raw PUT retries counted, want 3", n)
	}
	if n := testutil.ToFloat64(m.existing.WithLabelValues("raw")); n != 1 {
		t.Errorf("%v raw objects found stored, want 1 (the PUT that landed before its 409)", n)
	}
	if !h.arch.Healthy() {
		t.Error("unhealthy after the conflicts passed")
	}
	rawKeys := checkOnce(t, listObjects(t, direct, bucket, ""), recs)
	cps := cp.all()
	if len(cps) != len(rawKeys) || len(cps) == 0 || cps[len(cps)-1].SequenceNumber != recs[len(recs)-1].SequenceNumber {
		t.Fatalf("checkpoints %v for %d raw objects, want one per object ending at %s", cps, len(rawKeys), recs[len(recs)-1].SequenceNumber)
	}
}
