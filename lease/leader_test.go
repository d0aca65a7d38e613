package lease

import (
	"fmt"
	"testing"
	"time"
)

// leaderOf returns the workers that are the leader now (by their own clocks).
func leaders(ws []*worker) []string {
	var ids []string
	for _, w := range ws {
		if w.c.IsLeader() {
			ids = append(ids, w.id)
		}
	}
	return ids
}

// fast is the leader-mode config of these tests: rounds and own-lease reads every 200ms.
func fast(c *Config) { c.TakeInterval = 200 * time.Millisecond }

// One leader at a time; when it stops dead (its calls hang, as under SIGSTOP or a network cut) another
// takes over after the failover time, reassigns the dead worker's leases, and when the paused leader
// comes back its delayed writes — the requests it had in flight — change nothing: each is fenced on a
// lease counter that has moved on, or the lock's, so no shard is ever processed by two workers (the
// fleet's checker runs at every scan).
func TestLeaderFailoverAndFencing(t *testing.T) {
	f := newFleet(t, 6)
	var ws []*worker
	for i := range 3 {
		ws = append(ws, f.start(fmt.Sprintf("worker-%d", i), fast))
	}
	f.waitFor("one leader and every lease held", 30*time.Second, func(_ []Lease, hold map[string][]string) bool {
		return len(leaders(ws)) == 1 && balanced(hold, f.ids(ws...), 6)
	})
	var old *worker
	for _, w := range ws {
		if w.c.IsLeader() {
			old = w
		}
	}
	movesBefore := old.counter(t, "clickfleet_lease_leader_moves_total")
	old.db.mu.Lock()
	old.db.late = true
	old.db.mu.Unlock()
	old.db.freeze()
	paused := time.Now()
	var rest []*worker
	for _, w := range ws {
		if w != old {
			rest = append(rest, w)
		}
	}
	took := f.waitFor("a new leader", 10*testFailover, func(_ []Lease, _ map[string][]string) bool {
		ls := leaders(rest)
		return len(ls) == 1
	})
	t.Logf("new leader %v after %v (failover time %v)", leaders(rest), time.Since(paused).Round(time.Millisecond), testFailover)
	_ = took
	f.waitFor("the paused worker's leases reassigned", 10*testFailover, func(_ []Lease, hold map[string][]string) bool {
		return balanced(hold, f.ids(rest...), 6)
	})
	recovered := time.Since(paused)
	if old.c.IsLeader() {
		t.Fatalf("the paused worker still counts itself the leader %v after it stopped renewing", recovered)
	}
	old.db.thaw() // its held requests go out now, late
	f.waitFor("a settled fleet after the paused worker's late requests", 10*testFailover, func(_ []Lease, hold map[string][]string) bool {
		return len(leaders(ws)) == 1 && balanced(hold, f.ids(ws...), 6)
	})
	t.Logf("recovered every lease %v after the pause; moves by the paused leader: %v before, %v after",
		recovered.Round(time.Millisecond), movesBefore, old.counter(t, "clickfleet_lease_leader_moves_total"))
}

// A worker that stops cleanly releases its leases and leaves the fleet's load table, so the leader (itself,
// if it was the leader, through the released lock) gives them to the others at its next round: no wait for
// the failover time.
func TestCleanStopHandsOverWithoutExpiry(t *testing.T) {
	for _, stopLeader := range []bool{false, true} {
		t.Run(fmt.Sprintf("stopping the leader: %v", stopLeader), func(t *testing.T) {
			f := newFleet(t, 4)
			ws := []*worker{f.start("worker-0", fast), f.start("worker-1", fast)}
			f.waitFor("balance", 30*time.Second, func(_ []Lease, hold map[string][]string) bool {
				return len(leaders(ws)) == 1 && balanced(hold, f.ids(ws...), 4)
			})
			leaving, staying := ws[0], ws[1]
			if leaving.c.IsLeader() != stopLeader {
				leaving, staying = staying, leaving
			}
			n := len(leaving.c.Holding())
			start := time.Now()
			f.stop(leaving)
			took := f.waitFor("the other worker holds everything", 10*testFailover, func(_ []Lease, hold map[string][]string) bool {
				return len(hold[staying.id]) == 4
			})
			t.Logf("%d leases handed over %v after the stop began (failover time %v)", n, time.Since(start).Round(time.Millisecond), testFailover)
			if rel := leaving.counter(t, "clickfleet_lease_released_total"); int(rel) < n {
				t.Errorf("the leaving worker released %v of its %d leases: the rest waited for expiry", rel, n)
			}
			if expiredTakes := staying.counter(t, "clickfleet_lease_lost_total"); expiredTakes != 0 {
				t.Errorf("the staying worker lost %v leases", expiredTakes)
			}
			_ = took
		})
	}
}

// A hot shard (one user with many clicks) overloads whichever worker holds it. Eight shards, one at 10×
// the others, four workers reporting what they read: the leader moves leases by handoff until no worker is
// above 1.2× the mean throughput — except the one holding the hot shard alone, which no move can help —
// with few moves, and then moves nothing more (no back and forth).
func TestHotShardIsBalancedByLoad(t *testing.T) {
	f := newFleet(t, 8)
	hot := f.keys[0]
	rate := func(shard string) float64 {
		if shard == hot {
			return 1000
		}
		return 100
	}
	var ws []*worker
	for i := range 4 {
		var w *worker
		w = f.start(fmt.Sprintf("worker-%d", i), func(c *Config) {
			fast(c)
			c.Load = func() Load {
				l := Load{Shards: map[string]ShardLoad{}}
				for _, k := range w.c.Holding() {
					l.Shards[k] = ShardLoad{RecordsPerSec: rate(k), BytesPerSec: 200 * rate(k)}
				}
				return l
			}
		})
		ws = append(ws, w)
	}
	total := 1000.0 + 7*100
	mean := total / 4
	balancedByLoad := func(hold map[string][]string) bool {
		n := 0
		for _, w := range ws {
			load := 0.0
			for _, k := range hold[w.id] {
				load += rate(k)
			}
			n += len(hold[w.id])
			alone := len(hold[w.id]) == 1 && hold[w.id][0] == hot
			if load > 1.2*mean && !alone {
				return false
			}
		}
		return n == 8
	}
	took := f.waitFor("balance by load", 60*time.Second, func(_ []Lease, hold map[string][]string) bool { return balancedByLoad(hold) })
	moves := func() float64 {
		n := 0.0
		for _, w := range ws {
			n += w.counter(t, "clickfleet_lease_leader_moves_total")
		}
		return n
	}
	settled := moves()
	window := time.Now().Add(5 * time.Second) // 25 rounds
	f.waitFor("a quiet window", 10*time.Second, func(_ []Lease, hold map[string][]string) bool {
		if !balancedByLoad(hold) {
			t.Errorf("balance lost again: %v", hold)
		}
		return time.Now().After(window)
	})
	after := moves()
	t.Logf("balanced by load in %v with %v assignments (8 initial takes included); holding %v", took.Round(time.Millisecond), settled, f.holding())
	if settled > 8+6 {
		t.Errorf("%v assignments to balance 8 leases, want at most 8 takes and 6 moves", settled)
	}
	if after != settled {
		t.Errorf("%v more assignments after the fleet was balanced: leases moving back and forth", after-settled)
	}
}
