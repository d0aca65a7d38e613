package actors

import (
	rtmetrics "runtime/metrics"
	"testing"
)

// runtimeSample is a reading of the Go runtime's own accounting, taken before and after a benchmark run,
// so that the run reports where its CPU went beyond the total: the garbage collector's share, its cycles
// and how long runnable goroutines waited for a CPU.
type runtimeSample struct {
	gcCPU, userCPU float64 // seconds: /cpu/classes/gc/total and /cpu/classes/user
	cycles         uint64  // /gc/cycles/total
	sched          *rtmetrics.Float64Histogram
}

var runtimeMetrics = []string{"/cpu/classes/gc/total:cpu-seconds", "/cpu/classes/user:cpu-seconds",
	"/gc/cycles/total:gc-cycles", "/sched/latencies:seconds"}

func readRuntime() runtimeSample {
	s := make([]rtmetrics.Sample, len(runtimeMetrics))
	for i, name := range runtimeMetrics {
		s[i].Name = name
	}
	rtmetrics.Read(s)
	return runtimeSample{gcCPU: s[0].Value.Float64(), userCPU: s[1].Value.Float64(), cycles: s[2].Value.Uint64(),
		sched: s[3].Value.Float64Histogram()}
}

// report adds, for the interval since before: gc-cpu-% (the GC's share of the CPU the runtime accounts to
// Go code and the GC; the runtime's own estimate), gc-cycles, and sched-p50-us and sched-p99-us (the time
// goroutines spent runnable before they ran).
func (after runtimeSample) report(b *testing.B, before runtimeSample) {
	gc, user := after.gcCPU-before.gcCPU, after.userCPU-before.userCPU
	if gc+user > 0 {
		b.ReportMetric(100*gc/(gc+user), "gc-cpu-%")
	}
	b.ReportMetric(float64(after.cycles-before.cycles), "gc-cycles")
	h, h0 := after.sched, before.sched
	total := uint64(0)
	counts := make([]uint64, len(h.Counts))
	for i := range h.Counts {
		counts[i] = h.Counts[i] - h0.Counts[i]
		total += counts[i]
	}
	if total == 0 {
		return
	}
	quantile := func(q float64) float64 {
		want, seen := uint64(q*float64(total)), uint64(0)
		for i, c := range counts {
			if seen += c; seen > want {
				return h.Buckets[i+1] // the bucket's upper bound
			}
		}
		return h.Buckets[len(h.Buckets)-1]
	}
	b.ReportMetric(quantile(0.5)*1e6, "sched-p50-us")
	b.ReportMetric(quantile(0.99)*1e6, "sched-p99-us")
}
