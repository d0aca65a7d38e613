package consumer

import (
	"math"
	"testing"
	"time"
)

// The meter reports per held shard what was read per second, and the cores the process used; a released
// shard is no longer reported.
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
	if l = m.load(); len(l.Shards) != 1 {
		t.Errorf("after the release of b: %v, want only a", l.Shards)
	}
}

// A shard taken during a report interval is measured from when it was taken, not over the whole interval
// (which made a just-taken shard look idle and its new owner light, so the leader moved a second lease to
// it); it is not reported until a whole window has passed.
func TestLoadMeterMeasuresAShardFromItsTake(t *testing.T) {
	now := time.Unix(1000, 0)
	m := &loadMeter{shards: map[string]*readCount{}, now: func() time.Time { return now }, cpu: func() time.Duration { return 0 }}
	m.last = now
	now = now.Add(1500 * time.Millisecond)
	m.hold("d") // 0.5 s before the next report
	m.read("d", 30, 300)
	now = now.Add(500 * time.Millisecond)
	if l := m.load(); len(l.Shards) != 0 {
		t.Fatalf("a shard held for 0.5 s: reported %v, want not yet reported", l.Shards)
	}
	m.read("d", 30, 300)
	now = now.Add(500 * time.Millisecond)
	got := m.load().Shards["d"]
	if got.RecordsPerSec != 60 || got.BytesPerSec != 600 {
		t.Errorf("shard d: %+v, want 60 records/s (60 records in the 1 s it was held)", got)
	}
}

// Later windows are blended into the rate with the weight 1 - e^(-window/4s); a report before a window
// has lasted a second repeats the last rate.
func TestLoadMeterSmoothsTheRate(t *testing.T) {
	now := time.Unix(1000, 0)
	m := &loadMeter{shards: map[string]*readCount{}, now: func() time.Time { return now }, cpu: func() time.Duration { return 0 }}
	m.last = now
	m.hold("a")
	m.read("a", 200, 0)
	now = now.Add(2 * time.Second)
	if got := m.load().Shards["a"].RecordsPerSec; got != 100 {
		t.Fatalf("first window: %v records/s, want 100", got)
	}
	now = now.Add(2 * time.Second) // nothing read: 0 records/s in this window
	want := 100 * math.Exp(-0.5)
	if got := m.load().Shards["a"].RecordsPerSec; math.Abs(got-want) > 1e-9 {
		t.Errorf("after an idle 2 s window: %v records/s, want 100·e^-0.5 = %v", got, want)
	}
	m.read("a", 1000, 0)
	now = now.Add(300 * time.Millisecond)
	if got := m.load().Shards["a"].RecordsPerSec; math.Abs(got-want) > 1e-9 {
		t.Errorf("a report 0.3 s into a window: %v records/s, want the last rate %v", got, want)
	}
}
