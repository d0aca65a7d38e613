package bench

import (
	"fmt"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// A drain's CPU accounting: this process's CPU time (getrusage) and each server's around the bare loop
// and around the workers' phase. The bare loop and the workers run in this process, one phase after the
// other, so each phase's CPU is the process's in it. A garbage collection before each mark keeps an
// earlier step's garbage out of the phase; one before each reading charges the phase its own.

// cpuMark starts a phase's CPU accounting.
func (r *drainRun) cpuMark() (cpuSample, error) {
	runtime.GC()
	return sampleCPU(r.cfg.Servers)
}

// cpuSince is the CPU time used since mark.
func (r *drainRun) cpuSince(mark cpuSample) (cpuSample, error) {
	runtime.GC()
	now, err := sampleCPU(r.cfg.Servers)
	if err != nil {
		return cpuSample{}, err
	}
	return now.since(mark), nil
}

// startProfile starts the CPU profile of the workers' phase when one is asked for; the returned stop
// may be called again.
func (r *drainRun) startProfile() (stop func(), err error) {
	if r.cfg.CPUProfile == nil {
		return func() {}, nil
	}
	if err := pprof.StartCPUProfile(r.cfg.CPUProfile); err != nil {
		return nil, fmt.Errorf("drain: CPU profile: %w", err)
	}
	var once sync.Once
	return func() { once.Do(pprof.StopCPUProfile) }, nil
}

// bareCPU records the bare loop's CPU.
func (r *drainRun) bareCPU(used cpuSample) {
	r.res.BareCPUSeconds, r.res.BareCPUPerRecord = used.self.Seconds(), r.perRecord(used.self)
	r.res.Servers = make([]ServerCPU, len(r.cfg.Servers))
	for i, s := range r.cfg.Servers {
		r.res.Servers[i] = ServerCPU{Name: s.Name, PID: s.PID, BareCPUSeconds: used.servers[i].Seconds()}
	}
	r.cfg.Progress(fmt.Sprintf("bare GetRecords loop: %.2fs of CPU in this process (%.1f µs per record)%s",
		r.res.BareCPUSeconds, r.res.BareCPUPerRecord/1e3, serversLine(r.cfg.Servers, used.servers)))
}

// workersCPU records the workers' CPU.
func (r *drainRun) workersCPU(used cpuSample) {
	r.res.WorkersCPUSeconds, r.res.WorkersCPUPerRecord = used.self.Seconds(), r.perRecord(used.self)
	if r.res.BareCPUPerRecord > 0 {
		r.res.CPURatio = r.res.WorkersCPUPerRecord / r.res.BareCPUPerRecord
	}
	for i := range r.res.Servers {
		r.res.Servers[i].WorkersCPUSeconds = used.servers[i].Seconds()
		r.res.Servers[i].WorkersCPUPerRecord = r.perRecord(used.servers[i])
	}
	r.cfg.Progress(fmt.Sprintf("%d worker(s), %s processor: %.2fs of CPU in this process (%.1f µs per record, %.2f× the bare loop's)%s",
		r.cfg.Workers, r.cfg.Processor, r.res.WorkersCPUSeconds, r.res.WorkersCPUPerRecord/1e3, r.res.CPURatio,
		serversLine(r.cfg.Servers, used.servers)))
}

// perRecord is d in nanoseconds per record drained.
func (r *drainRun) perRecord(d time.Duration) float64 {
	return float64(d.Nanoseconds()) / float64(r.cfg.Records)
}

// serversLine is "; servers: name 1.23s, …", or "" without servers.
func serversLine(servers []Server, used []time.Duration) string {
	if len(servers) == 0 {
		return ""
	}
	parts := make([]string, len(servers))
	for i, s := range servers {
		parts[i] = fmt.Sprintf("%s %.2fs", s.Name, used[i].Seconds())
	}
	return "; servers: " + strings.Join(parts, ", ")
}
