package lease

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"
)

// TestBalance runs two, three and five workers (and three in the every-worker-scan mode) on 16 leases until every
// worker holds within one lease of every other, checking at every scan that
// no shard is processed by two workers and that each new owner starts from
// its predecessor's final checkpoint. It logs the steady-state DynamoDB
// writes per second per held lease.
func TestBalance(t *testing.T) {
	for _, tc := range []struct {
		mode string
		n    int
	}{{AssignByLeader, 2}, {AssignByLeader, 3}, {AssignByLeader, 5}, {AssignByScan, 3}} {
		n := tc.n
		t.Run(fmt.Sprintf("%s, %d workers", tc.mode, n), func(t *testing.T) {
			f := newFleet(t, 16)
			var ws []*worker
			for i := range n {
				ws = append(ws, f.start(fmt.Sprintf("worker-%d", i), func(c *Config) { c.Assignment = tc.mode }))
			}
			took := f.waitFor("balance", 60*time.Second, func(_ []Lease, hold map[string][]string) bool {
				return balanced(hold, f.ids(ws...), 16)
			})
			t.Logf("%d workers balanced 16 leases in %v (%d scans checked): %v", n, took.Round(time.Millisecond), f.scans, f.holding())

			// Steady state: writes per second per held lease.
			before := 0.0
			for _, w := range ws {
				before += w.writes(t)
			}
			window := 3 * time.Second
			start := time.Now()
			f.waitFor("steady window", 2*window, func(_ []Lease, hold map[string][]string) bool {
				return time.Since(start) >= window
			})
			elapsed := time.Since(start)
			after := 0.0
			for _, w := range ws {
				after += w.writes(t)
			}
			perLease := (after - before) / elapsed.Seconds() / 16
			cfg := ws[0].c.Config()
			def := Config{Table: "x", Process: func(*Handle) {}}
			if err := def.Validate(); err != nil {
				t.Fatal(err)
			}
			t.Logf("steady state: %.2f writes/s per held lease at renew interval %v; scaled to the default %v: %.3f writes/s per lease",
				perLease, cfg.RenewInterval, def.RenewInterval, perLease*cfg.RenewInterval.Seconds()/def.RenewInterval.Seconds())
			for _, w := range ws {
				if lost := w.counter(t, "clickfleet_lease_lost_total"); lost != 0 {
					t.Errorf("%s lost %v leases while all workers were healthy", w.id, lost)
				}
			}
		})
	}
}

// TestCrashFailover freezes one of three workers (its DynamoDB calls hang, as
// if the process were stopped): its holders learn of the loss by its own
// clock, the others take its leases after the failover time, and any write it
// attempts afterwards fails with ErrLeaseLost.
func TestCrashFailover(t *testing.T) {
	f := newFleet(t, 16)
	ws := []*worker{f.start("worker-0", nil), f.start("worker-1", nil), f.start("worker-2", nil)}
	f.waitFor("balance", 60*time.Second, func(_ []Lease, hold map[string][]string) bool {
		return balanced(hold, f.ids(ws...), 16)
	})
	victim := ws[0]
	victimLeases := victim.c.Holding()
	handles := map[string]*Handle{}
	f.mu.Lock()
	for _, k := range victimLeases {
		handles[k] = f.handles[victim.id+"/"+k]
	}
	f.mu.Unlock()

	victim.db.freeze()
	took := f.waitFor("re-own the crashed worker's leases", 30*time.Second, func(leases []Lease, hold map[string][]string) bool {
		owners := ownersOf(leases)
		for _, k := range victimLeases {
			if o := owners[k]; o == victim.id || o == "" {
				return false
			}
			if !slices.Contains(hold[ws[1].id], k) && !slices.Contains(hold[ws[2].id], k) {
				return false
			}
		}
		return true
	})
	t.Logf("crash → all %d leases processed by other workers: %v (failover %v, take interval %v)",
		len(victimLeases), took.Round(time.Millisecond), testFailover, ws[1].c.Config().TakeInterval)

	for k, h := range handles {
		select {
		case <-h.Context().Done():
		default:
			t.Fatalf("holder of %s on the crashed worker was not told", k)
		}
		if cause := context.Cause(h.Context()); !errors.Is(cause, ErrLeaseLost) {
			t.Errorf("holder of %s: cause %v, want ErrLeaseLost", k, cause)
		}
	}
	victim.db.thaw()
	ctx := context.Background()
	for k, h := range handles {
		if err := h.Checkpoint(ctx, "99999999", 0); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("checkpoint of %s by the crashed worker after failover: %v, want ErrLeaseLost", k, err)
		}
		if err := h.Release(ctx); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("release of %s by the crashed worker after failover: %v, want ErrLeaseLost", k, err)
		}
		// The table's fence rejects it too, without the worker's local bookkeeping.
		stale := h.Lease()
		if _, err := f.tbl.renew(ctx, k, victim.id, stale.Counter); !errors.Is(err, errConditionFailed) {
			t.Errorf("renew of %s at the crashed worker's counter: %v, want a failed condition", k, err)
		}
	}
}

