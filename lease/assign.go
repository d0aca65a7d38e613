package lease

import (
	"cmp"
	"slices"
	"time"
)

// ShardLoad is what a worker read from one shard, per second.
type ShardLoad struct {
	RecordsPerSec float64 // records read per second; the load Assign balances
	BytesPerSec   float64 // bytes read per second; reported, not used by Assign
}

// WorkerLoad is one live worker as the leader sees it.
type WorkerLoad struct {
	// Worker is the worker id, as written in leaseOwner.
	Worker string
	// CPU is the cores the process used (0: not reported). Reported for
	// operators; Assign does not use it.
	CPU float64
	// Shards is the load per held shard; nil or empty: no load reported.
	Shards map[string]ShardLoad
}

// AssignConfig holds the settings of Assign. The zero value is usable: every
// zero field takes its default (see WithDefaults).
type AssignConfig struct {
	// FailoverTime: a lease whose counter the leader has seen unchanged
	// (Observation) for longer than this is expired. Default: DefaultFailoverTime.
	FailoverTime time.Duration
	// MaxLeasesPerWorker caps the leases a worker is given (taken or moved to
	// it). Default: 0, no cap.
	MaxLeasesPerWorker int
	// MaxMovesPerRound caps the balance moves (handoffs) per round; takes of
	// available leases are not capped. Default: 2.
	MaxMovesPerRound int
	// Tolerance: a worker whose load is above Tolerance × the mean worker load
	// is overloaded. Values below 1 take the default. Default: 1.2.
	Tolerance float64
	// Cooldown: a lease moved or assigned within this is not moved for balance.
	// Default: 2 × FailoverTime.
	Cooldown time.Duration
}

// Defaults of AssignConfig.
const (
	DefaultMaxMovesPerRound = 2
	DefaultTolerance        = 1.2
)

// WithDefaults returns c with every unset field (zero, or a Tolerance below 1)
// set to its default. Assign calls it itself; the leader may call it to learn
// the Cooldown it should keep the moved times for.
func (c AssignConfig) WithDefaults() AssignConfig {
	if c.FailoverTime <= 0 {
		c.FailoverTime = DefaultFailoverTime
	}
	if c.MaxMovesPerRound <= 0 {
		c.MaxMovesPerRound = DefaultMaxMovesPerRound
	}
	if c.Tolerance < 1 {
		c.Tolerance = DefaultTolerance
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 2 * c.FailoverTime
	}
	return c
}

// Move is one assignment the leader writes.
type Move struct {
	Lease   Lease  // as scanned
	To      string // the worker
	Handoff bool   // a live lease moved for balance (steal with checkpointOwner), not a take
}

// Assign returns the round's moves. leases: the scan; obs: the leader's
// observations (Observe); workers: the live workers (not leaving); moved: when
// each lease was last moved or assigned (the caller keeps it; nil is empty);
// now: the leader's clock. It is a pure function of its arguments, modifies
// none of them (so it is safe to call concurrently), and is deterministic
// whatever the order of leases and workers (a worker listed twice counts
// once). It returns the takes first, then the handoffs in the order chosen;
// nil when there is nothing to do. The caller records now in moved for each
// move it writes, and may forget entries older than Cooldown.
//
// Leases at SHARD_END are ignored. A lease is available when it is unowned,
// or its counter has been seen unchanged for longer than FailoverTime (or was
// never seen renewed). A live lease whose owner is not in workers is left
// alone and not counted. Available leases become takes (Handoff false), the
// heaviest first, each to the least loaded worker below MaxLeasesPerWorker
// (ties by lease count, then worker id); leases in a handoff may be taken
// this way when expired, but are never moved for balance.
//
// A worker's load is the records/s of the shards it holds: each shard's as
// reported by its owner (or, when the owner did not report it, by another
// worker), an unreported shard counting as the mean reported shard load.
// When the reported loads sum to zero, every lease weighs one instead, and
// the balance is by count. Then, at most MaxMovesPerRound times: the most
// loaded worker that is overloaded (by load: above Tolerance × mean; by
// count: any) and has a lease it may give, gives the lease that most reduces
// the larger of its and the least loaded worker's loads — the heaviest one
// whose move leaves the receiver not above the giver (no flip, so no back and
// forth). Leases moved or assigned within Cooldown, in a handoff, or of zero
// weight are not moved. So a worker left holding a single shard never gives
// it, however hot; and by count, once nothing is cooling down and no cap
// binds, the workers end within one lease of each other.
func Assign(leases []Lease, obs map[string]Observation, workers []WorkerLoad, moved map[string]time.Time, now time.Time, cfg AssignConfig) []Move {
	cfg = cfg.WithDefaults()
	r := newAssignRound(workers, cfg)
	scope := leasesInScope(leases)
	r.weigh(scope, workers)
	available := r.hold(scope, obs, now)
	moves := r.takeAvailable(available)
	return append(moves, r.balance(moved, now)...)
}

