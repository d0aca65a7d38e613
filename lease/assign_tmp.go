package lease

import "time"

// TEMPORARY: replaced by assign.go from the assignment work when merged.

type ShardLoad struct{ RecordsPerSec, BytesPerSec float64 }

type WorkerLoad struct {
	Worker string
	CPU    float64
	Shards map[string]ShardLoad
}

type AssignConfig struct {
	FailoverTime       time.Duration
	MaxLeasesPerWorker int
	MaxMovesPerRound   int
	Tolerance          float64
	Cooldown           time.Duration
}

type Move struct {
	Lease   Lease
	To      string
	Handoff bool
}

func Assign(leases []Lease, obs map[string]Observation, workers []WorkerLoad, moved map[string]time.Time, now time.Time, cfg AssignConfig) []Move {
	var out []Move
	if len(workers) == 0 {
		return nil
	}
	count := map[string]int{}
	for _, l := range leases {
		count[l.Owner]++
	}
	i := 0
	for _, l := range leases {
		if l.Checkpoint.IsShardEnd() {
			continue
		}
		o := obs[l.Key]
		if l.Owner == "" || (!o.SeenAt.IsZero() && now.Sub(o.SeenAt) >= cfg.FailoverTime) {
			out = append(out, Move{Lease: l, To: workers[i%len(workers)].Worker})
			i++
		}
	}
	return out
}

// OwnerIndex TEMPORARY (index work defines it).
const OwnerIndex = "LeaseOwnerToLeaseKeyIndex"

func CoordinatorStateTable(table string) string { return table + "-CoordinatorState" }
func WorkerMetricsTable(table string) string    { return table + "-WorkerMetricStats" }
