package lease

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// fakeNow is the fake clock of the planner tests: observations are stamped
// relative to it, so expiry is tested without sleeping.
var fakeNow = time.Unix(1_700_000_000, 0)

const failover = 10 * time.Second

// table builds leases "s00".."sNN" owned as given ("" = unowned), each with an
// observation of the given age (negative = never seen renewed).
type leaseSpec struct {
	owner    string
	age      time.Duration
	handoff  string // checkpointOwner
	shardEnd bool
}

func build(specs []leaseSpec) ([]Lease, map[string]Observation) {
	var leases []Lease
	obs := map[string]Observation{}
	for i, s := range specs {
		l := Lease{Key: fmt.Sprintf("s%02d", i), Owner: s.owner, Counter: int64(10 + i), CheckpointOwner: s.handoff, Checkpoint: TrimHorizon}
		if s.shardEnd {
			l.Checkpoint = ShardEnd
		}
		leases = append(leases, l)
		if s.age >= 0 {
			obs[l.Key] = Observation{Counter: l.Counter, SeenAt: fakeNow.Add(-s.age)}
		} else {
			obs[l.Key] = Observation{Counter: l.Counter}
		}
	}
	return leases, obs
}

func owned(owner string, n int, age time.Duration) []leaseSpec {
	s := make([]leaseSpec, n)
	for i := range s {
		s[i] = leaseSpec{owner: owner, age: age}
	}
	return s
}

func concat(parts ...[]leaseSpec) []leaseSpec { return slices.Concat(parts...) }

func keys(ls []Lease) []string {
	var k []string
	for _, l := range ls {
		k = append(k, l.Key)
	}
	slices.Sort(k)
	return k
}

