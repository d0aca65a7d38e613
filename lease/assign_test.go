package lease

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// neverSeen, as an assignLease age, means the leader never saw the lease renewed.
const neverSeen = time.Duration(-1)

// assignLease describes one lease of an Assign test case.
type assignLease struct {
	key          string
	owner        string
	age          time.Duration // since the leader saw its counter change (0: just now; neverSeen)
	renewedSince bool          // the counter moved past the observed one (a renewal not yet observed)
	handoff      string        // checkpointOwner
	shardEnd     bool
}

// assignInput builds Assign's leases and observations at fakeNow.
func assignInput(specs []assignLease) ([]Lease, map[string]Observation) {
	var leases []Lease
	obs := map[string]Observation{}
	for i, s := range specs {
		l := Lease{Key: s.key, Owner: s.owner, Counter: int64(100 + i), CheckpointOwner: s.handoff, Checkpoint: TrimHorizon}
		if s.shardEnd {
			l.Checkpoint = ShardEnd
		}
		o := Observation{Counter: l.Counter, SeenAt: fakeNow.Add(-s.age)}
		if s.age == neverSeen {
			o.SeenAt = time.Time{}
		}
		if s.renewedSince {
			o.Counter--
		}
		obs[l.Key] = o
		leases = append(leases, l)
	}
	return leases, obs
}

// workerLoads builds the workers, in the order given, with the records/s
// each reports per shard (reports: worker → shard → records/s).
func workerLoads(ids []string, reports map[string]map[string]float64) []WorkerLoad {
	var ws []WorkerLoad
	for _, id := range ids {
		w := WorkerLoad{Worker: id}
		for key, rps := range reports[id] {
			if w.Shards == nil {
				w.Shards = map[string]ShardLoad{}
			}
			w.Shards[key] = ShardLoad{RecordsPerSec: rps, BytesPerSec: 1000 * rps}
		}
		ws = append(ws, w)
	}
	return ws
}

// held returns leases key+"1".."n" owned by owner, just renewed.
func held(owner, key string, n int) []assignLease {
	var s []assignLease
	for i := 1; i <= n; i++ {
		s = append(s, assignLease{key: fmt.Sprintf("%s%d", key, i), owner: owner})
	}
	return s
}

// moveStrings renders moves as "key take to" or "key handoff to", in order.
func moveStrings(moves []Move) []string {
	var s []string
	for _, m := range moves {
		kind := "take"
		if m.Handoff {
			kind = "handoff"
		}
		s = append(s, fmt.Sprintf("%s %s %s", m.Lease.Key, kind, m.To))
	}
	return s
}

