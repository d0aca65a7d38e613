package lease

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Observation is what one worker knows about a lease's liveness: the
// leaseCounter it last saw and the time, by its own clock, at which it first
// saw that counter value. A zero SeenAt means the lease has never been seen
// renewed (it was unowned when first seen).
type Observation struct {
	Counter int64
	SeenAt  time.Time
}

// Observe folds a scan taken at now into the previous observations and returns
// the new ones (prev is not modified). A lease whose counter changed since the
// previous scan is stamped now; an unchanged one keeps its stamp; a lease seen
// for the first time is stamped now if it has an owner (assume it was just
// renewed) and zero if not (never renewed). Leases missing from the scan are
// dropped. This is the only input to expiry: wall clocks are never compared.
func Observe(prev map[string]Observation, leases []Lease, now time.Time) map[string]Observation {
	next := make(map[string]Observation, len(leases))
	for _, l := range leases {
		old, seen := prev[l.Key]
		switch {
		case seen && old.Counter == l.Counter:
			next[l.Key] = old
		case seen || l.Owner != "":
			next[l.Key] = Observation{Counter: l.Counter, SeenAt: now}
		default:
			next[l.Key] = Observation{Counter: l.Counter}
		}
	}
	return next
}

// PlanConfig holds the settings the planner uses.
type PlanConfig struct {
	// FailoverTime is how long a lease's counter may stay unchanged, by the
	// planning worker's clock, before the lease is expired.
	FailoverTime time.Duration
	// MaxLeasesPerWorker caps what one worker takes (0 = no cap).
	MaxLeasesPerWorker int
	// MaxLeasesToStealAtOneTime caps steals per plan (0 = 1).
	MaxLeasesToStealAtOneTime int
	// VeryOldMultiplier: a lease unchanged for this many failover times (or
	// unowned and never seen renewed) is taken first of all, regardless of the
	// balance target (0 = 3, the KCL's value).
	VeryOldMultiplier int
}

// Decision is the outcome of Plan.
type Decision struct {
	// Take lists expired or unowned leases to take with an ordinary take,
	// very old ones first, the rest in random order.
	Take []Lease
	// Steal lists live leases to claim from their owners with a handoff.
	Steal []Lease
	// Target is the number of leases this worker aims to hold.
	Target int
	// Workers is the number of workers counted (live owners plus self).
	Workers int
	// Held is how many live leases the table shows this worker owning.
	Held int
}

// Plan decides which leases worker should take or steal, as the Java KCL's
// lease taker does, from the leases of one scan and the worker's observations
// (see Observe) at now. It is a pure function: all randomness comes from rng.
//
// Leases at SHARD_END need no worker and are ignored. A lease is available
// when it is unowned or its counter has not changed for FailoverTime. Workers
// are the owners of live leases plus worker itself; the target is
// ceil(leases/workers), capped by MaxLeasesPerWorker. Very old leases are
// taken first regardless of the target (within the cap); then available
// leases in random order up to the target; only when nothing is available,
// leases are stolen from the most-loaded worker: up to
// min(needed, MaxLeasesToStealAtOneTime) if it holds more than the target,
// one if it holds exactly the target and worker needs more than one. Leases
// already in a handoff are never stolen.
func Plan(worker string, leases []Lease, obs map[string]Observation, now time.Time, cfg PlanConfig, rng *rand.Rand) Decision {
	maxPer := cfg.MaxLeasesPerWorker
	if maxPer <= 0 {
		maxPer = math.MaxInt
	}
	maxSteal := cfg.MaxLeasesToStealAtOneTime
	if maxSteal <= 0 {
		maxSteal = 1
	}
	veryOldMul := cfg.VeryOldMultiplier
	if veryOldMul <= 0 {
		veryOldMul = 3
	}
	veryOldAge := time.Duration(veryOldMul) * cfg.FailoverTime

	var available, veryOld []Lease
	counts := map[string]int{worker: 0}
	byOwner := map[string][]Lease{}
	total := 0
	for _, l := range leases {
		if l.Checkpoint.IsShardEnd() {
			continue
		}
		total++
		o, seen := obs[l.Key]
		unknown := !seen || o.Counter != l.Counter // not observed at this counter: treat as just renewed
		var age time.Duration
		if !unknown {
			if o.SeenAt.IsZero() {
				age = math.MaxInt64
			} else {
				age = now.Sub(o.SeenAt)
			}
		}
		switch {
		case l.Owner == "" || age > cfg.FailoverTime:
			if age > veryOldAge {
				veryOld = append(veryOld, l)
			} else {
				available = append(available, l)
			}
		default:
			counts[l.Owner]++
			byOwner[l.Owner] = append(byOwner[l.Owner], l)
		}
	}
	d := Decision{Workers: len(counts), Held: counts[worker]}
	if total == 0 {
		return d
	}
	target := 1
	if d.Workers < total {
		target = (total + d.Workers - 1) / d.Workers
	}
	target = min(target, maxPer)
	d.Target = target
	mine := counts[worker]

	// Very old leases first of all, regardless of the target.
	if len(veryOld) > 0 {
		shuffle(rng, veryOld)
		n := min(len(veryOld), max(0, maxPer-mine))
		d.Take = append(d.Take, veryOld[:n]...)
		mine += n
	}
	needed := target - mine
	if needed <= 0 {
		return d
	}
	if len(available) > 0 || len(d.Take) > 0 {
		shuffle(rng, available)
		n := min(len(available), needed)
		d.Take = append(d.Take, available[:n]...)
		return d
	}

	// Nothing available: consider stealing from the most-loaded worker.
	var most string
	mostN := -1
	owners := make([]string, 0, len(counts))
	for w := range counts {
		owners = append(owners, w)
	}
	slices.Sort(owners) // deterministic tie-break under a fixed rng
	shuffle(rng, owners)
	for _, w := range owners {
		if w != worker && counts[w] > mostN {
			most, mostN = w, counts[w]
		}
	}
	if most == "" {
		return d
	}
	var steal int
	switch {
	case mostN > target:
		steal = min(needed, maxSteal)
	case mostN == target && needed > 1:
		steal = 1
	}
	if steal == 0 {
		return d
	}
	var candidates []Lease
	for _, l := range byOwner[most] {
		if !l.InHandoff() {
			candidates = append(candidates, l)
		}
	}
	shuffle(rng, candidates)
	d.Steal = candidates[:min(steal, len(candidates))]
	return d
}

func shuffle[T any](rng *rand.Rand, s []T) {
	rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}
