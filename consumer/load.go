package consumer

import (
	"math"
	"sync"
	"syscall"
	"time"

	"github.com/clickfleet/clickfleet/lease"
)

// loadMeter measures, for the lease leader, what the worker reads from each shard it holds and the CPU its
// process used: the load the leader balances by (lease.Config.Load). A shard's rate is measured over
// windows of at least minRateWindow from when its holding period began (a shard held for part of a report
// interval is not measured over the whole of it: that would make a just-taken shard look idle and its new
// owner light), and smoothed with a time constant of rateSmoothing, so one report's noise — reads come in
// polls or pushes, not evenly — does not move leases. Until its first window ends a shard is not reported:
// the leader then weighs it as the previous owner reported it, or as the mean shard.
type loadMeter struct {
	mu      sync.Mutex
	shards  map[string]*readCount // held shards, with what was read in the current window
	last    time.Time
	lastCPU time.Duration
	now     func() time.Time
	cpu     func() time.Duration
}

// Rate measurement windows and smoothing (loadMeter).
const (
	minRateWindow = time.Second
	rateSmoothing = 4 * time.Second
)

type readCount struct {
	records, bytes int64
	start          time.Time // of the current window: the holding period's start, then the last measurement
	known          bool      // rps and bps hold a measurement
	rps, bps       float64   // smoothed rates
}

func newLoadMeter() *loadMeter {
	m := &loadMeter{shards: map[string]*readCount{}, now: time.Now, cpu: processCPU}
	m.last, m.lastCPU = m.now(), m.cpu()
	return m
}

// hold starts counting a shard (a holding period began); release stops (it ended).
func (m *loadMeter) hold(shard string) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shards[shard] == nil {
		m.shards[shard] = &readCount{start: now}
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

// load returns the CPU since the previous call and each held shard's smoothed rates, measuring the shards
// whose window has lasted minRateWindow.
func (m *loadMeter) load() lease.Load {
	now, cpu := m.now(), m.cpu()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := lease.Load{Shards: make(map[string]lease.ShardLoad, len(m.shards))}
	if secs := now.Sub(m.last).Seconds(); secs > 0 {
		out.CPU = (cpu - m.lastCPU).Seconds() / secs
	}
	for id, c := range m.shards {
		c.measure(now)
		if c.known {
			out.Shards[id] = lease.ShardLoad{RecordsPerSec: c.rps, BytesPerSec: c.bps}
		}
	}
	m.last, m.lastCPU = now, cpu
	return out
}

// measure ends the shard's window at now if it has lasted minRateWindow: the window's rates are blended
// into the smoothed ones (weight 1 - e^(-window/rateSmoothing); the first window's are taken as they are)
// and a new window starts.
func (c *readCount) measure(now time.Time) {
	window := now.Sub(c.start)
	if window < minRateWindow {
		return
	}
	rps, bps := float64(c.records)/window.Seconds(), float64(c.bytes)/window.Seconds()
	if !c.known {
		c.rps, c.bps, c.known = rps, bps, true
	} else {
		w := 1 - math.Exp(-window.Seconds()/rateSmoothing.Seconds())
		c.rps += w * (rps - c.rps)
		c.bps += w * (bps - c.bps)
	}
	c.records, c.bytes, c.start = 0, 0, now
}

// processCPU is the user and system CPU time the process used so far (0 if the system cannot say).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