// TestCleanShutdownHandsOver stops one of three workers cleanly: its holders
// checkpoint and release, and the others take its leases at their next take
// cycle, starting from those checkpoints.
func TestCleanShutdownHandsOver(t *testing.T) {
	f := newFleet(t, 16)
	ws := []*worker{f.start("worker-0", nil), f.start("worker-1", nil), f.start("worker-2", nil)}
	f.waitFor("balance", 60*time.Second, func(_ []Lease, hold map[string][]string) bool {
		return balanced(hold, f.ids(ws...), 16)
	})
	leaving := ws[0]
	leases := leaving.c.Holding()
	stopped := time.Now()
	f.stop(leaving)
	stopTook := time.Since(stopped)
	took := f.waitFor("take over a cleanly stopped worker's leases", 10*time.Second, func(_ []Lease, hold map[string][]string) bool {
		for _, k := range leases {
			if !slices.Contains(hold[ws[1].id], k) && !slices.Contains(hold[ws[2].id], k) {
				return false
			}
		}
		return true
	})
	total := stopTook + took
	t.Logf("clean shutdown: Run returned in %v; all %d leases processed elsewhere %v after shutdown began (take interval %v, failover %v)",
		stopTook.Round(time.Millisecond), len(leases), total.Round(time.Millisecond), ws[1].c.Config().TakeInterval, testFailover)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range leases {
		fin, ok := f.final[k]
		if !ok || fin.worker != leaving.id || !errors.Is(fin.cause, ErrShutdownRequested) {
			t.Errorf("shard %s: no final checkpoint by %s on shutdown: %+v", k, leaving.id, fin)
		}
		starts := f.starts[k]
		last := starts[len(starts)-1]
		if last.worker == leaving.id || last.start != fin.cp {
			t.Errorf("shard %s: restarted on %s at %v, want another worker at %v", k, last.worker, last.start, fin.cp)
		}
	}
}

