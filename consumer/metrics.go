package consumer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	readers           prometheus.Gauge
	records           prometheus.Counter
	readRecords       prometheus.Counter
	readBytes         prometheus.Counter
	calls             *prometheus.CounterVec
	throttled         prometheus.Counter
	processErrors     prometheus.Counter
	processSeconds    prometheus.Histogram
	lag, behind       prometheus.GaugeFunc
	droppedAggregates prometheus.Counter
	shardsEnded       prometheus.Counter
	syncs             *prometheus.CounterVec
	fatal             prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, lag func() Lag) (*metrics, error) {
	m := &metrics{
		readers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "shards_reading",
			Help: "Shards this worker holds and reads (including those waiting for their parents)."}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "records_total",
			Help: "User records the processors accepted."}),
		readRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "read_records_total",
			Help: "Kinesis records GetRecords or a subscription (efo read mode) returned, as stored (a KPL aggregate is one), replays included: the rate the stream is read at, which clickfleet scale compares with a shard's 1,000 records/s."}),
		readBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "read_bytes_total",
			Help: "Bytes of the Kinesis records GetRecords or a subscription returned (data plus partition key, as a shard's 1 MiB/s write limit counts them), replays included."}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "kinesis_calls_total",
			Help: "Kinesis calls by kind (get_records, get_shard_iterator, subscribe_to_shard) and outcome."}, []string{"call", "outcome"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "throttled_total",
			Help: "GetRecords calls refused with ProvisionedThroughputExceeded."}),
		processErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "process_errors_total",
			Help: "Batches a processor failed (they are delivered again)."}),
		processSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "process_seconds",
			Help: "Time a processor took for one batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		lag: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "lag_seconds",
			Help: "The longest time since the arrival of the last record read, over the shards held now (0 for a shard at the tip)."},
			func() float64 { return lag().MaxArrival.Seconds() }),
		behind: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "millis_behind_latest",
			Help: "The highest MillisBehindLatest Kinesis reported over the shards held now."},
			func() float64 { return float64(lag().MaxMillisBehindLatest) }),
		droppedAggregates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "dropped_aggregates_total",
			Help: "KPL aggregates dropped because a sub-record lies outside the shard's hash range."}),
		shardsEnded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "shards_ended_total",
			Help: "Closed shards processed to their end and checkpointed at SHARD_END."}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "shard_syncs_total",
			Help: "Shard syncs by outcome."}, []string{"outcome"}),
		fatal: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "consumer", Name: "fatal_errors_total",
			Help: "Permanent failures (a missing resource, a denied call, a processor's permanent error); the first stops the worker."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.readers, m.records, m.readRecords, m.readBytes, m.calls, m.throttled, m.processErrors, m.processSeconds,
		m.lag, m.behind, m.droppedAggregates, m.shardsEnded, m.syncs, m.fatal} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register consumer metrics: %w", err)
		}
	}
	return m, nil
}

// shardCollector exposes the worker's identity and each held shard's lag, read at scrape time, so that a
// dashboard can tell which process holds which shard and how far behind each is. Shard series exist only
// while the shard is held (their number is bounded by the stream's shard count); the info series is one
// per process.
type shardCollector struct {
	lags                    *lags
	info, lag, behind       *prometheus.Desc
	worker, stream, leaseTb string
}

func registerShardMetrics(reg prometheus.Registerer, worker, stream, table string, l *lags) error {
	if reg == nil {
		return nil
	}
	c := &shardCollector{lags: l, worker: worker, stream: stream, leaseTb: table,
		info: prometheus.NewDesc("clickfleet_consumer_worker_info",
			"This worker's id in the lease table, its stream and lease table (always 1).", []string{"worker_id", "stream", "lease_table"}, nil),
		lag: prometheus.NewDesc("clickfleet_consumer_shard_lag_seconds",
			"Per held shard: time since the arrival of the last record read, as of that read (0 at the tip).", []string{"shard_id"}, nil),
		behind: prometheus.NewDesc("clickfleet_consumer_shard_millis_behind_latest",
			"Per held shard: MillisBehindLatest of its last GetRecords answer.", []string{"shard_id"}, nil),
	}
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("register consumer shard metrics: %w", err)
	}
	return nil
}

func (c *shardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.info
	ch <- c.lag
	ch <- c.behind
}

func (c *shardCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, c.worker, c.stream, c.leaseTb)
	c.lags.each(func(shard string, s shardLag) {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, s.arrival.Seconds(), shard)
		ch <- prometheus.MustNewConstMetric(c.behind, prometheus.GaugeValue, float64(s.millis), shard)
	})
}
