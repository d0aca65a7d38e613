package ingest

import (
	"math"
	"sync"
	"time"
)

// limiter is one token bucket per API key (a key's index in Keys; anonymous requests share index -1).
// Requests are admitted while the bucket holds at least one token and then pay one token per event, so a
// bucket may go into debt by at most one request's events. Safe for concurrent use.
type limiter struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[int]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(rate, burst float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: burst, now: now, buckets: map[int]*bucket{}}
}

// admit reports whether key may send a request now; when not, it returns how long until it may.
func (l *limiter) admit(key int) (bool, time.Duration) {
	if l == nil || l.rate <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(key)
	if b.tokens >= 1 {
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
	return false, wait
}

// take charges n events to key's bucket.
func (l *limiter) take(key int, n int) {
	if l == nil || l.rate <= 0 || n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(key).tokens -= float64(n)
}

func (l *limiter) refill(key int) *bucket {
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
		return b
	}
	if el := now.Sub(b.at); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el.Seconds()*l.rate)
		b.at = now
	}
	return b
}