func TestPlan(t *testing.T) {
	live := time.Second
	expired := failover + time.Second
	veryOld := 3*failover + time.Second
	tests := []struct {
		name      string
		specs     []leaseSpec
		cfg       PlanConfig
		wantTake  int
		wantSteal int
		wantFrom  string // owner the steals come from
		wantKeys  []string
		target    int
	}{
		{name: "no leases", specs: nil, wantTake: 0},
		{name: "new unowned leases are very old: a lone worker takes all", specs: concat(owned("", 16, -1)), wantTake: 16, target: 16},
		{name: "new unowned leases are capped by max per worker", specs: owned("", 16, -1), cfg: PlanConfig{MaxLeasesPerWorker: 5}, wantTake: 5, target: 5},
		{name: "released (unowned, recently changed) leases are taken up to the target",
			specs: concat(owned("b", 4, live), owned("", 12, live)), wantTake: 8, target: 8},
		{name: "expired leases of a dead worker are taken up to the target",
			specs: concat(owned("me", 4, live), owned("b", 4, live), owned("dead", 8, expired)), wantTake: 4, target: 8},
		{name: "very old leases are taken regardless of target",
			specs: concat(owned("me", 8, live), owned("b", 8, live), owned("dead", 2, veryOld)), wantTake: 2, target: 9,
			wantKeys: []string{"s16", "s17"}},
		{name: "a lease renewed just now is not expired", specs: concat(owned("b", 2, failover)), wantTake: 0, wantSteal: 1, wantFrom: "b", target: 1},
		{name: "balanced: nothing to do", specs: concat(owned("me", 8, live), owned("b", 8, live)), target: 8},
		{name: "within one of target: nothing to steal", specs: concat(owned("me", 5, live), owned("b", 6, live), owned("c", 5, live)), target: 6},
		{name: "steal one from the most loaded above target",
			specs: concat(owned("me", 0, live), owned("b", 10, live), owned("c", 6, live)), wantSteal: 1, wantFrom: "b", target: 6},
		{name: "steal several when allowed",
			specs: concat(owned("b", 12, live), owned("c", 4, live)), cfg: PlanConfig{MaxLeasesToStealAtOneTime: 3}, wantSteal: 3, wantFrom: "b", target: 6},
		{name: "most loaded at target and I need more than one: steal one",
			specs: concat(owned("me", 4, live), owned("b", 6, live), owned("c", 6, live)), wantSteal: 1, target: 6},
		{name: "most loaded at target and I need exactly one: no steal",
			specs: concat(owned("me", 5, live), owned("b", 6, live), owned("c", 5, live)), target: 6},
		{name: "leases in handoff are never stolen",
			specs: concat([]leaseSpec{{owner: "b", age: live, handoff: "x"}, {owner: "b", age: live, handoff: "x"}, {owner: "b", age: live, handoff: "x"}}), target: 2},
		{name: "shard-end leases are ignored",
			specs: concat(owned("b", 2, live), []leaseSpec{{shardEnd: true, age: -1}, {shardEnd: true, owner: "b", age: live}}), wantSteal: 1, wantFrom: "b", target: 1},
		{name: "my own expired lease is available to me", specs: concat(owned("me", 2, expired)), wantTake: 2, target: 2},
		{name: "do not steal while something is available",
			specs: concat(owned("b", 10, live), owned("", 1, live)), wantTake: 1, target: 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leases, obs := build(tc.specs)
			cfg := tc.cfg
			cfg.FailoverTime = failover
			d := Plan("me", leases, obs, fakeNow, cfg, rand.New(rand.NewPCG(1, 2)))
			if len(d.Take) != tc.wantTake || len(d.Steal) != tc.wantSteal {
				t.Fatalf("take %v steal %v (target %d, workers %d), want %d takes %d steals", keys(d.Take), keys(d.Steal), d.Target, d.Workers, tc.wantTake, tc.wantSteal)
			}
			if d.Target != tc.target {
				t.Errorf("target %d, want %d", d.Target, tc.target)
			}
			for _, l := range d.Steal {
				if tc.wantFrom != "" && l.Owner != tc.wantFrom {
					t.Errorf("stole %s from %q, want from %q", l.Key, l.Owner, tc.wantFrom)
				}
				if l.Owner == "me" || l.InHandoff() {
					t.Errorf("stole ineligible lease %+v", l)
				}
			}
			for _, l := range d.Take {
				if l.Owner != "" && l.Owner != "me" {
					if o := obs[l.Key]; fakeNow.Sub(o.SeenAt) <= failover {
						t.Errorf("took live lease %s of %s", l.Key, l.Owner)
					}
				}
			}
			if tc.wantKeys != nil && !slices.Equal(keys(d.Take), tc.wantKeys) {
				t.Errorf("took %v, want %v", keys(d.Take), tc.wantKeys)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	t0 := fakeNow
	t1 := t0.Add(5 * time.Second)
	tests := []struct {
		name string
		prev map[string]Observation
		l    Lease
		want Observation
	}{
		{name: "new owned lease is stamped now", l: Lease{Key: "a", Owner: "w", Counter: 3}, want: Observation{Counter: 3, SeenAt: t1}},
		{name: "new unowned lease is never renewed", l: Lease{Key: "a", Counter: 3}, want: Observation{Counter: 3}},
		{name: "unchanged counter keeps its stamp", prev: map[string]Observation{"a": {Counter: 3, SeenAt: t0}}, l: Lease{Key: "a", Owner: "w", Counter: 3}, want: Observation{Counter: 3, SeenAt: t0}},
		{name: "changed counter is stamped now", prev: map[string]Observation{"a": {Counter: 3, SeenAt: t0}}, l: Lease{Key: "a", Owner: "w", Counter: 4}, want: Observation{Counter: 4, SeenAt: t1}},
		{name: "released lease (counter changed, now unowned) is stamped now", prev: map[string]Observation{"a": {Counter: 3, SeenAt: t0}}, l: Lease{Key: "a", Counter: 4}, want: Observation{Counter: 4, SeenAt: t1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Observe(tc.prev, []Lease{tc.l, {Key: "other", Counter: 1}}, t1)
			if got[tc.l.Key] != tc.want {
				t.Fatalf("got %+v, want %+v", got[tc.l.Key], tc.want)
			}
			if _, ok := got["gone"]; ok {
				t.Fatal("kept a lease missing from the scan")
			}
		})
	}
}

// TestPlanConverges simulates workers planning in turn on a fake clock (all
// leases renewed on every round) and checks that every worker ends within one
// lease of every other, with steals one at a time.
func TestPlanConverges(t *testing.T) {
	for _, workers := range []int{2, 3, 5, 16, 20} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(workers), 7))
			leases := make([]Lease, 16)
			for i := range leases {
				leases[i] = Lease{Key: fmt.Sprintf("s%02d", i)}
			}
			obs := make([]map[string]Observation, workers)
			now := fakeNow
			for round := range 200 {
				now = now.Add(time.Second)
				for w := range workers {
					name := fmt.Sprintf("w%d", w)
					obs[w] = Observe(obs[w], leases, now)
					d := Plan(name, leases, obs[w], now, PlanConfig{FailoverTime: failover}, rng)
					for _, l := range slices.Concat(d.Take, d.Steal) {
						i := slices.IndexFunc(leases, func(x Lease) bool { return x.Key == l.Key })
						if leases[i].Counter != l.Counter {
							continue // lost the race, as a conditional write would
						}
						leases[i].Owner = name
						leases[i].Counter++
					}
				}
				for i := range leases { // everyone renews
					leases[i].Counter++
				}
				counts := map[string]int{}
				for _, l := range leases {
					counts[l.Owner]++
				}
				lo, hi := 16, 0
				for w := range workers {
					c := counts[fmt.Sprintf("w%d", w)]
					lo, hi = min(lo, c), max(hi, c)
				}
				if hi-lo <= 1 && counts[""] == 0 {
					t.Logf("balanced after %d rounds: %v", round+1, counts)
					return
				}
			}
			t.Fatal("did not converge in 200 rounds")
		})
	}
}
