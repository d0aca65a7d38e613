package names

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/settings"
)

// Channel is the PostgreSQL NOTIFY channel on which the customers table's trigger announces a changed
// customer_id (the payload); the Syncer LISTENs on it.
const Channel = "clickfleet_customers"

// Customer is one row of the customers table. PricePerClick is the numeric's exact decimal text (e.g. "0.2500").
type Customer struct {
	ID            string
	Name          string
	PricePerClick string
}

// RedisClient is the part of go-redis the Syncer uses; *redis.Client and *redis.ClusterClient have it.
type RedisClient interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
	Scan(ctx context.Context, cursor uint64, match string, count int64) *redis.ScanCmd
}

// Config configures a Syncer. Zero fields take the defaults named in their docs.
type Config struct {
	// Pool is the PostgreSQL pool; the Syncer holds one of its connections for LISTEN while it runs, so it
	// needs at least two. Required.
	Pool *pgxpool.Pool
	// Redis receives the names. Required.
	Redis RedisClient
	// Prefix starts every Redis key. Default: "cf:".
	Prefix string
	// Interval is the period of the full copy. Default: 1m.
	Interval time.Duration
	// Channel is the NOTIFY channel of the customers trigger. Default: Channel.
	Channel string
	// MinBackoff and MaxBackoff bound the pause before reconnecting or retrying a failed copy; it doubles
	// on each consecutive failure. Defaults: 100ms, 10s.
	MinBackoff, MaxBackoff time.Duration
	// MissingTableLog is how often, at most, the Syncer logs that it is waiting for the customers table
	// (see Run). Default: 1m.
	MissingTableLog time.Duration
	// Logger: default zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the metrics (clickfleet_names_*). Default: none.
	Registerer prometheus.Registerer
}

// ErrInvalidConfig is wrapped by the errors of New.
var ErrInvalidConfig = errors.New("names: invalid configuration")

// Syncer copies customers from PostgreSQL to Redis. Create it with New, then call Run once.
type Syncer struct {
	cfg Config
	log *zap.Logger
	m   metrics

	mu    sync.RWMutex
	byID  map[string]Customer
	ready bool

	missingSince, missingLogged time.Time // the customers table missing (Run's goroutine only)
}

// DefaultInterval is the default period of the full copy (Config.Interval).
const DefaultInterval = time.Minute

// New checks cfg and returns a Syncer. It does no I/O and starts no goroutine.
func New(cfg Config) (*Syncer, error) {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid(field, format, args...))
	}
	switch {
	case cfg.Pool == nil:
		return nil, bad("Pool", "no PostgreSQL pool")
	case cfg.Redis == nil:
		return nil, bad("Redis", "no Redis client")
	case cfg.Interval < 0:
		return nil, bad("Interval", "must not be negative, got %s", cfg.Interval)
	case cfg.MinBackoff < 0:
		return nil, bad("MinBackoff", "must not be negative, got %s", cfg.MinBackoff)
	case cfg.MaxBackoff < 0:
		return nil, bad("MaxBackoff", "must not be negative, got %s", cfg.MaxBackoff)
	case cfg.MissingTableLog < 0:
		return nil, bad("MissingTableLog", "must not be negative, got %s", cfg.MissingTableLog)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = session.DefaultPrefix
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Channel == "" {
		cfg.Channel = Channel
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.MissingTableLog == 0 {
		cfg.MissingTableLog = time.Minute
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, bad("MaxBackoff", "%s is below MinBackoff %s", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Syncer{cfg: cfg, log: cfg.Logger.Named("names"), m: m}, nil
}

// Lookup returns the customer as of the Syncer's latest copy, from memory: it never blocks on I/O. ok is
// false for an unknown customer or before the first full copy (see Ready).
func (s *Syncer) Lookup(id string) (c Customer, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok = s.byID[id]
	return c, ok
}

// Ready reports whether a full copy has completed since Run started.
func (s *Syncer) Ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ready
}

// Run copies until ctx ends, then returns nil once its goroutines have stopped. Transient PostgreSQL and
// Redis failures (no connection, a restart, a timeout) never end it: they are logged, counted, and
// retried with backoff. A missing customers table does not end it either: 'clickfleet setup' may not
// have run yet (on AWS the stack starts names-sync before or while the setup task runs), so Run keeps
// asking, with backoff up to MaxBackoff, logs a warning at most every MissingTableLog, and stays not
// Ready until the table appears and a full copy succeeds. Any other permanent failure
// (retry.IsPermanent: authentication or permission refused, a Redis error reply) ends it with that
// error. Call it once.
func (s *Syncer) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	notes := make(chan string, 1024)
	resync := make(chan struct{}, 1)
	listenErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { listenErr <- s.listen(ctx, notes, resync) })
	defer wg.Wait()
	defer stop() // before the wait: the listener ends with ctx
	fatal := func(err error) error {
		s.log.Error("names sync stops: the error repeats on every attempt", zap.Error(err))
		return err
	}

	timer := time.NewTimer(0) // the first full copy at once
	defer timer.Stop()
	backoff := retry.Backoff{Initial: s.cfg.MinBackoff, Max: s.cfg.MaxBackoff}
	first := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-listenErr:
			if err != nil {
				return fatal(err)
			}
		case id := <-notes:
			err := s.syncOne(ctx, id)
			if retry.IsPermanent(err) {
				return fatal(fmt.Errorf("apply the change of customer %s: %w", id, err))
			}
			if err != nil && ctx.Err() == nil {
				// The change is not in Redis: copy everything again soon.
				s.log.Warn("applying a customer change failed; full copy scheduled", zap.String("user_id", id), zap.Error(err))
				timer.Reset(backoff.Next())
			}
		case <-resync:
			timer.Reset(0)
		case <-timer.C:
			err := s.fullSync(ctx, first)
			if ctx.Err() != nil {
				return nil
			}
			if tableMissing(err) {
				s.waitForTable(err)
				timer.Reset(backoff.Next())
				continue
			}
			s.tableFound()
			if retry.IsPermanent(err) {
				return fatal(fmt.Errorf("full copy of customers: %w", err))
			}
			if err != nil {
				s.m.syncs.WithLabelValues("failed").Inc()
				pause := backoff.Next()
				s.log.Warn("full copy of customers failed", zap.Error(err), zap.Duration("retry_in", pause))
				timer.Reset(pause)
				continue
			}
			s.m.syncs.WithLabelValues("ok").Inc()
			first = false
			backoff.Reset()
			timer.Reset(s.cfg.Interval)
		}
	}
}

