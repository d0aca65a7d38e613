package consumer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/countcheck"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Redis goes away mid-run and comes back: workers retry, checkpoint nothing they have not written, and the
// counts end exact. The outage falls inside the load: Redis stays down until a worker has logged a batch
// Redis refused, to be delivered again, and the producer has stored more records meanwhile.
func TestRedisRestartMidRun(t *testing.T) {
	kin := testenv.Kinesis(t)
	testenv.Redis(t) // the stack is up, so redis-server is installed
	dir := t.TempDir()
	port := testenv.FreePort(t)
	rdb := testenv.StartRedis(t, dir, port)
	stream := testenv.Stream(t, kin, 4)
	f := newFleet(t, stream, fmt.Sprintf("redis://127.0.0.1:%s/0", port))
	f.start("w1")
	f.start("w2")
	// A load of 600 records/s that lasts through the outage below and past the restart.
	sink, stop := countcheck.ProduceUntil(t, kin, stream, 100, 600, 3)
	waitBalanced(t, f.table, 2, 4, 60*time.Second)
	testenv.WaitFor(t, "some records counted", 30*time.Second, func() bool {
		n, _ := rdb.DBSize(context.Background()).Result()
		return n > 10
	})

	// Shut Redis down (it writes its append-only file) and keep it down while records flow, until a
	// worker has logged that it will deliver a batch Redis refused again; the exact counts at the end say
	// that it did.
	atShutdown := storedTotal(sink)
	_ = rdb.Shutdown(context.Background()).Err() // the connection closes under the command
	testenv.WaitFor(t, "redis to stop", 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() != nil })
	const during = 200
	testenv.WaitForState(t, fmt.Sprintf("a worker to retry a batch Redis refused, and %d records produced, while Redis is down", during),
		60*time.Second, func() (bool, string) {
			retries, produced := f.redisRetries(t), storedTotal(sink)-atShutdown
			return retries >= 1 && produced >= during, fmt.Sprintf("%d retries logged, %d records produced since Redis stopped", retries, produced)
		})
	atRestart := storedTotal(sink)
	testenv.StartRedis(t, dir, port)
	const after = 2000
	testenv.WaitFor(t, fmt.Sprintf("%d records produced after the restart", after), 60*time.Second, func() bool {
		return storedTotal(sink)-atRestart >= after
	})
	stop()
	t.Logf("records stored: %d before the outage, %d during it, %d after it; batches Redis refused, delivered again: %d",
		atShutdown, atRestart-atShutdown, storedTotal(sink)-atRestart, f.redisRetries(t))
	countcheck.WaitExact(t, rdb, f.pfx, countcheck.OnStream(t, kin, stream, sink.Stored()), 90*time.Second)
}

// storedTotal is how many records the producer has had stored so far.
func storedTotal(sink *countcheck.Sink) int64 {
	var n int64
	for _, c := range sink.Stored() {
		n += c
	}
	return n
}

// redisRetries counts, from the workers' logs, the batches Redis refused that a worker said it would
// deliver again after a backoff.
func (f *fleet) redisRetries(t *testing.T) int {
	t.Helper()
	f.mu.Lock()
	logs := make(map[string]string, len(f.logs))
	for id, b := range f.logs {
		logs[id] = b.String()
	}
	f.mu.Unlock()
	retries := 0
	for id, out := range logs {
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg   string `json:"msg"`
				Error string `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue // not a log line (the race detector's output, a panic)
			}
			if line.Msg == "processor failed a batch; delivering it again after a backoff" && strings.Contains(line.Error, "in Redis") {
				retries++
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("log of worker %s: %v", id, err)
		}
	}
	return retries
}
