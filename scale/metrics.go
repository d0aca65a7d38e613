package scale

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	leading      prometheus.Gauge
	shards       prometheus.Gauge
	wanted       prometheus.Gauge
	utilisation  prometheus.Gauge
	calls24h     prometheus.Gauge
	evaluations  *prometheus.CounterVec
	calls        *prometheus.CounterVec
	errors       *prometheus.CounterVec
	sourceErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	opts := func(name, help string) prometheus.GaugeOpts {
		return prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "scale", Name: name, Help: help}
	}
	m := &metrics{
		leading:     prometheus.NewGauge(opts("leading", "1 while this instance holds the lock and scales the stream (always with --dry-run), 0 while it waits.")),
		shards:      prometheus.NewGauge(opts("open_shards", "The stream's open shards at the last evaluation.")),
		wanted:      prometheus.NewGauge(opts("wanted_shards", "The shard count the last decision resized, or would resize, to.")),
		utilisation: prometheus.NewGauge(opts("utilisation_ratio", "The last measured rate as a fraction of the open shards' capacity (the higher of bytes and records).")),
		calls24h:    prometheus.NewGauge(opts("calls_24h", "UpdateShardCount calls the API accepted in the last 24 hours, as the history on the lock row says.")),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "scale", Name: "decisions_total",
			Help: "Decisions by action: none, resize, hold, skip (on-demand)."}, []string{"action"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "scale", Name: "update_shard_count_calls_total",
			Help: "UpdateShardCount calls by outcome: ok, refused (beyond the API's limits), busy (stream not ACTIVE), error."}, []string{"outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "scale", Name: "kinesis_errors_total",
			Help: "Failed Kinesis calls by call (describe, update_shard_count)."}, []string{"call"}),
		sourceErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "scale", Name: "rate_errors_total",
			Help: "Intervals without a decision because the incoming rate could not be read."}),
	}
	for _, a := range []Action{None, Resize, Hold, Skip} {
		m.evaluations.WithLabelValues(string(a))
	}
	for _, o := range []string{"ok", "refused", "busy", "error"} {
		m.calls.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.leading, m.shards, m.wanted, m.utilisation, m.calls24h, m.evaluations, m.calls, m.errors, m.sourceErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register scale metrics: %w", err)
		}
	}
	return m, nil
}
