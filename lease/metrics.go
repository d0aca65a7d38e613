package lease

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the package's Prometheus metrics. Label values come from small
// fixed sets (call kind and result), never from lease keys or worker ids.
type metrics struct {
	held          prometheus.Gauge
	taken         prometheus.Counter
	stolen        prometheus.Counter
	lost          prometheus.Counter
	released      prometheus.Counter
	handoffs      *prometheus.CounterVec // result: completed, timed_out
	renewLatency  prometheus.Histogram
	renewFailures prometheus.Counter
	calls         *prometheus.CounterVec // call: renew, take, ...; result: ok, condition_failed, error
	leader        prometheus.Gauge
	leaderTakes   prometheus.Counter
	moves         *prometheus.CounterVec // kind: take, handoff; result: ok, condition_failed, error
}

// newMetrics builds the metrics and registers them on reg (nil: not
// registered). Collectors already registered by another Coordinator on the
// same registerer are shared.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "held", Help: "Leases this process holds (pending handoff, processing or draining)."}),
		taken: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "taken_total", Help: "Leases taken because they were unowned or expired; in leader mode, adopted with no handoff in flight when read."}),
		stolen: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "stolen_total", Help: "Leases claimed from a live owner for balance, or (leader mode) adopted while a handoff the leader started was in flight."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "lost_total", Help: "Leases lost: taken by another worker or not renewed within the failover time."}),
		released: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "released_total", Help: "Leases released or passed on by this process."}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "handoffs_total", Help: "Incoming handoffs by how they ended."}, []string{"result"}),
		renewLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "renew_duration_seconds", Help: "Latency of one lease renewal.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "renew_failures_total", Help: "Renewals that failed (lost, handed off or errored)."}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "dynamodb_calls_total", Help: "DynamoDB calls on the lease table by kind and result."}, []string{"call", "result"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "leader", Help: "1 while this process is the leader that assigns leases."}),
		leaderTakes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "leader_elections_total", Help: "Times this process became the leader."}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "lease",
			Name: "leader_moves_total", Help: "Lease assignments the leader wrote, by kind (take: unowned or expired; handoff: moved for balance) and result."}, []string{"kind", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.held = register(reg, m.held, &err)
	m.taken = register(reg, m.taken, &err)
	m.stolen = register(reg, m.stolen, &err)
	m.lost = register(reg, m.lost, &err)
	m.released = register(reg, m.released, &err)
	m.handoffs = register(reg, m.handoffs, &err)
	m.renewLatency = register(reg, m.renewLatency, &err)
	m.renewFailures = register(reg, m.renewFailures, &err)
	m.calls = register(reg, m.calls, &err)
	m.leader = register(reg, m.leader, &err)
	m.leaderTakes = register(reg, m.leaderTakes, &err)
	m.moves = register(reg, m.moves, &err)
	if err != nil {
		return nil, fmt.Errorf("lease metrics: %w", err)
	}
	return m, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errp = errors.Join(*errp, err)
	}
	return c
}

// call counts one DynamoDB call. A nil *metrics counts nothing.
func (m *metrics) call(kind string, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, errConditionFailed):
		result = "condition_failed"
	case err != nil:
		result = "error"
	}
	m.calls.WithLabelValues(kind, result).Inc()
}
