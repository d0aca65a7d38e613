package actors

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/clickfleet/clickfleet/enrich/geo"
)

// metrics of one worker process's processors; no per-user or per-shard labels.
type metrics struct {
	usersLive prometheus.Gauge
	// sessionsOpen counts the users whose session is open as of their last flush reply (started, not
	// closed by the next event beyond the gap or by the idle timer; a reopened one counts again).
	sessionsOpen        prometheus.Gauge
	spawned, passivated prometheus.Counter
	batchSeconds        prometheus.Histogram
	flushSeconds        prometheus.Histogram
	effects             *prometheus.CounterVec // kind: offer, error_record, session, state, stale
	errors              *prometheus.CounterVec // kind: write, load, fatal
	records, invalid    prometheus.Counter
	retrying            prometheus.Gauge // write or load loops now between failed attempts
	// geo enrichment: records located, by status (indexed by geo.Status); lookups that left the actor
	// (in-process cache miss); flush replies held for pending lookups.
	locatedVec               *prometheus.CounterVec
	located                  [4]prometheus.Counter
	geoOffActor, heldReplies prometheus.Counter
	// duplicates counts records dropped as copies of a recently applied click_id.
	duplicates prometheus.Counter
	// session rows: items written to the sessions table, sessions started, users loaded at the start of
	// a holding period because the previous owner left their rows lagging.
	sessionWrites, sessionsStarted, rowsRecovered prometheus.Counter
	// positionsRead counts users whose stored position a flush's probe read (only when the shard's fence
	// is not the holding period's own).
	positionsRead prometheus.Counter
	// replicaWaits counts waits for Redis replicas (Config.WaitReplicas) by result: acknowledged, short
	// (fewer replicas within the timeout), failed (the wait's own error).
	replicaWaits *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		usersLive: prometheus.NewGauge(prometheus.GaugeOpts{Name: "clickfleet_actors_users_live",
			Help: "User actors alive in this process."}),
		sessionsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "clickfleet_actors_sessions_open",
			Help: "Sessions open in this process's shards as of their users' last flush: started and not yet closed by the user's next event beyond the gap or by the idle timer (gap + close delay); the sum over the consume workers is the fleet's open sessions. A user actor outlives its session (it stays until passivation), so this is below clickfleet_actors_users_live."}),
		spawned: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_users_spawned_total",
			Help: "User actors spawned (first sight or after passivation)."}),
		passivated: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_users_passivated_total",
			Help: "User actors stopped by the idle sweep."}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "clickfleet_actors_batch_seconds",
			Help: "Time ProcessRecords took: decoding, routing and any backpressure wait.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "clickfleet_actors_flush_seconds",
			Help: "Time of a flush: barrier, writes and checkpoint.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		effects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clickfleet_actors_effects_written_total",
			Help: "Effects written, by kind (offer: a route's output, the offers' or another's; error_record, session, state; stale: dropped as a deposed owner's)."}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clickfleet_actors_errors_total",
			Help: "Errors by kind: write and load (retried), fatal (the shard stops)."}, []string{"kind"}),
		retrying: prometheus.NewGauge(prometheus.GaugeOpts{Name: "clickfleet_actors_writes_retrying",
			Help: "Writes and loads being retried after a transient error (throttling, a server fault, a timeout, no connection); the process is not ready while above 0."}),
		records: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_records_total",
			Help: "Records handed to the actors."}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_invalid_records_total",
			Help: "Records that failed decoding or validation (sent to the error stream)."}),
		locatedVec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clickfleet_actors_geo_located_total",
			Help: "Records whose user_ip was located, by answer: found, not_found, unknown (not a public address), unavailable (provider outage: emitted without location)."}, []string{"status"}),
		geoOffActor: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_geo_resolves_total",
			Help: "Geo lookups the in-process cache could not answer, resolved off the actor."}),
		heldReplies: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_flush_replies_held_total",
			Help: "Users' flush replies held until their pending geo lookups answered (at most the lookup timeout)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_duplicate_records_total",
			Help: "Records dropped because their click_id is among the user's recently applied ones (a producer's retry stored the event twice)."}),
		sessionWrites: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_session_writes_total",
			Help: "Session rows written to the sessions table (at a session's start, close, update interval, reopening, or the end of a shard's processing); divide by clickfleet_actors_sessions_started_total for writes per session."}),
		sessionsStarted: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_sessions_started_total",
			Help: "Sessions started (a user's first event, or one beyond the gap)."}),
		rowsRecovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_lagging_rows_recovered_total",
			Help: "Users loaded when a shard's holding period started because a previous owner left their session rows lagging (a crash or a lost lease); their rows are written at their next trigger."}),
		positionsRead: prometheus.NewCounter(prometheus.CounterOpts{Name: "clickfleet_actors_positions_read_total",
			Help: "Users whose stored position a flush read before writing, to drop a deposed owner's or a duplicate's effects; 0 while every shard's fence in Redis is its holding period's own lease counter (then no one else can have written them)."}),
		replicaWaits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clickfleet_actors_replica_waits_total",
			Help: "Waits for Redis replicas to acknowledge a flush's state before its checkpoint (Config.WaitReplicas), by result: acknowledged, short (fewer replicas within the timeout: the state is written again and the checkpoint waits), failed (the wait's own error, e.g. a failover)."}, []string{"result"}),
	}
	for _, s := range []geo.Status{geo.StatusUnavailable, geo.StatusFound, geo.StatusNotFound, geo.StatusUnknown} {
		m.located[s] = m.locatedVec.WithLabelValues(s.String())
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.usersLive, m.sessionsOpen, m.spawned, m.passivated, m.batchSeconds, m.flushSeconds, m.effects, m.errors, m.retrying, m.records, m.invalid, m.locatedVec, m.geoOffActor, m.heldReplies, m.duplicates, m.sessionWrites, m.sessionsStarted, m.rowsRecovered, m.positionsRead, m.replicaWaits} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
