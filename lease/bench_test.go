package lease

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkFleetDefaults measures, with the KCL's default timing (failover
// 10s, renew every 3.3s, take every 20s) on dynalite, three workers on 16
// leases: DynamoDB writes per second per held lease in steady state, the time
// from a clean shutdown to all of that worker's leases being processed
// elsewhere, and the time from a crash (its calls hang) to all of its leases
// being processed elsewhere. It takes about two minutes; run it with
//
//	go test ./lease -run '^$' -bench FleetDefaults -benchtime 1x
func BenchmarkFleetDefaults(b *testing.B) {
	for range b.N {
		f := newFleet(b, 16)
		defaults := func(c *Config) { c.FailoverTime, c.HandoffTimeout = 0, 0 }
		ws := []*worker{f.start("worker-0", defaults), f.start("worker-1", defaults), f.start("worker-2", defaults)}
		took := f.waitFor("balance", 3*time.Minute, func(_ []Lease, hold map[string][]string) bool {
			return balanced(hold, f.ids(ws...), 16)
		})
		b.Logf("balanced in %v: %v", took.Round(time.Millisecond), f.holding())

		// Steady state.
		before := 0.0
		for _, w := range ws {
			before += w.writes(b)
		}
		window := 4 * ws[0].c.Config().RenewInterval * 2
		start := time.Now()
		f.waitFor("steady window", 2*window, func([]Lease, map[string][]string) bool { return time.Since(start) >= window })
		elapsed := time.Since(start)
		after := 0.0
		for _, w := range ws {
			after += w.writes(b)
		}
		perLease := (after - before) / elapsed.Seconds() / 16
		b.ReportMetric(perLease, "writes/s/lease")

		// Clean shutdown of worker-2.
		leaving := ws[2].c.Holding()
		stopStart := time.Now()
		f.stop(ws[2])
		f.waitFor("clean handover", time.Minute, func(_ []Lease, hold map[string][]string) bool {
			for _, k := range leaving {
				if !slices.Contains(hold[ws[0].id], k) && !slices.Contains(hold[ws[1].id], k) {
					return false
				}
			}
			return true
		})
		clean := time.Since(stopStart)
		b.ReportMetric(clean.Seconds(), "s-clean-handover")

		// Crash of worker-1.
		crashed := ws[1].c.Holding()
		crashStart := time.Now()
		ws[1].db.freeze()
		f.waitFor("re-own after crash", 2*time.Minute, func(_ []Lease, hold map[string][]string) bool {
			for _, k := range crashed {
				if !slices.Contains(hold[ws[0].id], k) {
					return false
				}
			}
			return true
		})
		crash := time.Since(crashStart)
		b.ReportMetric(crash.Seconds(), "s-crash-to-reowned")
		b.Logf("steady %.3f writes/s per held lease over %v; clean shutdown → %d leases processed elsewhere in %v; crash → %d leases re-owned in %v",
			perLease, elapsed.Round(time.Millisecond), len(leaving), clean.Round(time.Millisecond), len(crashed), crash.Round(time.Millisecond))
	}
}
