package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Source measures a stream's incoming rate.
type Source interface {
	// Rates returns the samples of periods that ended after since and by now, oldest first. A source may
	// return fewer (none yet) and may return a period again with a revised value; the Scaler keeps the
	// latest value per period end.
	Rates(ctx context.Context, since, now time.Time) ([]Sample, error)
}

// The consumer's counters the Workers source reads.
const (
	MetricReadBytes   = "clickfleet_consumer_read_bytes_total"
	MetricReadRecords = "clickfleet_consumer_read_records_total"
)

// Workers is the Source for stacks without CloudWatch: the rate the consume workers read the stream at,
// from the counters every worker serves on /metrics (MetricReadBytes, MetricReadRecords). While the fleet
// keeps up this is the incoming rate (replays after a failover count again, so it errs upward). Each
// call to Rates scrapes every worker and returns one sample covering the time since the previous
// complete scrape; a scrape where a worker does not answer is an error and yields nothing, and the next
// complete one covers both periods. A worker whose counters went down (it restarted) counts from zero.
// Its methods are safe for concurrent use.
type Workers struct {
	// URLs are the workers' base URLs (http://host:port); /metrics is appended. Required.
	URLs []string
	// Client does the scrapes. Default: a client with a 5 s timeout.
	Client *http.Client

	mu   sync.Mutex
	last map[string]counters
	at   time.Time
}

type counters struct{ bytes, records float64 }

// Rates implements Source.
func (w *Workers) Rates(ctx context.Context, _, now time.Time) ([]Sample, error) {
	if len(w.URLs) == 0 {
		return nil, errors.New("no worker URLs to read the rate from")
	}
	cur := make(map[string]counters, len(w.URLs))
	var errs []error
	for _, u := range w.URLs {
		c, err := w.scrape(ctx, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cur[u] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, at := w.last, w.at
	w.last, w.at = cur, now
	if prev == nil || !now.After(at) {
		return nil, nil
	}
	var db, dr float64
	for u, c := range cur {
		p := prev[u]
		if c.bytes < p.bytes || c.records < p.records { // restarted: its counters began again at 0
			p = counters{}
		}
		db += c.bytes - p.bytes
		dr += c.records - p.records
	}
	secs := now.Sub(at).Seconds()
	return []Sample{{End: now, Period: now.Sub(at), BytesPerSecond: db / secs, RecordsPerSecond: dr / secs}}, nil
}

func (w *Workers) scrape(ctx context.Context, base string) (counters, error) {
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	url := strings.TrimSuffix(base, "/") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return counters{}, fmt.Errorf("worker metrics %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return counters{}, fmt.Errorf("worker metrics %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return counters{}, fmt.Errorf("worker metrics %s: HTTP %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return counters{}, fmt.Errorf("worker metrics %s: %w", url, err)
	}
	b, okB := counterValue(fams[MetricReadBytes])
	r, okR := counterValue(fams[MetricReadRecords])
	if !okB || !okR {
		return counters{}, fmt.Errorf("worker metrics %s: no %s and %s (is it a clickfleet consume or archive worker?)", url, MetricReadBytes, MetricReadRecords)
	}
	return counters{bytes: b, records: r}, nil
}

// counterValue sums a counter family's series.
func counterValue(f *dto.MetricFamily) (float64, bool) {
	if f == nil {
		return 0, false
	}
	var v float64
	for _, m := range f.GetMetric() {
		switch {
		case m.GetCounter() != nil:
			v += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v, true
}
