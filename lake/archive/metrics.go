package archive

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the archive's Prometheus metrics; kind is raw, events or errors.
type metrics struct {
	objects     *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	records     *prometheus.CounterVec
	existing    *prometheus.CounterVec
	putSeconds  *prometheus.HistogramVec
	putErrors   *prometheus.CounterVec
	inputBytes  prometheus.Counter
	rolls       *prometheus.CounterVec
	bufferAge   prometheus.Histogram
	lag         prometheus.Histogram
	enrichFails *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "clickfleet", "archive"
	m := &metrics{
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "objects_total",
			Help: "Objects stored, by kind (raw, events, errors)."}, []string{"kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "object_bytes_total",
			Help: "Bytes of objects stored, by kind."}, []string{"kind"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "records_total",
			Help: "Records in objects stored, by kind (raw: every record; events: valid ones; errors: the rest)."}, []string{"kind"}),
		existing: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "objects_existing_total",
			Help: "PUTs that found their object already stored by an earlier holder (a replay), by kind."}, []string{"kind"}),
		putSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "put_seconds",
			Help: "Latency of successful PUTs, by kind.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}, []string{"kind"}),
		putErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "put_errors_total",
			Help: "Failed S3 calls (retried unless permanent), by kind."}, []string{"kind"}),
		inputBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "input_bytes_total",
			Help: "Raw record bytes stored."}),
		rolls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rolls_total",
			Help: "Object sets stored, by what rolled them (size, interval, hour, shutdown, shard_end, adopted)."}, []string{"reason"}),
		bufferAge: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "buffer_age_seconds",
			Help: "Time from an object's first record being buffered to its checkpoint.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "lag_seconds",
			Help: "Time from an object's last record's arrival in Kinesis to its checkpoint.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}),
		enrichFails: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "enrich_failures_total",
			Help: "Objects written without part of their enrichment, by what failed (names)."}, []string{"what"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.objects, m.bytes, m.records, m.existing, m.putSeconds, m.putErrors, m.inputBytes, m.rolls, m.bufferAge, m.lag, m.enrichFails} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
