package consumer_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// app is one clickfleet process of the poll-budget test.
type app struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer // read only after done
	addr string        // its /metrics, when it serves them
	done chan struct{} // closed when it has exited; err is then its exit
	err  error
}

// startApp runs the clickfleet binary with args and env added to the test's environment. out, when set,
// receives its standard output (the log then holds only standard error).
func startApp(t *testing.T, name string, env []string, out io.Writer, args ...string) *app {
	t.Helper()
	a := &app{name: name, log: &bytes.Buffer{}, done: make(chan struct{})}
	a.cmd = exec.Command(testenv.Binary(t), args...)
	a.cmd.Env = append(os.Environ(), env...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if out != nil {
		a.cmd.Stdout = out
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Kill()
		<-a.done
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, tailOf(a.log.String(), 3000))
		}
	})
	return a
}

// metric sums the samples of a metric family on the app's /metrics (0 when it has none yet).
func (a *app) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.addr + "/metrics")
	if err != nil {
		return 0 // not serving yet
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%s: metric line %q: %v", a.name, line, err)
		}
		sum += v
	}
	return sum
}

// lineCounter counts the lines written to it: tail's records.
type lineCounter struct{ n atomic.Int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}

// The applications sharing a stream at their default polling — consume, archive and tail — read each
// shard within Kinesis' 5 GetRecords calls per second together, under continuous traffic of 800
// records/s per shard, behind a layer that enforces AWS's limits: at most a few calls a minute are
// throttled, and each application keeps up with the stream.
func TestDefaultPollingStaysWithinReadLimits(t *testing.T) {
	const (
		shards   = 2
		perShard = 800 // records/s
		duration = 60 * time.Second
		total    = shards * perShard * int(duration/time.Second)
		// Keeping up: no application is more than this many seconds of records behind the producer.
		maxBehind = 5 * shards * perShard
		// Throttled GetRecords calls allowed per shard over the minute.
		maxThrottled = 6
	)
	lim, endpoint, stream := pollBudgetStream(t, shards)
	env := []string{"AWS_ENDPOINT_URL_KINESIS=" + endpoint}
	apps, tail := startReaders(t, env, stream)
	for _, a := range apps {
		testenv.WaitFor(t, a.name+" holding every shard", time.Minute, func() bool {
			return a.metric(t, "clickfleet_consumer_shards_reading") == shards
		})
	}
	gen := startApp(t, "gen", env, nil, "gen", "--profile", "poc", "--rate", strconv.Itoa(shards*perShard), "--count", strconv.Itoa(total),
		"--users", "10000", "--stream", stream, "--log-format", "json")
	produced := func() int {
		n := 0
		for _, st := range lim.AllStats(stream) {
			if st.Operation == "PutRecords" {
				n += st.Calls - st.Throttled
			}
		}
		return n
	}
	consumed := map[string]func() int{"tail": func() int { return int(tail.n.Load()) }}
	for _, a := range apps {
		consumed[a.name] = func() int { return int(a.metric(t, "clickfleet_consumer_records_total")) }
	}
	behind := map[string]int{}
	deadline := time.After(duration + time.Minute)
	for running := true; running; {
		select {
		case <-gen.done:
			if gen.err != nil {
				t.Fatalf("gen: %v\n%s", gen.err, gen.log)
			}
			running = false
		case <-time.After(5 * time.Second):
			p := produced()
			for name, c := range consumed {
				behind[name] = max(behind[name], p-c())
			}
		case <-deadline:
			t.Fatalf("gen did not put %d records at %d/s within %s (%d put)", total, shards*perShard, duration+time.Minute, produced())
		}
	}
	for name, c := range consumed {
		testenv.WaitForState(t, name+" reading every record", 30*time.Second, func() (bool, string) {
			n := c()
			return n >= total, fmt.Sprintf("%d of %d", n, total)
		})
		if behind[name] > maxBehind {
			t.Errorf("%s was up to %d records behind the producer, want at most %d (%d s)", name, behind[name], maxBehind, maxBehind/(shards*perShard))
		}
	}
	for _, st := range lim.AllStats(stream) {
		if st.Operation != "GetRecords" {
			continue
		}
		t.Logf("%s: %d GetRecords calls, %d throttled, %d bytes", st.Shard, st.Calls, st.Throttled, st.Bytes)
		if st.Throttled > maxThrottled {
			t.Errorf("%s: %d of %d GetRecords calls throttled, want at most %d", st.Shard, st.Throttled, st.Calls, maxThrottled)
		}
	}
}

// pollBudgetStream makes a stream on a kinesalite of the test's own (the stack's emulator may be the
// slower kinesis-mock, and a minute of this load would slow it for every test after) behind a limits
// layer of the test's own, and returns the layer, its endpoint and the stream.
func pollBudgetStream(t *testing.T, shards int32) (*faults.Limits, string, string) {
	t.Helper()
	upstream := testenv.StartKinesalite(t)
	lim, err := faults.NewKinesisLimits(upstream, faults.LimitsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(lim)
	t.Cleanup(srv.Close)
	direct := kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(upstream) })
	return lim, srv.URL, testenv.Stream(t, direct, shards)
}

// startReaders starts consume (the count processor), archive and tail on stream at their default polling.
func startReaders(t *testing.T, env []string, stream string) ([]*app, *lineCounter) {
	t.Helper()
	ddb, s3c := testenv.DynamoDB(t), testenv.S3(t)
	testenv.Redis(t)
	bucket := testenv.Bucket(t, s3c)
	listen := func() string { return net.JoinHostPort("127.0.0.1", testenv.FreePort(t)) }
	caddr, aaddr := listen(), listen()
	consume := startApp(t, "consume", env, nil, "consume", "--processor", "count", "--stream", stream,
		"--lease-table", testenv.LeaseTable(t, ddb), "--redis-url", os.Getenv("CLICKFLEET_REDIS_URL"),
		"--key-prefix", testenv.Name(t, "cf")+":", "--http-listen", caddr, "--log-format", "json")
	consume.addr = caddr
	archive := startApp(t, "archive", env, nil, "archive", "--stream", stream, "--lease-table", testenv.LeaseTable(t, ddb),
		"--lake-url", "s3://"+bucket+"/", "--redis-url", "", "--geo-mmdb", "", "--buffer-interval", "5s", "--buffer-interval-unchecked",
		"--http-listen", aaddr, "--log-format", "json")
	archive.addr = aaddr
	lines := &lineCounter{}
	startApp(t, "tail", env, lines, "tail", "--stream", stream, "--log-format", "json")
	return []*app{consume, archive}, lines
}
