package lease

import (
	"testing"
	"time"
)

// A holder's ValidFor stays within (0, failover time] while its worker renews, and has run out by the
// time another worker owns the lease: a worker frozen past the failover time (its DynamoDB calls hang)
// sees zero before it could write anything a new owner would not expect.
func TestValidForRunsOutBeforeTakeover(t *testing.T) {
	f := newFleet(t, 4)
	ws := []*worker{f.start("worker-0", nil), f.start("worker-1", nil)}
	f.waitFor("balance", 60*time.Second, func(_ []Lease, hold map[string][]string) bool {
		return balanced(hold, f.ids(ws...), 4)
	})
	victim := ws[0]
	keys := victim.c.Holding()
	handles := map[string]*Handle{}
	f.mu.Lock()
	for _, k := range keys {
		handles[k] = f.handles[victim.id+"/"+k]
	}
	f.mu.Unlock()
	for k, h := range handles {
		if v := h.ValidFor(); v <= 0 || v > testFailover {
			t.Fatalf("%s: ValidFor %v while held, want within (0, %v]", k, v, testFailover)
		}
	}
	victim.db.freeze()
	f.waitFor("the frozen worker's leases owned by the other", 30*time.Second, func(leases []Lease, _ map[string][]string) bool {
		owners := ownersOf(leases)
		for _, k := range keys {
			if owners[k] != ws[1].id {
				return false
			}
		}
		return true
	})
	for k, h := range handles {
		if v := h.ValidFor(); v != 0 {
			t.Errorf("%s: ValidFor %v on the frozen worker after another took the lease, want 0", k, v)
		}
	}
	victim.db.thaw()
}
