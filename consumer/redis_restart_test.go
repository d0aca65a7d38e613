package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/countcheck"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Redis goes away mid-run and comes back: workers retry, checkpoint nothing they have not written, and the
// counts end exact.
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
	sink, wait := countcheck.Produce(t, kin, stream, 8000, 100, 2000, 3)
	waitBalanced(t, f.table, 2, 4, 60*time.Second)
	testenv.WaitFor(t, "some records counted", 30*time.Second, func() bool {
		n, _ := rdb.DBSize(context.Background()).Result()
		return n > 10
	})
	// Shut Redis down (it writes its append-only file) and keep it down while records flow.
	_ = rdb.Shutdown(context.Background()).Err() // the connection closes under the command
	testenv.WaitFor(t, "redis to stop", 10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() != nil })
	time.Sleep(3 * time.Second) // an outage of a fixed length: workers must keep retrying through it
	testenv.StartRedis(t, dir, port)
	wait()
	countcheck.WaitExact(t, rdb, f.pfx, countcheck.OnStream(t, kin, stream, sink.Stored()), 90*time.Second)
}
