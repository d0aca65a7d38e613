package dashboard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Charts are the page's charts, each served at /api/<name> from the dataset of the same name (the
// report of that name in clickfleet).
var Charts = []string{"event_ratio", "requests_by_state", "requests_by_city", "actions_per_customer", "top_regions",
	"sessions_by_hour", "session_length", "events_per_session", "sessions_by_device"}

// Range is a time range of lake partitions: [From, To) in whole UTC hours, as the report's --from and
// --to; a zero side is open.
type Range struct {
	From, To time.Time
}

// Table is a dataset's rows: column names, and rows of JSON-encodable values (nil, string, int64,
// float64, bool, time.Time).
type Table struct {
	Columns []string
	Rows    [][]any
}

// Datasets computes the charts' rows. Query returns ErrNoData (wrapped) when the range holds no
// events, and a *SourceError when a server it reads is down. Implementations must be safe for
// concurrent use.
type Datasets interface {
	Query(ctx context.Context, name string, r Range) (*Table, error)
}

// ErrNoData: the range holds no events. The chart is empty, which is not an outage.
var ErrNoData = errors.New("dashboard: no events in the range")

// SourceError is an outage of a server a dataset reads: Source names it for the page ("lake (S3)",
// "Redis", "PostgreSQL"), Setting the flag that points at it.
type SourceError struct {
	Source  string
	Setting string
	Err     error
}

func (e *SourceError) Error() string {
	s := e.Source + " is unavailable: " + e.Err.Error()
	if e.Setting != "" {
		s += " (set by " + e.Setting + ")"
	}
	return s
}
func (e *SourceError) Unwrap() error { return e.Err }

// cached puts a short-lived cache in front of a Datasets: a query asked again within ttl with the same
// range is answered from memory, and concurrent identical queries share one run. Errors are not kept.
type cached struct {
	ds  Datasets
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	done chan struct{}
	at   time.Time
	t    *Table
	err  error
}

func newCached(ds Datasets, ttl time.Duration, now func() time.Time) *cached {
	return &cached{ds: ds, ttl: ttl, now: now, entries: map[string]*entry{}}
}

func (c *cached) Query(ctx context.Context, name string, r Range) (*Table, error) {
	key := fmt.Sprintf("%s|%d|%d", name, r.From.UnixNano(), r.To.UnixNano())
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok {
		select {
		case <-e.done:
			if e.err != nil || c.now().Sub(e.at) >= c.ttl {
				ok = false
			}
		default: // in flight: wait for it
		}
	}
	if !ok {
		for k, old := range c.entries { // drop what has expired, so that the map stays small
			select {
			case <-old.done:
				if c.now().Sub(old.at) >= c.ttl {
					delete(c.entries, k)
				}
			default:
			}
		}
		e = &entry{done: make(chan struct{})}
		c.entries[key] = e
		c.mu.Unlock()
		// The query is shared: a requester that goes away must not cancel it for the others (the
		// datasets bound their own time).
		e.t, e.err = c.ds.Query(context.WithoutCancel(ctx), name, r)
		e.at = c.now()
		close(e.done)
		return e.t, e.err
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.t, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