// undefinedTable is PostgreSQL's SQLSTATE for a relation that does not exist.
const undefinedTable = "42P01"

// tableMissing reports whether err says the customers table does not exist.
func tableMissing(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == undefinedTable
}

// waitForTable notes that the customers table is missing and logs it, at most every MissingTableLog.
func (s *Syncer) waitForTable(err error) {
	now := time.Now()
	if s.missingSince.IsZero() {
		s.missingSince = now
	}
	s.m.tableMissing.Set(1)
	if !s.missingLogged.IsZero() && now.Sub(s.missingLogged) < s.cfg.MissingTableLog {
		return
	}
	s.missingLogged = now
	s.log.Warn("waiting for the customers table: run 'clickfleet setup --pg-dsn' against this database; not ready until it exists",
		zap.Duration("waiting", now.Sub(s.missingSince).Round(time.Second)), zap.Error(err))
}

// tableFound ends a wait for the customers table, if there was one.
func (s *Syncer) tableFound() {
	if s.missingSince.IsZero() {
		return
	}
	s.log.Info("the customers table exists now", zap.Duration("waited", time.Since(s.missingSince).Round(time.Second)))
	s.missingSince, s.missingLogged = time.Time{}, time.Time{}
	s.m.tableMissing.Set(0)
}

// listen holds a LISTEN connection and forwards each notified customer_id; after every (re)connect it asks
// for a full copy, which covers whatever changed while it was not listening. It returns nil when ctx
// ends, or a permanent error (authentication refused, say).
func (s *Syncer) listen(ctx context.Context, notes chan<- string, resync chan<- struct{}) error {
	backoff := retry.Backoff{Initial: s.cfg.MinBackoff, Max: s.cfg.MaxBackoff}
	connected := false
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, notes, resync, func() { connected = true; backoff.Reset() })
		if ctx.Err() != nil {
			return nil
		}
		if retry.IsPermanent(err) {
			return fmt.Errorf("LISTEN %s: %w", s.cfg.Channel, err)
		}
		s.m.listening.Set(0)
		s.m.reconnects.Inc()
		if connected {
			s.log.Warn("lost the PostgreSQL LISTEN connection; reconnecting", zap.Error(err))
		} else {
			s.log.Warn("cannot LISTEN on PostgreSQL; retrying", zap.Error(err))
		}
		connected = false
		if retry.Sleep(ctx, backoff.Next()) != nil {
			return nil
		}
	}
	return nil
}

