package faults

import "time"

// bucket is a token bucket: it holds up to burst tokens and refills at rate tokens per second; a new
// bucket is full. A caller checks has before it spends with take, and take may also spend what the bucket
// does not hold (a read's bytes are known only after the read): the level then goes negative, a debt the
// refill repays before has(0) is true again. Not safe for concurrent use.
type bucket struct {
	rate, burst float64
	level       float64
	at          time.Time // when level was last brought up to date
}

func newBucket(rate, burst float64, now time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, level: burst, at: now}
}

// refill brings the level up to date at now (a clock that went back refills nothing).
func (b *bucket) refill(now time.Time) {
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.level = min(b.burst, b.level+dt*b.rate)
		b.at = now
	}
}

// has reports whether the bucket holds at least n tokens at now.
func (b *bucket) has(now time.Time, n float64) bool {
	b.refill(now)
	return b.level >= n
}

// take spends n tokens at now, going into debt when there are fewer.
func (b *bucket) take(now time.Time, n float64) {
	b.refill(now)
	b.level -= n
}

// full reports whether the bucket is back at burst at now: it is then the same as a new one.
func (b *bucket) full(now time.Time) bool {
	b.refill(now)
	return b.level >= b.burst
}