// TestStealHandoff starts a second worker next to one that holds all eight
// leases: every lease moved for balance is handed over, the old owner's final
// checkpoint recorded before the new owner starts from it.
func TestStealHandoff(t *testing.T) {
	f := newFleet(t, 8)
	a := f.start("worker-a", nil)
	f.waitFor("a holds all", 30*time.Second, func(_ []Lease, hold map[string][]string) bool { return len(hold[a.id]) == 8 })
	b := f.start("worker-b", nil)
	f.waitFor("balance", 60*time.Second, func(_ []Lease, hold map[string][]string) bool {
		return balanced(hold, f.ids(a, b), 8)
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	moved := 0
	for k, fin := range f.final {
		if !errors.Is(fin.cause, ErrHandoffRequested) {
			t.Errorf("shard %s left %s with cause %v, want a handoff", k, fin.worker, fin.cause)
			continue
		}
		starts := f.starts[k]
		last := starts[len(starts)-1]
		if last.worker != b.id || last.start != fin.cp {
			t.Errorf("shard %s: new owner %s started at %v, want %s at the final checkpoint %v", k, last.worker, last.start, b.id, fin.cp)
		}
		moved++
		t.Logf("handoff of %s: old owner noticed → new owner started: %v", k, last.at.Sub(fin.at).Round(time.Millisecond))
	}
	if moved != 4 {
		t.Errorf("%d leases handed over, want 4", moved)
	}
	// b counts as stolen the handoffs it saw in flight; one the old owner finished before b read the
	// lease looks like any assignment to b (taken). Every one it saw completed, none timed out.
	stolen := b.counter(t, "clickfleet_lease_stolen_total")
	taken := b.counter(t, "clickfleet_lease_taken_total")
	if stolen+taken != 4 {
		t.Errorf("b stole %v and took %v leases, want 4 in all", stolen, taken)
	}
	completed := b.counter(t, "clickfleet_lease_handoffs_total", "result", "completed")
	timedOut := b.counter(t, "clickfleet_lease_handoffs_total", "result", "timed_out")
	if completed != stolen || timedOut != 0 {
		t.Errorf("handoffs: %v completed, %v timed out of %v seen in flight; want all completed, none timed out", completed, timedOut, stolen)
	}
}

// TestClockSkew gives three workers wall clocks minutes apart: they balance
// as any fleet does and, once balanced, nobody's lease expires or moves.
func TestClockSkew(t *testing.T) {
	f := newFleet(t, 16)
	var ws []*worker
	for i, off := range []time.Duration{0, 7 * time.Minute, -11 * time.Minute} {
		ws = append(ws, f.start(fmt.Sprintf("worker-%d", i), func(c *Config) { c.Clock = OffsetClock{Offset: off} }))
	}
	f.waitFor("balance", 60*time.Second, func(_ []Lease, hold map[string][]string) bool {
		return balanced(hold, f.ids(ws...), 16)
	})
	leases, _ := f.check()
	owners := ownersOf(leases)
	start := time.Now()
	f.waitFor("four failover times", 10*time.Second, func(leases []Lease, _ map[string][]string) bool {
		if now := ownersOf(leases); !maps.Equal(now, owners) {
			t.Fatalf("ownership changed under clock skew: %v → %v", owners, now)
		}
		return time.Since(start) > 4*testFailover
	})
	for _, w := range ws {
		if lost := w.counter(t, "clickfleet_lease_lost_total"); lost != 0 {
			t.Errorf("%s lost %v leases under clock skew", w.id, lost)
		}
	}
}

// TestHandoffTimeout: the old owner's holder does not finish; the thief ends
// the handoff itself after HandoffTimeout, and the old holder's late
// checkpoint and release fail with ErrLeaseLost.
func TestHandoffTimeout(t *testing.T) {
	f := newFleet(t, 2)
	late := make(chan error, 2)
	proceed := make(chan struct{})
	a := f.start("worker-a", func(c *Config) {
		c.Process = func(h *Handle) {
			<-h.Context().Done()
			if !errors.Is(context.Cause(h.Context()), ErrHandoffRequested) {
				return
			}
			<-proceed // stuck past the handoff timeout
			ctx := context.Background()
			late <- errors.Join(h.Checkpoint(ctx, "5000", 0), h.Release(ctx))
		}
	})
	f.waitFor("a holds all", 30*time.Second, func(_ []Lease, hold map[string][]string) bool { return len(hold[a.id]) == 2 })
	b := f.start("worker-b", func(c *Config) { c.HandoffTimeout = testFailover })
	took := f.waitFor("b starts after the handoff timeout", 30*time.Second, func(_ []Lease, hold map[string][]string) bool {
		return len(hold[b.id]) == 1
	})
	t.Logf("b started %v after it was started (handoff timeout %v)", took.Round(time.Millisecond), testFailover)
	timedOut := b.counter(t, "clickfleet_lease_handoffs_total", "result", "timed_out")
	completed := b.counter(t, "clickfleet_lease_handoffs_total", "result", "completed")
	if timedOut != 1 || completed != 0 {
		t.Errorf("handoffs: %v timed out, %v completed; want 1 timed out, 0 completed", timedOut, completed)
	}
	close(proceed)
	if err := <-late; !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("late checkpoint/release by the old owner: %v, want ErrLeaseLost", err)
	}
}
