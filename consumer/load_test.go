package consumer

import (
	"testing"
	"time"
)

// The meter reports per held shard what was read per second since the previous report, and the cores
// the process used; a released shard is no longer reported, and each report starts counting again.
func TestLoadMeterRates(t *testing.T) {
	now, cpu := time.Unix(1000, 0), time.Duration(0)
	m := &loadMeter{shards: map[string]*readCount{}, now: func() time.Time { return now }, cpu: func() time.Duration { return cpu }}
	m.last, m.lastCPU = now, cpu
	m.hold("a")
	m.hold("b")
	m.read("a", 100, 10_000)
	m.read("b", 10, 500)
	m.read("c", 7, 7) // not held: not counted
	now, cpu = now.Add(2*time.Second), 3*time.Second
	l := m.load()
	if l.CPU != 1.5 {
		t.Errorf("CPU = %v cores, want 1.5 (3s of CPU in 2s)", l.CPU)
	}
	if got := l.Shards["a"]; got.RecordsPerSec != 50 || got.BytesPerSec != 5000 {
		t.Errorf("shard a: %+v, want 50 records/s and 5000 bytes/s", got)
	}
	if got := l.Shards["b"]; got.RecordsPerSec != 5 || got.BytesPerSec != 250 {
		t.Errorf("shard b: %+v, want 5 records/s and 250 bytes/s", got)
	}
	if _, ok := l.Shards["c"]; ok || len(l.Shards) != 2 {
		t.Errorf("shards %v, want a and b only", l.Shards)
	}
	m.release("b")
	now = now.Add(time.Second)
	l = m.load()
	if got := l.Shards["a"]; len(l.Shards) != 1 || got.RecordsPerSec != 0 {
		t.Errorf("after release and no reads: %v, want only a at 0 records/s", l.Shards)
	}
}
