package consumer_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/countcheck"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Subscriptions that the server ends while records flow — cleanly, as Kinesis does every five minutes,
// or by resetting the stream, as a broken connection does — are renewed from the last event's
// continuation: two `consume --read-mode efo` workers count every record exactly once. The stack's
// proxy ends every open subscription of the application's stream consumer, four times, each time once
// all four shards are subscribed again; the load lasts through the rounds and past the last renewal.
func TestSubscriptionsEndedByTheServerResumeExactly(t *testing.T) {
	kin, rdb := testenv.Kinesis(t), testenv.Redis(t)
	testenv.KinesisFanOut(t)
	stream := testenv.Stream(t, kin, 4)
	f := newFleet(t, stream, os.Getenv("CLICKFLEET_REDIS_URL"), "--read-mode", "efo")
	f.start("w1")
	f.start("w2")
	sink, stop := countcheck.ProduceUntil(t, kin, stream, 100, 300, 5)
	waitBalanced(t, f.table, 2, 4, 60*time.Second)
	consumer := f.table // the stream consumer is named after the lease table
	ended := map[string]int{}
	for _, how := range []string{"clean", "reset", "clean", "reset"} {
		opened := allSubscribed(t, consumer, 4)
		n := testenv.EndSubscriptions(t, consumer, how)
		if n == 0 {
			t.Fatalf("the proxy ended no subscription of %s (%s), with 4 open a moment ago", consumer, how)
		}
		ended[how] += n
		testenv.WaitForState(t, fmt.Sprintf("%d subscriptions renewed after a %s end", n, how), 60*time.Second, func() (bool, string) {
			now, open := testenv.Subscriptions(t, consumer)
			return now >= opened+n, fmt.Sprintf("%d opened (%d before the end), %d open", now, opened, open)
		})
	}
	// Records put after the last renewal are read through the renewed subscriptions.
	renewed := storedTotal(sink)
	testenv.WaitFor(t, "300 records produced after the last renewal", 60*time.Second, func() bool { return storedTotal(sink)-renewed >= 300 })
	stop()
	t.Logf("subscriptions ended by the server: %v; %d records stored, %d of them after the last renewal", ended, storedTotal(sink), storedTotal(sink)-renewed)
	countcheck.WaitExact(t, rdb, f.pfx, countcheck.OnStream(t, kin, stream, sink.Stored()), 90*time.Second)
}

// allSubscribed waits until the consumer has n subscriptions open at the proxy and returns how many it
// has opened so far.
func allSubscribed(t *testing.T, consumer string, n int) int {
	t.Helper()
	var opened int
	testenv.WaitForState(t, fmt.Sprintf("%d open subscriptions of %s", n, consumer), 60*time.Second, func() (bool, string) {
		var open int
		opened, open = testenv.Subscriptions(t, consumer)
		return open == n, fmt.Sprintf("%d open, %d opened", open, opened)
	})
	return opened
}
