package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ingest's Prometheus series. Label values are bounded: HTTP status codes, a fixed set of
// outcomes, and the stream's role ("events" or "errors"), never a key, user or stream name.
type metrics struct {
	requests    *prometheus.CounterVec   // code
	events      *prometheus.CounterVec   // outcome
	inflight    prometheus.Gauge         // requests being served
	reqDuration prometheus.Histogram     // POST /v1/events, end to end
	putDuration *prometheus.HistogramVec // role
	putCalls    *prometheus.CounterVec   // role, result
	putRetries  *prometheus.CounterVec   // role
	batchSize   *prometheus.HistogramVec // role
}

// Event outcomes counted by clickfleet_ingest_events_total.
const (
	outcomeAccepted  = "accepted"     // on the events stream
	outcomeRejected  = "rejected"     // invalid, the request answered 400
	outcomeErrorStrm = "error_stream" // invalid, put on the error stream (InvalidToErrors)
	outcomeFailed    = "failed"       // valid, but Kinesis did not take it: reported in a 503
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clickfleet", Subsystem: "ingest", Name: "requests_total",
			Help: "HTTP requests to the ingest API by status code.",
		}, []string{"code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clickfleet", Subsystem: "ingest", Name: "events_total",
			Help: "Events received, by outcome: accepted (on the stream), rejected (in a 400 answer), error_stream, failed (in a 503 answer).",
		}, []string{"outcome"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "clickfleet", Subsystem: "ingest", Name: "inflight_requests",
			Help: "POST /v1/events requests being served.",
		}),
		reqDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "clickfleet", Subsystem: "ingest", Name: "request_duration_seconds",
			Help:    "Time to serve POST /v1/events, from the end of the headers to the answer.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		putDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "clickfleet", Subsystem: "ingest", Name: "putrecords_duration_seconds",
			Help:    "Latency of PutRecords calls, by stream role (events or errors).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"stream"}),
		putCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clickfleet", Subsystem: "ingest", Name: "putrecords_calls_total",
			Help: "PutRecords calls by stream role and result (ok, partial, error).",
		}, []string{"stream", "result"}),
		putRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "clickfleet", Subsystem: "ingest", Name: "putrecords_retried_records_total",
			Help: "Records sent again after a failed PutRecords call or entry.",
		}, []string{"stream"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "clickfleet", Subsystem: "ingest", Name: "putrecords_batch_records",
			Help:    "Records per PutRecords call (first attempt), showing how well requests are coalesced.",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 200, 300, 400, 500},
		}, []string{"stream"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.events, m.inflight, m.reqDuration, m.putDuration, m.putCalls, m.putRetries, m.batchSize} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
