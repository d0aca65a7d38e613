package scale_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/internal/countcheck"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/scale"
)

// These tests run real `clickfleet scale` and `clickfleet consume` processes against the local stack.

// proc is one clickfleet process with its ops server.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the clickfleet binary with args plus --http-listen on a free port and JSON logs, with env
// added to the test's environment, and waits until /healthz answers. The process is killed when the
// test ends; its output is logged when the test failed.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	addr := "127.0.0.1:" + testenv.FreePort(t)
	p := &proc{name: name, addr: addr, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(testenv.Binary(t), append(args, "--http-listen", addr, "--log-format", "json")...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, tail(p.out.String(), 6000))
		}
	})
	testenv.WaitForState(t, name+" serving /healthz", 60*time.Second, func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("%s exited while starting:\n%s", name, p.out.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

// kill sends SIGKILL (a crash) and waits for the process to end.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) url() string { return "http://" + p.addr }

// metric sums the values of the series of name whose labels contain every one of labels (`k="v"`).
func (p *proc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(p.url() + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// kinesisProxy stands between a scale process and the Kinesis emulator: it passes every request on, counts
// the UpdateShardCount calls and their target counts, and answers a call with the error Kinesis would send
// when fault names one for its 1-based number: LimitExceededException (an 11th call in 24 hours, which the
// emulator does not enforce) or ResourceInUseException (the stream is being changed).
type kinesisProxy struct {
	srv   *httptest.Server
	fault func(n int) string

	mu      sync.Mutex
	targets []int
}

func newKinesisProxy(t *testing.T, fault func(n int) string) *kinesisProxy {
	t.Helper()
	target, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL_KINESIS"))
	if err != nil || target.Host == "" {
		t.Fatalf("AWS_ENDPOINT_URL_KINESIS=%q: %v", os.Getenv("AWS_ENDPOINT_URL_KINESIS"), err)
	}
	kp := &kinesisProxy{fault: fault}
	rp := httputil.NewSingleHostReverseProxy(target)
	kp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".UpdateShardCount") {
			rp.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var in struct{ TargetShardCount int }
		_ = json.Unmarshal(body, &in)
		kp.mu.Lock()
		kp.targets = append(kp.targets, in.TargetShardCount)
		n := len(kp.targets)
		kp.mu.Unlock()
		if f := kp.fault(n); f != "" {
			msg := map[string]string{"LimitExceededException": "Cannot run UpdateShardCount more than 10 times in a 24 hour period",
				"ResourceInUseException": "Stream is currently being updated"}[f]
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.Header().Set("X-Amzn-ErrorType", f)
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":%q,"message":%q}`, f, msg)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(kp.srv.Close)
	return kp
}

func (kp *kinesisProxy) calls() []int {
	kp.mu.Lock()
	defer kp.mu.Unlock()
	return append([]int(nil), kp.targets...)
}

func consumeArgs(stream, table, redisURL, prefix, id string) []string {
	return []string{"consume", "--processor", "count", "--stream", stream, "--lease-table", table, "--worker-id", id,
		"--redis-url", redisURL, "--key-prefix", prefix, "--failover-time", "2s", "--take-interval", "1s",
		"--idle-time", "200ms", "--checkpoint-interval", "300ms", "--shard-sync-interval", "2s",
		"--parent-poll-interval", "300ms", "--shutdown-timeout", "5s", "--emf-interval", "0"}
}

func openShards(t *testing.T, kin *kinesis.Client, stream string) int {
	t.Helper()
	st, err := (&scale.Stream{API: kin, Name: stream}).State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.OpenShards
}

// A rising load on one shard — 150 records/s against a shard capacity lowered to 20 records/s, so that
// each layout is far above 75 % — makes scale double the shards (1 → 2 → 4); the third doubling is
// refused as the API refuses an 11th call in 24 hours, and scale neither retries it in a loop nor makes
// any other call; the consume workers follow both reshards and count every record exactly once.
func TestScaleDoublesUnderLoadAndTheWorkersFollow(t *testing.T) {
	skipOnKinesalite(t)
	kin, ddb, rdb := testenv.Kinesis(t), testenv.DynamoDB(t), testenv.Redis(t)
	stream := testenv.Stream(t, kin, 1)
	consumers, lock := testenv.LeaseTable(t, ddb), testenv.LeaseTable(t, ddb)
	prefix := testenv.Name(t, "cf") + ":"
	redisURL := os.Getenv("CLICKFLEET_REDIS_URL")
	w1 := start(t, "worker w1", nil, consumeArgs(stream, consumers, redisURL, prefix, "w1")...)
	w2 := start(t, "worker w2", nil, consumeArgs(stream, consumers, redisURL, prefix, "w2")...)
	proxy := newKinesisProxy(t, func(n int) string {
		if n >= 3 {
			return "LimitExceededException"
		}
		return ""
	})
	sc := start(t, "scale", []string{"AWS_ENDPOINT_URL_KINESIS=" + proxy.srv.URL},
		"scale", "--stream", stream, "--lease-table", lock, "--source", "metrics", "--workers", w1.url()+","+w2.url(),
		"--scale-interval", "500ms", "--scale-up-after", "2s", "--scale-up-cooldown", "3s", "--scale-down-after", "1h",
		"--shard-records-per-second", "20", "--refused-hold", "1h", "--failover-time", "2s", "--take-interval", "500ms")

	sink, wait := countcheck.Produce(t, kin, stream, 3000, 100, 150, 7)
	testenv.WaitForState(t, "1 → 2 → 4 shards and the third doubling refused", 60*time.Second, func() (bool, string) {
		c := proxy.calls()
		return len(c) >= 3 && sc.metric(t, "clickfleet_scale_update_shard_count_calls_total", `outcome="refused"`) == 1,
			fmt.Sprintf("UpdateShardCount targets %v, open shards %d", c, openShards(t, kin, stream))
	})
	refusedAt := sc.metric(t, "clickfleet_scale_decisions_total")
	resizesAt := sc.metric(t, "clickfleet_scale_decisions_total", `action="resize"`)
	// Ten more decisions after the refusal: it is held, not asked again, and nothing else is called.
	testenv.WaitFor(t, "ten more decisions", 30*time.Second, func() bool {
		return sc.metric(t, "clickfleet_scale_decisions_total") >= refusedAt+10
	})
	if c := proxy.calls(); len(c) != 3 || c[0] != 2 || c[1] != 4 || c[2] != 8 {
		t.Fatalf("UpdateShardCount calls with targets %v, want exactly [2 4 8]: one doubling per call, the refused one not retried", c)
	}
	if ok := sc.metric(t, "clickfleet_scale_update_shard_count_calls_total", `outcome="ok"`); ok != 2 {
		t.Fatalf("%v accepted calls, want 2", ok)
	}
	// Held while the load lasts; once the producer is done the utilisation falls and a decision wants
	// nothing (none). Neither is a resize.
	if r := sc.metric(t, "clickfleet_scale_decisions_total", `action="resize"`); r != resizesAt {
		t.Fatalf("%v resize decisions after the refusal, want none: a refused doubling is held", r-resizesAt)
	}
	if n := openShards(t, kin, stream); n != 4 {
		t.Fatalf("%d open shards, want 4", n)
	}
	if !strings.Contains(sc.out.String(), "refused by the API") {
		t.Fatal("the refusal must be recorded in a decision line")
	}
	wait()
	countcheck.WaitExact(t, rdb, prefix, countcheck.OnStream(t, kin, stream, sink.Stored()), 120*time.Second)
	// The workers read the children: the parents of both reshards are finished.
	leases, err := lease.NewTable(ddb, consumers).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, l := range leases {
		if !l.Checkpoint.IsShardEnd() {
			open = append(open, l.Key)
		}
	}
	if len(open) != 4 {
		t.Fatalf("leases not at SHARD_END: %v, want the 4 open shards'", open)
	}
	if r := w1.metric(t, scale.MetricReadRecords) + w2.metric(t, scale.MetricReadRecords); r < 3000 {
		t.Fatalf("the workers' read counters sum to %v, below the 3000 records put", r)
	}
}

// Two scale instances: one holds the lock and acts, the other waits; when the first is killed the second
// takes over with the call history the first kept on the lock row. The budget of 10 calls in 24 hours is
// spent (the row says so) until a moment after the takeover, so the instances hold — the 11th call is
// not made — until then, and the one holding the lock then resizes to the minimum of 2 shards.
func TestScaleOneInstanceActsAndAnotherTakesOver(t *testing.T) {
	skipOnKinesalite(t)
	kin, ddb := testenv.Kinesis(t), testenv.DynamoDB(t)
	stream := testenv.Stream(t, kin, 1)
	consumers, lock := testenv.LeaseTable(t, ddb), testenv.LeaseTable(t, ddb)
	ctx := context.Background()

	w := start(t, "worker", nil, consumeArgs(stream, consumers, os.Getenv("CLICKFLEET_REDIS_URL"), testenv.Name(t, "cf")+":", "w1")...)
	args := func(id string) []string {
		return []string{"scale", "--stream", stream, "--lease-table", lock, "--source", "metrics", "--workers", w.url(),
			"--instance-id", id, "--min-shards", "2", "--scale-interval", "300ms", "--failover-time", "2s", "--take-interval", "300ms"}
	}
	freeAt := time.Now().Add(-24*time.Hour + 20*time.Second) // the oldest call leaves the 24 h window 20 s from now
	calls := []string{strconv.FormatInt(freeAt.UnixMilli(), 10)}
	for i := 1; i < 10; i++ {
		calls = append(calls, strconv.FormatInt(time.Now().Add(-time.Duration(i)*time.Minute).UnixMilli(), 10))
	}
	if err := lease.NewTable(ddb, lock).Create(ctx, lease.Lease{Key: scale.LockKey(stream)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(lock),
		Key:              map[string]dtypes.AttributeValue{"leaseKey": &dtypes.AttributeValueMemberS{Value: scale.LockKey(stream)}},
		UpdateExpression: aws.String("SET scaleCalls = :c"), ExpressionAttributeValues: map[string]dtypes.AttributeValue{":c": &dtypes.AttributeValueMemberNS{Value: calls}}}); err != nil {
		t.Fatal(err)
	}
	a := start(t, "scale a", nil, args("a")...)
	b := start(t, "scale b", nil, args("b")...)
	var leader, standby *proc
	testenv.WaitForState(t, "one instance holding the lock", 30*time.Second, func() (bool, string) {
		la, lb := a.metric(t, "clickfleet_scale_leading"), b.metric(t, "clickfleet_scale_leading")
		switch {
		case la == 1 && lb == 0:
			leader, standby = a, b
		case lb == 1 && la == 0:
			leader, standby = b, a
		}
		return leader != nil, fmt.Sprintf("leading: a %v, b %v", la, lb)
	})
	testenv.WaitFor(t, "the leader holding three times", 30*time.Second, func() bool {
		return leader.metric(t, "clickfleet_scale_decisions_total", `action="hold"`) >= 3
	})
	if got := leader.metric(t, "clickfleet_scale_calls_24h"); got != 10 {
		t.Fatalf("the leader counts %v calls in the last 24 hours, want the 10 on the lock row", got)
	}
	if !strings.Contains(leader.out.String(), "10 UpdateShardCount calls in the last 24 hours") {
		t.Fatalf("the leader's decisions must name the spent budget:\n%s", tail(leader.out.String(), 3000))
	}
	for _, p := range []*proc{leader, standby} {
		if n := p.metric(t, "clickfleet_scale_update_shard_count_calls_total"); n != 0 {
			t.Fatalf("%s called UpdateShardCount %v times with the budget spent", p.name, n)
		}
	}
	if n := standby.metric(t, "clickfleet_scale_decisions_total"); n != 0 || standby.metric(t, "clickfleet_scale_leading") != 0 {
		t.Fatalf("the waiting instance decided %v times", n)
	}
	if left := time.Until(freeAt.Add(24 * time.Hour)); left < 8*time.Second {
		t.Fatalf("the machine is too slow for this test's timing: the budget frees in %s, before the takeover could be seen", left)
	}
	leader.kill()
	killed := time.Now()
	testenv.WaitFor(t, "the other instance holding the lock", 30*time.Second, func() bool {
		return standby.metric(t, "clickfleet_scale_leading") == 1
	})
	t.Logf("%s took over %s after %s was killed (failover time 2s)", standby.name, time.Since(killed).Round(100*time.Millisecond), leader.name)
	if time.Now().Before(freeAt.Add(24 * time.Hour)) {
		testenv.WaitFor(t, "the new leader holding", 30*time.Second, func() bool {
			return standby.metric(t, "clickfleet_scale_decisions_total", `action="hold"`) >= 1
		})
		if n := openShards(t, kin, stream); n != 1 {
			t.Fatalf("%d open shards before the budget freed", n)
		}
	}
	testenv.WaitForState(t, "the resize to the minimum once the budget frees", 60*time.Second, func() (bool, string) {
		n := openShards(t, kin, stream)
		return n == 2, fmt.Sprintf("%d open shards", n)
	})
	// The emulator may show the new shards before the call's answer reaches the scaler, which counts the
	// call then: two more decisions make sure it has.
	at := standby.metric(t, "clickfleet_scale_decisions_total")
	testenv.WaitFor(t, "two more decisions", 30*time.Second, func() bool { return standby.metric(t, "clickfleet_scale_decisions_total") >= at+2 })
	if ok := standby.metric(t, "clickfleet_scale_update_shard_count_calls_total", `outcome="ok"`); ok != 1 {
		t.Fatalf("%s made %v accepted calls, want 1", standby.name, ok)
	}
	if c := standby.metric(t, "clickfleet_scale_calls_24h"); c != 10 {
		t.Fatalf("calls in 24 h after the resize: %v, want 10 (9 kept from the row, 1 new)", c)
	}
}

// A stream being changed (ResourceInUseException) is asked again at the next interval, once: not a
// refusal, not a loop.
func TestScaleAsksAgainAfterResourceInUse(t *testing.T) {
	skipOnKinesalite(t)
	kin, ddb := testenv.Kinesis(t), testenv.DynamoDB(t)
	stream := testenv.Stream(t, kin, 1)
	consumers, lock := testenv.LeaseTable(t, ddb), testenv.LeaseTable(t, ddb)
	w := start(t, "worker", nil, consumeArgs(stream, consumers, os.Getenv("CLICKFLEET_REDIS_URL"), testenv.Name(t, "cf")+":", "w1")...)
	proxy := newKinesisProxy(t, func(n int) string {
		if n == 1 {
			return "ResourceInUseException"
		}
		return ""
	})
	sc := start(t, "scale", []string{"AWS_ENDPOINT_URL_KINESIS=" + proxy.srv.URL}, "scale", "--stream", stream, "--lease-table", lock,
		"--source", "metrics", "--workers", w.url(), "--min-shards", "2", "--scale-interval", "300ms", "--take-interval", "300ms")
	testenv.WaitForState(t, "the stream at the minimum of 2 shards", 30*time.Second, func() (bool, string) {
		n := openShards(t, kin, stream)
		return n == 2, fmt.Sprintf("%d open shards, calls %v", n, proxy.calls())
	})
	at := sc.metric(t, "clickfleet_scale_decisions_total")
	testenv.WaitFor(t, "five more decisions", 30*time.Second, func() bool { return sc.metric(t, "clickfleet_scale_decisions_total") >= at+5 })
	if c := proxy.calls(); len(c) != 2 || c[0] != 2 || c[1] != 2 {
		t.Fatalf("UpdateShardCount targets %v, want [2 2]: the busy answer, then the call that resized", c)
	}
	if busy, ok := sc.metric(t, "clickfleet_scale_update_shard_count_calls_total", `outcome="busy"`),
		sc.metric(t, "clickfleet_scale_update_shard_count_calls_total", `outcome="ok"`); busy != 1 || ok != 1 {
		t.Fatalf("outcomes: busy %v, ok %v", busy, ok)
	}
}