func TestAssign(t *testing.T) {
	expired := failover + time.Second
	cooldown := 2 * failover // the default
	tests := []struct {
		name    string
		leases  []assignLease
		workers []string
		reports map[string]map[string]float64
		moved   map[string]time.Duration // lease key → how long ago it was moved
		cfg     AssignConfig
		want    []string
	}{
		{name: "an unowned lease goes to the least loaded worker",
			leases:  []assignLease{{key: "a1", owner: "a"}, {key: "b1", owner: "b"}, {key: "u1"}},
			workers: []string{"a", "b"}, reports: map[string]map[string]float64{"a": {"a1": 100}, "b": {"b1": 10}},
			want: []string{"u1 take b"}},
		{name: "new leases with no load reported spread by count, ties by worker id",
			leases:  slices.Concat(held("a", "a", 1), held("", "u", 4)),
			workers: []string{"c", "b", "a"},
			want:    []string{"u1 take b", "u2 take c", "u3 take a", "u4 take b"}},
		{name: "an unreported new lease counts as the mean reported shard load",
			leases:  slices.Concat(held("b", "b", 1), held("", "u", 3)),
			workers: []string{"a", "b"}, reports: map[string]map[string]float64{"b": {"b1": 5}},
			want: []string{"u1 take a", "u2 take a", "u3 take b"}},
		{name: "an expired lease goes to the least loaded worker, away from its live owner",
			leases:  []assignLease{{key: "a1", owner: "a"}, {key: "a2", owner: "a", age: expired}, {key: "b1", owner: "b"}},
			workers: []string{"a", "b"}, reports: map[string]map[string]float64{"a": {"a1": 50}, "b": {"b1": 10}},
			want: []string{"a2 take b"}},
		{name: "available leases are taken heaviest first",
			leases:  []assignLease{{key: "a1", owner: "a"}, {key: "a2", owner: "a", age: expired}, {key: "a3", owner: "a", age: expired}},
			workers: []string{"a", "b", "c"}, reports: map[string]map[string]float64{"a": {"a1": 5, "a2": 1, "a3": 60}},
			want: []string{"a3 take b", "a2 take c"}},
		{name: "a lease never seen renewed is available",
			leases:  []assignLease{{key: "n1", owner: "x", age: neverSeen}},
			workers: []string{"a"},
			want:    []string{"n1 take a"}},
		{name: "a lease renewed within the failover time is not taken",
			leases:  []assignLease{{key: "a1", owner: "a", age: failover}},
			workers: []string{"b"},
			want:    nil},
		{name: "a renewal the leader has not observed yet is no expiry",
			leases:  []assignLease{{key: "a1", owner: "a", age: expired, renewedSince: true}},
			workers: []string{"b"},
			want:    nil},
		{name: "the expired leases of an owner that left go to the remaining workers",
			leases: slices.Concat(held("a", "a", 1), held("b", "b", 1),
				[]assignLease{{key: "g1", owner: "gone", age: expired}, {key: "g2", owner: "gone", age: expired}, {key: "g3", owner: "gone", age: expired}, {key: "g4", owner: "gone", age: expired}}),
			workers: []string{"a", "b"},
			want:    []string{"g1 take a", "g2 take b", "g3 take a", "g4 take b"}},
		{name: "the live leases of a worker not in the round are neither taken nor counted",
			leases:  slices.Concat(held("leaving", "g", 4), held("a", "a", 1)),
			workers: []string{"a", "b"},
			want:    nil},
		{name: "takes stop at MaxLeasesPerWorker",
			leases:  held("", "u", 5),
			workers: []string{"a", "b"}, cfg: AssignConfig{MaxLeasesPerWorker: 2},
			want: []string{"u1 take a", "u2 take b", "u3 take a", "u4 take b"}},
		{name: "no handoff to a worker at MaxLeasesPerWorker",
			leases:  slices.Concat(held("a", "a", 6), held("b", "b", 2)),
			workers: []string{"a", "b"}, cfg: AssignConfig{MaxLeasesPerWorker: 2},
			want: nil},
		{name: "leases in a handoff are never moved for balance",
			leases: []assignLease{{key: "a1", owner: "a", handoff: "x"}, {key: "a2", owner: "a", handoff: "x"},
				{key: "a3", owner: "a", handoff: "x"}, {key: "a4", owner: "a", handoff: "x"}},
			workers: []string{"a", "b"},
			want:    nil},
		{name: "an expired lease in a handoff is taken, not handed off",
			leases:  []assignLease{{key: "a1", owner: "a", handoff: "x", age: expired}, {key: "a2", owner: "a"}},
			workers: []string{"a", "b"},
			want:    []string{"a1 take b"}},
		{name: "SHARD_END leases are ignored",
			leases: slices.Concat(held("a", "a", 1), []assignLease{{key: "e1", shardEnd: true, age: neverSeen},
				{key: "e2", owner: "a", shardEnd: true}, {key: "e3", owner: "a", shardEnd: true}, {key: "e4", owner: "a", shardEnd: true, age: expired}}),
			workers: []string{"a", "b"},
			want:    nil},
		{name: "by count: handoffs from the most loaded, MaxMovesPerRound at a time",
			leases:  held("a", "a", 6),
			workers: []string{"a", "b"},
			want:    []string{"a1 handoff b", "a2 handoff b"}},
		{name: "by count: a lease moves at most once a round",
			leases:  held("a", "a", 6),
			workers: []string{"a", "b", "c"},
			want:    []string{"a1 handoff b", "a2 handoff c"}},
		{name: "by count: handoffs stop once within one lease",
			leases:  held("a", "a", 6),
			workers: []string{"a", "b"}, cfg: AssignConfig{MaxMovesPerRound: 5},
			want: []string{"a1 handoff b", "a2 handoff b", "a3 handoff b"}},
		{name: "by count: within one lease, no handoff",
			leases:  slices.Concat(held("a", "a", 3), held("b", "b", 2)),
			workers: []string{"a", "b"},
			want:    nil},
		{name: "a lease moved within Cooldown is not moved again",
			leases:  held("a", "a", 4),
			workers: []string{"a", "b"},
			moved:   map[string]time.Duration{"a1": time.Second, "a2": cooldown - time.Second, "a3": cooldown + time.Second},
			want:    []string{"a3 handoff b", "a4 handoff b"}},
		{name: "by load: the move that most reduces the larger load, without a flip",
			leases:  slices.Concat(held("a", "a", 4), held("b", "b", 1), held("c", "c", 1)),
			workers: []string{"a", "b", "c"},
			reports: map[string]map[string]float64{"a": {"a1": 10, "a2": 20, "a3": 30, "a4": 40}, "b": {"b1": 10}, "c": {"c1": 10}},
			want:    []string{"a4 handoff b", "a2 handoff c"}},
		{name: "by load: a hot shard alone on a worker is not split",
			leases:  slices.Concat(held("a", "a", 1), held("b", "b", 2)),
			workers: []string{"a", "b"},
			reports: map[string]map[string]float64{"a": {"a1": 100}, "b": {"b1": 1, "b2": 1}},
			want:    nil},
		{name: "by load: no move that would put the receiver above the giver",
			leases:  slices.Concat(held("a", "a", 2), held("b", "b", 1)),
			workers: []string{"a", "b"}, cfg: AssignConfig{Tolerance: 1.1},
			reports: map[string]map[string]float64{"a": {"a1": 30, "a2": 30}, "b": {"b1": 40}},
			want:    nil},
		{name: "by load: the next overloaded worker gives when the most loaded cannot",
			leases:  slices.Concat(held("a", "a", 1), held("b", "b", 4)),
			workers: []string{"a", "b", "c", "d"},
			reports: map[string]map[string]float64{"a": {"a1": 100}, "b": {"b1": 20, "b2": 20, "b3": 20, "b4": 20}},
			want:    []string{"b1 handoff c", "b2 handoff d"}},
		{name: "by load: within Tolerance, no move",
			leases:  slices.Concat(held("a", "a", 2), held("b", "b", 1)),
			workers: []string{"a", "b"},
			reports: map[string]map[string]float64{"a": {"a1": 50, "a2": 5}, "b": {"b1": 45}},
			want:    nil},
		{name: "by load: equal loads are tied by lease count",
			leases:  slices.Concat(held("a", "a", 2), held("b", "b", 1), held("", "u", 1)),
			workers: []string{"a", "b"},
			reports: map[string]map[string]float64{"a": {"a1": 10, "a2": 10}, "b": {"b1": 20}},
			want:    []string{"u1 take b"}},
		{name: "by load: an unreported held shard counts as the mean reported shard load",
			leases:  slices.Concat(held("a", "a", 2), held("b", "b", 2)),
			workers: []string{"a", "b", "c"},
			reports: map[string]map[string]float64{"a": {"a1": 30}, "b": {"b1": 10, "b2": 20}},
			want:    []string{"a2 handoff c"}},
		{name: "by load: a shard its new owner has not reported yet keeps its previous owner's figure",
			leases:  []assignLease{{key: "a1", owner: "a"}, {key: "h1", owner: "b"}, {key: "b2", owner: "b"}, {key: "c1", owner: "c"}},
			workers: []string{"a", "b", "c"},
			reports: map[string]map[string]float64{"a": {"a1": 10, "h1": 90}, "b": {"b2": 10}, "c": {"c1": 10}},
			want:    []string{"b2 handoff a"}},
		{name: "an idle stream (all loads reported zero) is balanced by count",
			leases:  held("a", "a", 4),
			workers: []string{"a", "b"},
			reports: map[string]map[string]float64{"a": {"a1": 0, "a2": 0, "a3": 0, "a4": 0}},
			want:    []string{"a1 handoff b", "a2 handoff b"}},
		{name: "a lone worker: nothing to balance",
			leases:  held("a", "a", 5),
			workers: []string{"a"},
			want:    nil},
		{name: "no workers: nothing assigned",
			leases: held("", "u", 2),
			want:   nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leases, obs := assignInput(tc.leases)
			moved := map[string]time.Time{}
			for key, ago := range tc.moved {
				moved[key] = fakeNow.Add(-ago)
			}
			cfg := tc.cfg
			cfg.FailoverTime = failover
			got := moveStrings(Assign(leases, obs, workerLoads(tc.workers, tc.reports), moved, fakeNow, cfg))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("moves %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAssignConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   AssignConfig
		want AssignConfig
	}{
		{name: "zero value", in: AssignConfig{},
			want: AssignConfig{FailoverTime: 10 * time.Second, MaxMovesPerRound: 2, Tolerance: 1.2, Cooldown: 20 * time.Second}},
		{name: "cooldown follows the failover time", in: AssignConfig{FailoverTime: 3 * time.Second},
			want: AssignConfig{FailoverTime: 3 * time.Second, MaxMovesPerRound: 2, Tolerance: 1.2, Cooldown: 6 * time.Second}},
		{name: "a tolerance below 1 takes the default", in: AssignConfig{Tolerance: 0.5},
			want: AssignConfig{FailoverTime: 10 * time.Second, MaxMovesPerRound: 2, Tolerance: 1.2, Cooldown: 20 * time.Second}},
		{name: "set fields are kept",
			in:   AssignConfig{FailoverTime: time.Second, MaxLeasesPerWorker: 7, MaxMovesPerRound: 5, Tolerance: 1.5, Cooldown: time.Minute},
			want: AssignConfig{FailoverTime: time.Second, MaxLeasesPerWorker: 7, MaxMovesPerRound: 5, Tolerance: 1.5, Cooldown: time.Minute}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.WithDefaults(); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestAssignIsIndependentOfInputOrder checks that the scan's and the workers'
// order change nothing, and that Assign modifies none of its arguments.
func TestAssignIsIndependentOfInputOrder(t *testing.T) {
	specs := slices.Concat(held("a", "a", 5), held("", "u", 3), held("b", "b", 1))
	leases, obs := assignInput(specs)
	reports := map[string]map[string]float64{"a": {"a1": 7, "a2": 3, "a3": 11, "a4": 5, "a5": 9}, "b": {"b1": 4}}
	moved := map[string]time.Time{"a3": fakeNow.Add(-time.Second)}
	cfg := AssignConfig{FailoverTime: failover}
	// Before the takes: a 35 records/s, b 4, c 0; u1..u3 count as the mean, 6.5.
	// After them: a 35, b 10.5, c 13; mean 19.5, so a is overloaded (above 23.4).
	// a3 (11) is cooling down; a5 (9) to b leaves a 26, b 19.5; a4 (5) to c
	// leaves a 21, c 18.
	want := []string{"u1 take c", "u2 take b", "u3 take c", "a5 handoff b", "a4 handoff c"}

	got := moveStrings(Assign(leases, obs, workerLoads([]string{"a", "b", "c"}, reports), moved, fakeNow, cfg))
	if !slices.Equal(got, want) {
		t.Fatalf("moves %q, want %q", got, want)
	}
	reversedLeases := slices.Clone(leases)
	slices.Reverse(reversedLeases)
	got = moveStrings(Assign(reversedLeases, obs, workerLoads([]string{"c", "b", "a"}, reports), moved, fakeNow, cfg))
	if !slices.Equal(got, want) {
		t.Fatalf("reversed input: moves %q, want %q", got, want)
	}
	wantLeases, _ := assignInput(specs)
	if !slices.EqualFunc(leases, wantLeases, func(a, b Lease) bool { return a.Key == b.Key && a.Owner == b.Owner && a.Counter == b.Counter }) {
		t.Fatalf("Assign modified the leases: %+v", leases)
	}
	if len(moved) != 1 || len(obs) != len(specs) {
		t.Fatalf("Assign modified moved (%v) or obs (%d entries)", moved, len(obs))
	}
}

// assignSim is a fleet seen by the leader, round after round: the moves of
// each round are applied to the leases (handoffs complete at once), the
// owners renew their leases and report the true load of each shard they hold
// (load; a shard missing from it is never reported), and the clock advances
// past Cooldown.
type assignSim struct {
	leases  []Lease
	load    map[string]float64 // shard → records/s
	workers []string
	cfg     AssignConfig
	obs     map[string]Observation
	moved   map[string]time.Time
	left    map[string][]string // shard → the workers it was handed off from
	now     time.Time
}

func newAssignSim(owners map[string]string, load map[string]float64, workers []string, cfg AssignConfig) *assignSim {
	s := &assignSim{load: load, workers: workers, cfg: cfg.WithDefaults(), obs: map[string]Observation{},
		moved: map[string]time.Time{}, left: map[string][]string{}, now: fakeNow}
	for _, key := range slices.Sorted(maps.Keys(owners)) {
		s.leases = append(s.leases, Lease{Key: key, Owner: owners[key], Counter: 1, Checkpoint: TrimHorizon})
	}
	return s
}

// round runs one Assign round and applies its moves; it reports a lease
// moved twice in the round, or handed off to its owner or back to a worker it left.
func (s *assignSim) round(t *testing.T) []Move {
	t.Helper()
	s.obs = Observe(s.obs, s.leases, s.now)
	moves := Assign(s.leases, s.obs, s.reports(), s.moved, s.now, s.cfg)
	seen := map[string]bool{}
	for _, m := range moves {
		if seen[m.Lease.Key] {
			t.Errorf("%v: %s moved twice in one round: %q", s.now.Sub(fakeNow), m.Lease.Key, moveStrings(moves))
		}
		seen[m.Lease.Key] = true
		i := slices.IndexFunc(s.leases, func(l Lease) bool { return l.Key == m.Lease.Key })
		l := &s.leases[i]
		if m.Handoff && (m.To == l.Owner || slices.Contains(s.left[l.Key], m.To)) {
			t.Errorf("%v: %s handed off from %s back to %s (it left %v)", s.now.Sub(fakeNow), l.Key, l.Owner, m.To, s.left[l.Key])
		}
		if m.Handoff {
			s.left[l.Key] = append(s.left[l.Key], l.Owner)
		}
		l.Owner, l.Counter = m.To, l.Counter+1
		s.moved[l.Key] = s.now
	}
	s.renew()
	s.now = s.now.Add(s.cfg.Cooldown + time.Second)
	return moves
}

// renew bumps the counter of every lease a live worker holds.
func (s *assignSim) renew() {
	for i := range s.leases {
		if slices.Contains(s.workers, s.leases[i].Owner) {
			s.leases[i].Counter++
		}
	}
}

// reports returns what each live worker reports: its shards' true loads.
func (s *assignSim) reports() []WorkerLoad {
	reports := map[string]map[string]float64{}
	for _, l := range s.leases {
		if x, ok := s.load[l.Key]; ok {
			if reports[l.Owner] == nil {
				reports[l.Owner] = map[string]float64{}
			}
			reports[l.Owner][l.Key] = x
		}
	}
	return workerLoads(s.workers, reports)
}

// holding returns worker → its leases' keys, sorted.
func (s *assignSim) holding() map[string][]string {
	h := map[string][]string{}
	for _, l := range s.leases {
		h[l.Owner] = append(h[l.Owner], l.Key)
	}
	return h
}

// runUntilStill runs rounds until one makes no move (at most maxRounds) and
// returns the number of rounds that moved, and the takes and handoffs made.
func (s *assignSim) runUntilStill(t *testing.T, maxRounds int) (rounds, takes, handoffs int) {
	t.Helper()
	for range maxRounds {
		moves := s.round(t)
		if len(moves) == 0 {
			return rounds, takes, handoffs
		}
		rounds++
		for _, m := range moves {
			if m.Handoff {
				handoffs++
			} else {
				takes++
			}
		}
		if n := handoffCount(moves); n > s.cfg.MaxMovesPerRound {
			t.Errorf("round %d: %d handoffs, above MaxMovesPerRound %d: %q", rounds, n, s.cfg.MaxMovesPerRound, moveStrings(moves))
		}
	}
	t.Fatalf("still moving after %d rounds: %v", maxRounds, s.holding())
	return
}

func handoffCount(moves []Move) int {
	n := 0
	for _, m := range moves {
		if m.Handoff {
			n++
		}
	}
	return n
}

func ownedBy(owner string, keys ...string) map[string]string {
	m := map[string]string{}
	for _, k := range keys {
		m[k] = owner
	}
	return m
}

func shardKeys(n int) []string {
	var k []string
	for i := range n {
		k = append(k, fmt.Sprintf("s%02d", i))
	}
	return k
}

// TestAssignCountBalanceConverges: with no load reported, 16 leases on one of
// three workers end 6/5/5, two handoffs a round.
func TestAssignCountBalanceConverges(t *testing.T) {
	tests := []struct {
		name         string
		owner        string // of all 16 leases at first
		wantCounts   map[string]int
		wantRounds   int
		wantTakes    int
		wantHandoffs int
	}{
		{name: "all on one worker", owner: "w0", wantCounts: map[string]int{"w0": 6, "w1": 5, "w2": 5},
			wantRounds: 5, wantHandoffs: 10},
		{name: "all unowned", owner: "", wantCounts: map[string]int{"w0": 6, "w1": 5, "w2": 5},
			wantRounds: 1, wantTakes: 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newAssignSim(ownedBy(tc.owner, shardKeys(16)...), nil, []string{"w0", "w1", "w2"}, AssignConfig{FailoverTime: failover})
			rounds, takes, handoffs := s.runUntilStill(t, 50)
			counts := map[string]int{}
			for w, keys := range s.holding() {
				counts[w] = len(keys)
			}
			if !maps.Equal(counts, tc.wantCounts) {
				t.Errorf("counts %v, want %v", counts, tc.wantCounts)
			}
			if rounds != tc.wantRounds || takes != tc.wantTakes || handoffs != tc.wantHandoffs {
				t.Errorf("%d rounds moved, %d takes, %d handoffs; want %d, %d, %d", rounds, takes, handoffs, tc.wantRounds, tc.wantTakes, tc.wantHandoffs)
			}
		})
	}
}

// TestAssignLoadBalanceConverges: 8 shards, s00 at ten times the others'
// 10 records/s, on 4 workers. The fleet settles with s00 alone on a worker and
// the others within Tolerance of the mean, in a few handoffs, none back.
func TestAssignLoadBalanceConverges(t *testing.T) {
	load := map[string]float64{"s00": 100, "s01": 10, "s02": 10, "s03": 10, "s04": 10, "s05": 10, "s06": 10, "s07": 10}
	workers := []string{"w0", "w1", "w2", "w3"}
	tests := []struct {
		name         string
		owner        string // of all 8 leases at first
		want         map[string][]string
		wantTakes    int
		wantHandoffs int
	}{
		// w0 (170) gives a 10 to the least loaded each time, never s00
		// (it would flip), until it holds s00 alone: 7 handoffs.
		{name: "all on one worker", owner: "w0", wantHandoffs: 7,
			want: map[string][]string{"w0": {"s00"}, "w1": {"s01", "s04", "s07"}, "w2": {"s02", "s05"}, "w3": {"s03", "s06"}}},
		// The first round spreads by count (nothing reported yet): w0 gets
		// s00 and s04 (110); then s04 goes to w1.
		{name: "all unowned", owner: "", wantTakes: 8, wantHandoffs: 1,
			want: map[string][]string{"w0": {"s00"}, "w1": {"s01", "s04", "s05"}, "w2": {"s02", "s06"}, "w3": {"s03", "s07"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newAssignSim(ownedBy(tc.owner, shardKeys(8)...), load, workers, AssignConfig{FailoverTime: failover})
			_, takes, handoffs := s.runUntilStill(t, 50)
			got := s.holding()
			if !maps.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("holding %v, want %v", got, tc.want)
			}
			if takes != tc.wantTakes || handoffs != tc.wantHandoffs || handoffs > 8 {
				t.Errorf("%d takes, %d handoffs; want %d, %d (at most 8 handoffs)", takes, handoffs, tc.wantTakes, tc.wantHandoffs)
			}
			checkLoadSpread(t, got, load, 1.2)
		})
	}
}

// checkLoadSpread fails unless every worker is within tolerance × the mean
// load, a worker holding one shard alone excepted.
func checkLoadSpread(t *testing.T, holding map[string][]string, load map[string]float64, tolerance float64) {
	t.Helper()
	total, perWorker := 0.0, map[string]float64{}
	for w, keys := range holding {
		for _, k := range keys {
			perWorker[w] += load[k]
			total += load[k]
		}
	}
	mean := total / float64(len(perWorker))
	for w, x := range perWorker {
		if x > tolerance*mean && len(holding[w]) > 1 {
			t.Errorf("%s at %.1f records/s, above %.1f × mean %.1f, holding %v", w, x, tolerance, mean, holding[w])
		}
	}
}

// TestAssignRandomFleetsConverge: random fleets (seeded, so deterministic) —
// leases unowned, held, or held by a worker gone and expired, loads reported
// or not, some hot — settle within 200 rounds, never more than
// MaxMovesPerRound handoffs a round, never a lease handed back; after the
// first round every lease is held by a live worker; by count the workers end
// within one lease.
func TestAssignRandomFleetsConverge(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			s := randomFleet(rng, seed%4 == 3)
			s.round(t)
			for _, l := range s.leases {
				if !slices.Contains(s.workers, l.Owner) {
					t.Fatalf("after the first round %s is held by %q, not a live worker of %v", l.Key, l.Owner, s.workers)
				}
			}
			s.runUntilStill(t, 200)
			if len(s.load) == 0 {
				checkCountSpread(t, s.holding(), s.workers)
			}
		})
	}
}

// randomFleet returns 2..8 workers and 1..60 leases, each unowned, held by a
// worker, or held by "gone" and expired; with loads unless byCount: most
// 1..100 records/s, some hot (200..1000), some never reported.
func randomFleet(rng *rand.Rand, byCount bool) *assignSim {
	workers := shardKeys(2 + rng.IntN(7))
	for i := range workers {
		workers[i] = "w" + strings.TrimPrefix(workers[i], "s")
	}
	owners, load := map[string]string{}, map[string]float64{}
	for _, key := range shardKeys(1 + rng.IntN(60)) {
		switch r := rng.IntN(10); {
		case r < 2:
			owners[key] = ""
		case r < 4:
			owners[key] = "gone"
		default:
			owners[key] = workers[rng.IntN(len(workers))]
		}
		switch r := rng.IntN(10); {
		case byCount || r == 0:
		case r == 1:
			load[key] = 200 + 800*rng.Float64()
		default:
			load[key] = 1 + 99*rng.Float64()
		}
	}
	cfg := AssignConfig{FailoverTime: failover, MaxMovesPerRound: 1 + rng.IntN(3)}
	s := newAssignSim(owners, load, workers, cfg)
	for _, l := range s.leases {
		if l.Owner == "gone" {
			s.obs[l.Key] = Observation{Counter: l.Counter, SeenAt: fakeNow.Add(-time.Hour)}
		}
	}
	return s
}

func checkCountSpread(t *testing.T, holding map[string][]string, workers []string) {
	t.Helper()
	lo, hi := len(holding[workers[0]]), len(holding[workers[0]])
	for _, w := range workers {
		lo, hi = min(lo, len(holding[w])), max(hi, len(holding[w]))
	}
	if hi-lo > 1 {
		t.Errorf("lease counts from %d to %d: %v", lo, hi, holding)
	}
}

// BenchmarkAssign measures one leader round at scale: 1,000 leases on 50
// workers, all reporting load, a few hot shards, 20 leases unowned.
func BenchmarkAssign(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	workers := shardKeys(50)
	owners, load := map[string]string{}, map[string]float64{}
	for i, key := range shardKeys(1000) {
		owners[key] = workers[rng.IntN(len(workers))]
		if i%50 == 0 {
			owners[key] = ""
		}
		load[key] = 1 + 99*rng.Float64()
		if i%100 == 7 {
			load[key] *= 10
		}
	}
	s := newAssignSim(owners, load, workers, AssignConfig{FailoverTime: failover})
	s.obs = Observe(nil, s.leases, s.now)
	reports := s.reports()
	for b.Loop() {
		Assign(s.leases, s.obs, reports, s.moved, s.now, s.cfg)
	}
}
