package consumer

import (
	"sync"
	"syscall"
	"time"

	"github.com/clickfleet/clickfleet/lease"
)

// loadMeter measures, between two reports to the lease leader, what the worker read from each shard it
// holds and the CPU its process used: the load the leader balances by (lease.Config.Load).
type loadMeter struct {
	mu      sync.Mutex
	shards  map[string]*readCount // held shards, with what was read since the last report
	last    time.Time
	lastCPU time.Duration
	now     func() time.Time
	cpu     func() time.Duration
}

type readCount struct{ records, bytes int64 }

func newLoadMeter() *loadMeter {
	m := &loadMeter{shards: map[string]*readCount{}, now: time.Now, cpu: processCPU}
	m.last, m.lastCPU = m.now(), m.cpu()
	return m
}

// hold starts counting a shard (a holding period began); release stops (it ended).
func (m *loadMeter) hold(shard string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shards[shard] == nil {
		m.shards[shard] = &readCount{}
	}
}

func (m *loadMeter) release(shard string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.shards, shard)
}

// read counts records and bytes read from a held shard.
func (m *loadMeter) read(shard string, records, bytes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.shards[shard]; c != nil {
		c.records += int64(records)
		c.bytes += int64(bytes)
	}
}

// load returns the rates since the previous call and starts counting again.
func (m *loadMeter) load() lease.Load {
	now, cpu := m.now(), m.cpu()
	m.mu.Lock()
	defer m.mu.Unlock()
	secs := now.Sub(m.last).Seconds()
	out := lease.Load{Shards: make(map[string]lease.ShardLoad, len(m.shards))}
	if secs > 0 {
		out.CPU = (cpu - m.lastCPU).Seconds() / secs
	}
	for id, c := range m.shards {
		var s lease.ShardLoad
		if secs > 0 {
			s = lease.ShardLoad{RecordsPerSec: float64(c.records) / secs, BytesPerSec: float64(c.bytes) / secs}
		}
		out.Shards[id] = s
		*c = readCount{}
	}
	m.last, m.lastCPU = now, cpu
	return out
}

// processCPU is the user and system CPU time the process used so far (0 if the system cannot say).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
