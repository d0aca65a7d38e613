// Package emf writes CloudWatch Embedded Metric Format log lines: JSON objects that CloudWatch Logs turns
// into metrics without any PutMetricData call, so a worker on ECS or EC2 publishes what its autoscaling
// reads (lag, throughput, leases) through its ordinary log stream. It knows nothing of AWS clients.
//
// One line holds every metric of one report under one namespace and one dimension set; Reporter writes
// one every interval.
package emf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Units of the metrics clickfleet reports (CloudWatch's names).
const (
	Milliseconds   = "Milliseconds"
	Count          = "Count"
	CountPerSecond = "Count/Second"
)

// Metric is one value of a report.
type Metric struct {
	Name  string
	Unit  string
	Value float64
}

// Line returns one EMF log line (with its newline): the report at t of metrics under namespace, with
// dims as the one dimension set, in a stable order (dimension keys and metric order as given).
func Line(t time.Time, namespace string, dims map[string]string, metrics []Metric) ([]byte, error) {
	keys := make([]string, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	type def struct {
		Name string `json:"Name"`
		Unit string `json:"Unit,omitempty"`
	}
	defs := make([]def, len(metrics))
	for i, m := range metrics {
		defs[i] = def{m.Name, m.Unit}
	}
	meta := map[string]any{
		"Timestamp": t.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace": namespace, "Dimensions": [][]string{keys}, "Metrics": defs,
		}},
	}
	// The root holds _aws, the dimension values and the metric values; encoding/json sorts map keys, so
	// the line is the same for the same report.
	root := map[string]any{"_aws": meta}
	for _, k := range keys {
		root[k] = dims[k]
	}
	for _, m := range metrics {
		if _, clash := root[m.Name]; clash {
			return nil, fmt.Errorf("emf: metric %q has the name of a dimension", m.Name)
		}
		root[m.Name] = m.Value
	}
	b, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("emf: %w", err)
	}
	return append(b, '\n'), nil
}

// Reporter writes a line to Out every Interval with the metrics Collect returns.
type Reporter struct {
	// Namespace of the metrics. Required.
	Namespace string
	// Dimensions, one set, e.g. {"stream": "clickstream", "application": "consume"}.
	Dimensions map[string]string
	// Interval between lines. Default: 60s.
	Interval time.Duration
	// Collect returns the metrics of one report; elapsed is the time since the previous one (for rates).
	// No metrics: no line this time.
	Collect func(elapsed time.Duration) []Metric
	// Out receives the lines (a process's standard output, which the container's log driver ships).
	Out io.Writer
	// Now is the clock. Default: time.Now.
	Now func() time.Time

	mu sync.Mutex // one line at a time on Out
}

// Run writes a line every Interval until ctx ends, then returns nil; a write error ends it with the error.
func (r *Reporter) Run(ctx context.Context) error {
	if r.Namespace == "" || r.Collect == nil || r.Out == nil {
		return fmt.Errorf("emf: Reporter needs Namespace, Collect and Out")
	}
	interval, now := r.Interval, r.Now
	if interval <= 0 {
		interval = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		at := now()
		metrics := r.Collect(at.Sub(last))
		last = at
		if len(metrics) == 0 {
			continue // nothing to report this time
		}
		line, err := Line(at, r.Namespace, r.Dimensions, metrics)
		if err != nil {
			return err
		}
		r.mu.Lock()
		_, err = r.Out.Write(line)
		r.mu.Unlock()
		if err != nil {
			return fmt.Errorf("emf: write: %w", err)
		}
	}
}