func (s *Syncer) listenOnce(ctx context.Context, notes chan<- string, resync chan<- struct{}, onListening func()) error {
	conn, err := s.cfg.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a connection: %w", err)
	}
	// The connection is dedicated to LISTEN; never hand it back to the pool in that state.
	defer func() { _ = conn.Hijack().Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.cfg.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("LISTEN %s: %w", s.cfg.Channel, err)
	}
	onListening()
	s.m.listening.Set(1)
	s.log.Info("listening for customer changes", zap.String("channel", s.cfg.Channel))
	select {
	case resync <- struct{}{}:
	default:
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		s.m.notifications.Inc()
		select {
		case notes <- n.Payload:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

const selectAll = `SELECT customer_id, name, price_per_click::text FROM customers`

// fullSync copies every customer and removes the fields of customers that disappeared. On the first copy
// of a Run it learns which users carry a name in Redis by scanning <prefix>user:*; later it compares with
// the previous copy.
func (s *Syncer) fullSync(ctx context.Context, first bool) error {
	start := time.Now()
	rows, err := s.cfg.Pool.Query(ctx, selectAll)
	if err != nil {
		return fmt.Errorf("select customers: %w", err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Customer])
	if err != nil {
		return fmt.Errorf("read customers: %w", err)
	}
	now := make(map[string]Customer, len(all))
	for _, c := range all {
		now[c.ID] = c
	}
	var gone []string
	if first {
		present, err := s.scanUsers(ctx)
		if err != nil {
			return err
		}
		for _, id := range present {
			if _, ok := now[id]; !ok {
				gone = append(gone, id)
			}
		}
	} else {
		s.mu.RLock()
		for id := range s.byID {
			if _, ok := now[id]; !ok {
				gone = append(gone, id)
			}
		}
		s.mu.RUnlock()
	}
	const batch = 1000
	for i := 0; i < len(all); i += batch {
		part := all[i:min(i+batch, len(all))]
		if _, err := s.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range part {
				p.HSet(ctx, session.UserKey(s.cfg.Prefix, c.ID), session.FieldName, c.Name, session.FieldPricePerClick, c.PricePerClick)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("write names to Redis: %w", err)
		}
	}
	for i := 0; i < len(gone); i += batch {
		part := gone[i:min(i+batch, len(gone))]
		if _, err := s.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range part {
				p.HDel(ctx, session.UserKey(s.cfg.Prefix, id), session.FieldName, session.FieldPricePerClick)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("remove deleted customers' names from Redis: %w", err)
		}
	}
	s.mu.Lock()
	s.byID, s.ready = now, true
	s.mu.Unlock()
	s.m.customers.Set(float64(len(now)))
	s.log.Debug("copied customers", zap.Int("customers", len(now)), zap.Int("removed", len(gone)), zap.Duration("took", time.Since(start)))
	return nil
}

// scanUsers returns the ids of the users whose hash carries a name now.
func (s *Syncer) scanUsers(ctx context.Context) ([]string, error) {
	match := session.UserKey(s.cfg.Prefix, "*")
	var keys []string
	var cursor uint64
	for {
		page, next, err := s.cfg.Redis.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", match, err)
		}
		keys = append(keys, page...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	cmds := make([]*redis.BoolCmd, len(keys))
	if _, err := s.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HExists(ctx, k, session.FieldName)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("check names under %s: %w", match, err)
	}
	var ids []string
	for i, c := range cmds {
		if c.Val() {
			ids = append(ids, keys[i][len(session.UserKey(s.cfg.Prefix, "")):])
		}
	}
	return ids, nil
}

// syncOne applies the current state of one customer.
func (s *Syncer) syncOne(ctx context.Context, id string) error {
	var c Customer
	err := s.cfg.Pool.QueryRow(ctx, selectAll+` WHERE customer_id = $1`, id).Scan(&c.ID, &c.Name, &c.PricePerClick)
	key := session.UserKey(s.cfg.Prefix, id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := s.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, key, session.FieldName, session.FieldPricePerClick)
			return nil
		}); err != nil {
			return fmt.Errorf("remove customer %s's name from Redis: %w", id, err)
		}
		s.mu.Lock()
		delete(s.byID, id)
		s.mu.Unlock()
	case err != nil:
		return fmt.Errorf("select customer %s: %w", id, err)
	default:
		if _, err := s.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, session.FieldName, c.Name, session.FieldPricePerClick, c.PricePerClick)
			return nil
		}); err != nil {
			return fmt.Errorf("write customer %s's name to Redis: %w", id, err)
		}
		s.mu.Lock()
		if s.byID != nil {
			s.byID[id] = c
		}
		s.mu.Unlock()
	}
	s.m.applied.Inc()
	return nil
}

type metrics struct {
	syncs                              *prometheus.CounterVec
	notifications, applied, reconnects prometheus.Counter
	customers, listening, tableMissing prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "names", Name: "full_syncs_total",
			Help: "Full copies of the customers table by outcome (ok, failed)."}, []string{"outcome"}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "names", Name: "notifications_total",
			Help: "Customer change notifications received."}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "names", Name: "changes_applied_total",
			Help: "Single-customer changes written to Redis."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "clickfleet", Subsystem: "names", Name: "listen_reconnects_total",
			Help: "Times the LISTEN connection was lost or could not be made."}),
		customers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "names", Name: "customers",
			Help: "Customers in the latest full copy."}),
		listening: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "names", Name: "listening",
			Help: "1 while the LISTEN connection is up."}),
		tableMissing: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "clickfleet", Subsystem: "names", Name: "table_missing",
			Help: "1 while the customers table does not exist (names-sync waits for 'clickfleet setup')."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.syncs, m.notifications, m.applied, m.reconnects, m.customers, m.listening, m.tableMissing} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("register names metrics: %w", err)
		}
	}
	return m, nil
}