// assignee is one worker's state during a round.
type assignee struct {
	id      string
	load    float64  // sum of the weights of what it holds or is given
	count   int      // leases it holds or is given
	movable []*Lease // live leases balance may move, by key
}

// assignRound is the state of one Assign call.
type assignRound struct {
	cfg     AssignConfig
	workers []*assignee // by id
	byID    map[string]*assignee
	weight  map[string]float64 // lease key → records/s, or 1 by count
	byLoad  bool               // false: balance by count
	mean    float64            // mean worker load
}

func newAssignRound(workers []WorkerLoad, cfg AssignConfig) *assignRound {
	r := &assignRound{cfg: cfg, byID: make(map[string]*assignee, len(workers))}
	for _, w := range workers {
		if _, dup := r.byID[w.Worker]; dup {
			continue
		}
		a := &assignee{id: w.Worker}
		r.byID[w.Worker] = a
		r.workers = append(r.workers, a)
	}
	slices.SortFunc(r.workers, func(a, b *assignee) int { return cmp.Compare(a.id, b.id) })
	return r
}

// leasesInScope returns the leases not at SHARD_END (pointers into leases,
// only ever read), sorted by key, so that everything after (float sums
// included) is independent of the scan's order.
func leasesInScope(leases []Lease) []*Lease {
	scope := make([]*Lease, 0, len(leases))
	for i := range leases {
		if !leases[i].Checkpoint.IsShardEnd() {
			scope = append(scope, &leases[i])
		}
	}
	slices.SortFunc(scope, func(a, b *Lease) int { return cmp.Compare(a.Key, b.Key) })
	return scope
}

// weigh sets each lease's weight: its reported records/s, or the mean
// reported shard load when unreported; or 1 for all when nothing was reported.
func (r *assignRound) weigh(scope []*Lease, workers []WorkerLoad) {
	reported := reportedLoads(scope, workers)
	total := 0.0
	for _, l := range scope {
		total += reported[l.Key] // in key order: a deterministic sum
	}
	r.byLoad = total > 0
	r.weight = make(map[string]float64, len(scope))
	for _, l := range scope {
		r.weight[l.Key] = 1
		if r.byLoad {
			r.weight[l.Key] = total / float64(len(reported))
		}
		if x, ok := reported[l.Key]; ok && r.byLoad {
			r.weight[l.Key] = x
		}
	}
}

// reportedLoads returns the records/s of each lease in scope that some worker
// reported: its owner's figure, else the largest other worker's (a previous
// owner still reporting it).
func reportedLoads(scope []*Lease, workers []WorkerLoad) map[string]float64 {
	owner := make(map[string]string, len(scope))
	for _, l := range scope {
		owner[l.Key] = l.Owner
	}
	byOwner, byOther := map[string]float64{}, map[string]float64{}
	for _, w := range workers {
		for key, s := range w.Shards {
			o, ok := owner[key]
			switch {
			case !ok:
			case o == w.Worker:
				byOwner[key] = s.RecordsPerSec
			default:
				byOther[key] = max(byOther[key], s.RecordsPerSec)
			}
		}
	}
	for key, x := range byOther {
		if _, ok := byOwner[key]; !ok {
			byOwner[key] = x
		}
	}
	return byOwner
}

// hold gives each worker its live leases and returns the available ones.
func (r *assignRound) hold(scope []*Lease, obs map[string]Observation, now time.Time) []*Lease {
	var available []*Lease
	for _, l := range scope {
		if l.Owner == "" || leaseExpired(l, obs, now, r.cfg.FailoverTime) {
			available = append(available, l)
			continue
		}
		a, ok := r.byID[l.Owner]
		if !ok {
			continue // a live lease of a worker not in the round: left alone
		}
		r.add(a, l.Key)
		if !l.InHandoff() {
			a.movable = append(a.movable, l)
		}
	}
	return available
}

// leaseExpired reports whether l's counter was seen unchanged for longer
// than failover (or never seen renewed). A counter other than the observed
// one is a renewal not yet observed: not expired.
func leaseExpired(l *Lease, obs map[string]Observation, now time.Time, failover time.Duration) bool {
	o, seen := obs[l.Key]
	if !seen || o.Counter != l.Counter {
		return false
	}
	return o.SeenAt.IsZero() || now.Sub(o.SeenAt) > failover
}

func (r *assignRound) add(a *assignee, key string) {
	a.load += r.weight[key]
	a.count++
}

// takeAvailable assigns the available leases, heaviest first, each to the
// least loaded worker with room; a lease no worker has room for stays.
func (r *assignRound) takeAvailable(available []*Lease) []Move {
	slices.SortStableFunc(available, func(a, b *Lease) int { return cmp.Compare(r.weight[b.Key], r.weight[a.Key]) })
	var moves []Move
	for _, l := range available {
		to := r.leastLoaded()
		if to == nil {
			break
		}
		r.add(to, l.Key)
		moves = append(moves, Move{Lease: *l, To: to.id})
	}
	return moves
}

// leastLoaded returns the worker with the least load, then the fewest
// leases, then the least id, among those below MaxLeasesPerWorker; nil if none.
func (r *assignRound) leastLoaded() *assignee {
	var best *assignee
	for _, a := range r.workers {
		if r.hasRoom(a) && (best == nil || compareLoad(a, best) < 0) {
			best = a
		}
	}
	return best
}

func (r *assignRound) hasRoom(a *assignee) bool {
	return r.cfg.MaxLeasesPerWorker <= 0 || a.count < r.cfg.MaxLeasesPerWorker
}

// compareLoad orders workers by load, then lease count, then id.
func compareLoad(a, b *assignee) int {
	return cmp.Or(cmp.Compare(a.load, b.load), cmp.Compare(a.count, b.count), cmp.Compare(a.id, b.id))
}

func (r *assignRound) totalLoad() float64 {
	total := 0.0
	for _, a := range r.workers {
		total += a.load
	}
	return total
}

// balance makes up to MaxMovesPerRound handoffs, one at a time, each chosen on
// the loads left by the previous ones.
func (r *assignRound) balance(moved map[string]time.Time, now time.Time) []Move {
	r.mean = r.totalLoad() / float64(max(1, len(r.workers)))
	var moves []Move
	for len(moves) < r.cfg.MaxMovesPerRound {
		from, to, l, ok := r.nextHandoff(moved, now)
		if !ok {
			break
		}
		r.transfer(from, to, l)
		moves = append(moves, Move{Lease: *l, To: to.id, Handoff: true})
	}
	return moves
}

// nextHandoff picks, for the least loaded worker with room, the most loaded
// overloaded worker that has a lease it may give, and that lease.
func (r *assignRound) nextHandoff(moved map[string]time.Time, now time.Time) (from, to *assignee, l *Lease, ok bool) {
	to = r.leastLoaded()
	if to == nil {
		return nil, nil, nil, false
	}
	for _, from := range r.overloaded() { // to itself included: no lease passes the no-flip rule
		if l, ok := r.bestToGive(from, to, moved, now); ok {
			return from, to, l, true
		}
	}
	return nil, nil, nil, false
}

// overloaded returns the overloaded workers, most loaded first (by count:
// every worker; the no-flip rule then asks for a difference of two leases).
func (r *assignRound) overloaded() []*assignee {
	var over []*assignee
	for _, a := range r.workers {
		if !r.byLoad || a.load > r.cfg.Tolerance*r.mean {
			over = append(over, a)
		}
	}
	slices.SortFunc(over, func(a, b *assignee) int { return compareLoad(b, a) })
	return over
}

// bestToGive returns from's heaviest movable lease whose move leaves to not
// above from, skipping zero weights and leases within Cooldown; ties by key.
func (r *assignRound) bestToGive(from, to *assignee, moved map[string]time.Time, now time.Time) (*Lease, bool) {
	var best *Lease
	bestW := 0.0
	for _, l := range from.movable {
		w := r.weight[l.Key]
		if w <= bestW || to.load+w > from.load-w || r.coolingDown(l.Key, moved, now) {
			continue
		}
		best, bestW = l, w
	}
	return best, bestW > 0
}

func (r *assignRound) coolingDown(key string, moved map[string]time.Time, now time.Time) bool {
	t, ok := moved[key]
	return ok && now.Sub(t) < r.cfg.Cooldown
}

// transfer moves l from one worker to another in the round's state.
func (r *assignRound) transfer(from, to *assignee, l *Lease) {
	w := r.weight[l.Key]
	from.load -= w
	from.count--
	to.load += w
	to.count++ // not movable by to this round: l is in a handoff
	from.movable = slices.DeleteFunc(from.movable, func(x *Lease) bool { return x == l })
}
