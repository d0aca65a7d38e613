package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/lease"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("scale: invalid configuration")

// ErrSharedLeaseTable is returned by Run when the lock's lease table holds shard leases: the consume
// workers would take the lock's row for a shard (and fail reading it), so the scaler needs a table of its
// own.
var ErrSharedLeaseTable = errors.New("scale: the lease table holds shard leases")

// Defaults of Config's fields.
const (
	DefaultInterval  = time.Minute
	DefaultLockTable = "clickfleet-scale-leases"
)

// Config configures a Scaler. Zero values take the documented defaults; Validate fills them in.
type Config struct {
	// Stream is the stream to scale. Required.
	Stream string
	// Policy decides; see Policy. Validated with the Config (fields as "Policy.<field>").
	Policy Policy
	// Interval is how often the rate is read and a decision made. Default: 1m (CloudWatch's period).
	Interval time.Duration
	// Source measures the incoming rate. Required.
	Source Source
	// Kinesis describes and resizes the stream. Required.
	Kinesis KinesisAPI
	// DryRun decides and reports but never calls UpdateShardCount and takes no lock, so it may run beside
	// the acting instance. Its own would-be resizes count, in its memory only, for its cool-downs and budget.
	DryRun bool
	// Lock configures the lease that lets one Scaler act at a time: Lock.Table (default
	// DefaultLockTable; not the consumers' lease table), Lock.WorkerID, Lock.FailoverTime,
	// Lock.TakeInterval … Its Process, Logger and Registerer are set by the Scaler. Unused with DryRun.
	Lock lease.Config
	// DynamoDB holds the lock table. Required unless DryRun.
	DynamoDB lease.DynamoDBAPI
	// Decisions receives each decision as a line (Decision.String) when it differs from the previous
	// one, or every decision with DryRun. Default: nil (decisions are logged only).
	Decisions io.Writer
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
	// Registerer receives the scaler's and the lock's metrics. Default: nil.
	Registerer prometheus.Registerer
}

// Validate fills in defaults and returns an error wrapping ErrInvalidConfig and a *settings.Error naming
// the first bad setting.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Invalid(field, format, args...))
	}
	if c.Stream == "" {
		return bad("Stream", "is required")
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Within("Policy", err))
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Interval < 100*time.Millisecond {
		return bad("Interval", "must be at least 100ms, got %s", c.Interval)
	}
	if c.Source == nil {
		return bad("Source", "is required")
	}
	if c.Kinesis == nil {
		return bad("Kinesis", "is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.DryRun {
		return nil
	}
	if c.DynamoDB == nil {
		return bad("DynamoDB", "is required without DryRun")
	}
	if c.Lock.Table == "" {
		c.Lock.Table = DefaultLockTable
	}
	c.Lock.Logger, c.Lock.Registerer = c.Logger, c.Registerer
	if err := c.Lock.Check(); err != nil { // Process is the Scaler's own

		return fmt.Errorf("%w: %w", ErrInvalidConfig, settings.Within("Lock", err))
	}
	return nil
}

// LockKey is the lock row's leaseKey for a stream.
func LockKey(stream string) string { return "scale:" + stream }

// Scaler resizes one stream, one decision per interval; see the package doc.
type Scaler struct {
	cfg     Config
	stream  *Stream
	coord   *lease.Coordinator
	log     *zap.Logger
	metrics *metrics

	ready      atomic.Bool
	leading    atomic.Bool
	running    atomic.Bool
	openShards atomic.Int64 // the stream's open shards at the last evaluation

	mu      sync.Mutex
	samples []Sample
	hist    History
	last    string // the previous decision's action and reason, to print changes only
	onDem   bool

	fatalMu sync.Mutex
	fatal   error
	stop    context.CancelCauseFunc
}

// New validates cfg and returns a Scaler. It does no I/O and starts no goroutines.
func New(cfg Config) (*Scaler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Scaler{cfg: cfg, stream: &Stream{API: cfg.Kinesis, Name: cfg.Stream}, metrics: m,
		log: cfg.Logger.Named("scale").With(zap.String("stream", cfg.Stream))}
	if !cfg.DryRun {
		lc := cfg.Lock
		lc.Process = s.lead
		if s.coord, err = lease.New(cfg.DynamoDB, lc); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// InstanceID is the id this scaler writes as the lock's owner ("" with DryRun).
func (s *Scaler) InstanceID() string {
	if s.coord == nil {
		return ""
	}
	return s.coord.WorkerID()
}

// Ready reports whether the scaler works: it has checked the lock table and, when it holds the lock (or
// runs dry), its last evaluation succeeded. An instance waiting for the lock is ready.
func (s *Scaler) Ready() bool { return s.ready.Load() }

// Leading reports whether this scaler holds the lock and acts (always true with DryRun once running).
func (s *Scaler) Leading() bool { return s.leading.Load() }

// OpenShards returns the stream's open shards as the last evaluation found them, 0 before the first one
// or while this scaler does not lead (the leader reports the count; a deployment caps its workers at it).
func (s *Scaler) OpenShards() int {
	if !s.Leading() {
		return 0
	}
	return int(s.openShards.Load())
}

// Run decides and resizes until ctx ends; then it releases the lock and returns nil. Without DryRun it
// first makes sure the lock's row exists and that the lock table holds no shard leases
// (ErrSharedLeaseTable), then waits for the lock and acts while it holds it. A permanent failure — the
// stream or the lock table missing, a denied call — ends Run with that error; transient ones are logged,
// counted and retried at the next interval.
func (s *Scaler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("scale: Scaler.Run called twice")
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	s.fatalMu.Lock()
	s.stop = stop
	s.fatalMu.Unlock()
	if s.cfg.DryRun {
		s.log.Info("dry run: decisions are printed, the stream is not resized, no lock is taken")
		s.ready.Store(true)
		s.leading.Store(true)
		s.metrics.leading.Set(1)
		return s.loop(ctx, nil)
	}
	if err := s.prepareLock(ctx); err != nil {
		return err
	}
	s.ready.Store(true)
	s.log.Info("waiting for the lock", zap.String("lock_table", s.cfg.Lock.Table), zap.String("instance_id", s.InstanceID()))
	err := s.coord.Run(ctx)
	if fatal := s.fatalErr(); fatal != nil {
		return fatal
	}
	return err
}

func (s *Scaler) fail(err error) {
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	if s.fatal != nil {
		return
	}
	s.fatal = err
	s.ready.Store(false)
	s.log.Error("permanent failure: the scaler stops", zap.Error(err))
	if s.stop != nil {
		s.stop(err)
	}
}

func (s *Scaler) fatalErr() error {
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	return s.fatal
}

// prepareLock creates the lock row unless it exists, after checking the table is not a consumer's.
func (s *Scaler) prepareLock(ctx context.Context) error {
	t := lease.NewTable(s.cfg.DynamoDB, s.cfg.Lock.Table)
	for {
		err := s.tryPrepareLock(ctx, t)
		if err == nil || errors.Is(err, ErrSharedLeaseTable) || retry.IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("cannot prepare the lock row; retrying", zap.Error(err))
		if retry.Sleep(ctx, s.cfg.Interval) != nil {
			return nil
		}
	}
}

func (s *Scaler) tryPrepareLock(ctx context.Context, t *lease.Table) error {
	leases, err := t.List(ctx)
	if err != nil {
		return fmt.Errorf("lock table %s: %w", t.Name(), err)
	}
	for _, l := range leases {
		if strings.HasPrefix(l.Key, "shardId-") {
			return fmt.Errorf("lock table %s: %w (%s, owner %q): a consumer's lease table; the scaler needs a table of its own",
				t.Name(), ErrSharedLeaseTable, l.Key, l.Owner)
		}
	}
	err = t.Create(ctx, lease.Lease{Key: LockKey(s.cfg.Stream)})
	if err != nil && !errors.Is(err, lease.ErrLeaseExists) {
		return fmt.Errorf("lock table %s: %w", t.Name(), err)
	}
	return nil
}

// lead is the lock's Process: while h holds the lock, load the history kept on the row, then decide and
// act every interval.
func (s *Scaler) lead(h *lease.Handle) {
	ctx := h.Context()
	log := s.log.With(zap.String("instance_id", s.InstanceID()))
	defer func() {
		s.leading.Store(false)
		s.metrics.leading.Set(0)
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Release(rctx); err != nil && !errors.Is(err, lease.ErrLeaseLost) {
			log.Warn("releasing the lock failed; it expires after the failover time", zap.Error(err))
		}
	}()
	for {
		hist, err := loadHistory(ctx, s.cfg.DynamoDB, s.cfg.Lock.Table, LockKey(s.cfg.Stream))
		if err == nil {
			s.mu.Lock()
			s.hist, s.samples, s.last = hist, nil, ""
			s.mu.Unlock()
			break
		}
		if ctx.Err() != nil {
			return
		}
		if retry.IsPermanent(err) {
			s.fail(err)
			return
		}
		log.Warn("cannot read the scaling history from the lock row; retrying", zap.Error(err))
		if retry.Sleep(ctx, time.Second) != nil {
			return
		}
	}
	s.leading.Store(true)
	s.metrics.leading.Set(1)
	log.Info("holding the lock: this instance scales the stream", zap.Int("calls_24h", len(s.hist.callsSince(s.cfg.Now().Add(-Day)))))
	if err := s.loop(ctx, h); err != nil {
		s.fail(err)
	}
	log.Info("no longer holding the lock", zap.NamedError("cause", context.Cause(ctx)))
}

// loop evaluates now and every interval until ctx ends or a permanent failure (returned).
func (s *Scaler) loop(ctx context.Context, h *lease.Handle) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.evaluate(ctx, h); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// evaluate makes one decision and carries it out. It returns only permanent failures.
func (s *Scaler) evaluate(ctx context.Context, h *lease.Handle) error {
	now := s.cfg.Now()
	st, err := s.stream.State(ctx)
	if err != nil {
		return s.transient(ctx, "describe", err)
	}
	s.metrics.shards.Set(float64(st.OpenShards))
	s.openShards.Store(int64(st.OpenShards))
	if st.OnDemand {
		s.mu.Lock()
		first := !s.onDem
		s.onDem = true
		s.mu.Unlock()
		if first {
			s.log.Info("on-demand stream: Kinesis manages its capacity; left alone (UpdateShardCount is for provisioned streams)")
		}
		s.metrics.evaluations.WithLabelValues(string(Skip)).Inc()
		s.ready.Store(true)
		return nil
	}
	s.mu.Lock()
	s.onDem = false
	hist := s.hist
	s.mu.Unlock()
	s.metrics.calls24h.Set(float64(len(hist.callsSince(now.Add(-Day)))))
	since := now.Add(-s.cfg.Policy.Window() - s.cfg.Interval)
	if l, ok := s.cfg.Source.(interface{ Lag() time.Duration }); ok {
		since = since.Add(-l.Lag()) // its newest sample is that old: the windows end there
	}
	if lr := hist.lastResize(); lr.After(since) {
		since = lr
	}
	fresh, err := s.cfg.Source.Rates(ctx, since, now)
	if err != nil {
		s.metrics.sourceErrors.Inc()
		if ctx.Err() != nil {
			return nil
		}
		// Judge only what was measured without a gap: the windows start again.
		s.mu.Lock()
		s.samples = nil
		s.mu.Unlock()
		s.log.Warn("cannot read the incoming rate; no decision this interval, and the windows start again", zap.Error(err))
		s.ready.Store(false)
		return nil
	}
	s.mu.Lock()
	s.samples = mergeSamples(s.samples, fresh, since)
	samples := slices.Clone(s.samples)
	s.mu.Unlock()

	d := Decide(s.cfg.Policy, st, samples, hist, now)
	if d.Action == Resize {
		d, err = s.resize(ctx, h, d, now)
		if err != nil {
			return err
		}
	}
	s.report(d)
	s.ready.Store(true)
	return nil
}

// resize carries out a Resize decision and records its outcome; the returned decision says what happened.
func (s *Scaler) resize(ctx context.Context, h *lease.Handle, d Decision, now time.Time) (Decision, error) {
	if s.cfg.DryRun {
		d.Reason += " (dry run: not resized)"
		s.record(d, false, now, nil)
		return d, nil
	}
	valid := h.ValidFor()
	if valid <= 0 {
		d.Action, d.Reason = Hold, d.Reason+"; the lock is no longer provably ours: not resized"
		return d, nil
	}
	cctx, cancel := context.WithTimeout(ctx, valid)
	defer cancel()
	err := s.stream.Resize(cctx, d.Wanted)
	switch {
	case err == nil:
		s.metrics.calls.WithLabelValues("ok").Inc()
		s.record(d, false, now, h)
		s.log.Info("resizing the stream", zap.Int("from", d.Shards), zap.Int("to", d.Wanted), zap.String("why", d.Reason))
	case errors.Is(err, ErrRefused):
		s.metrics.calls.WithLabelValues("refused").Inc()
		s.record(d, true, now, h)
		d.Action = Hold
		d.Reason += fmt.Sprintf("; refused by the API (%v): not asked again for %s", errMessage(err), s.cfg.Policy.RefusedHold)
		s.log.Warn("the API refused the resize", zap.Int("from", d.Shards), zap.Int("to", d.Wanted), zap.Error(err))
	case errors.Is(err, ErrBusy):
		s.metrics.calls.WithLabelValues("busy").Inc()
		d.Action, d.Reason = Hold, d.Reason+"; the stream is being changed: asked again at the next interval"
	default:
		s.metrics.calls.WithLabelValues("error").Inc()
		if perr := s.transient(ctx, "update_shard_count", err); perr != nil {
			return d, perr
		}
		d.Action, d.Reason = Hold, d.Reason+fmt.Sprintf("; the call failed (%v): decided again at the next interval", err)
	}
	return d, nil
}

// record adds a resize's outcome to the history, and with h to the lock row (fenced on the ownership).
func (s *Scaler) record(d Decision, refused bool, now time.Time, h *lease.Handle) {
	s.mu.Lock()
	s.hist = s.hist.Record(d, refused, now)
	if !refused {
		s.samples = nil // they measured the old layout
	}
	hist := s.hist
	s.mu.Unlock()
	s.metrics.calls24h.Set(float64(len(hist.callsSince(now.Add(-Day)))))
	if h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(h.ValidFor(), time.Second))
	defer cancel()
	if err := saveHistory(ctx, s.cfg.DynamoDB, s.cfg.Lock.Table, LockKey(s.cfg.Stream), s.InstanceID(), hist); err != nil {
		s.log.Warn("cannot keep the scaling history on the lock row; a next holder would not know of this call", zap.Error(err))
	}
}

// transient returns err when it is permanent (the process should stop), after counting and logging it;
// nil for a transient one.
func (s *Scaler) transient(ctx context.Context, call string, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	s.metrics.errors.WithLabelValues(call).Inc()
	if retry.IsPermanent(err) {
		return err
	}
	s.ready.Store(false)
	s.log.Warn("Kinesis call failed; decided again at the next interval", zap.String("call", call), zap.Error(err))
	return nil
}

// report logs the decision and writes its line: every one in a dry run, otherwise when it changed.
func (s *Scaler) report(d Decision) {
	s.metrics.evaluations.WithLabelValues(string(d.Action)).Inc()
	s.metrics.wanted.Set(float64(d.Wanted))
	if d.Utilisation >= 0 {
		s.metrics.utilisation.Set(d.Utilisation)
	}
	key := string(d.Action) + d.Reason
	s.mu.Lock()
	changed := key != s.last
	s.last = key
	s.mu.Unlock()
	fields := []zap.Field{zap.String("action", string(d.Action)), zap.Float64("utilisation", d.Utilisation),
		zap.Int("shards", d.Shards), zap.Int("wanted", d.Wanted), zap.String("why", d.Reason)}
	if d.Action == None && !changed {
		s.log.Debug("decision", fields...)
	} else {
		s.log.Info("decision", fields...)
	}
	if s.cfg.Decisions != nil && (s.cfg.DryRun || changed || d.Action == Resize) {
		_, _ = fmt.Fprintln(s.cfg.Decisions, d.String())
	}
}

// mergeSamples adds fresh to have, a later value for the same period end replacing the earlier, and keeps
// those that began at or after since, sorted by end.
func mergeSamples(have, fresh []Sample, since time.Time) []Sample {
	out := make([]Sample, 0, len(have)+len(fresh))
	for _, s := range have {
		if !s.Start().Before(since) {
			out = append(out, s)
		}
	}
	for _, f := range fresh {
		if f.Start().Before(since) {
			continue
		}
		if i := slices.IndexFunc(out, func(s Sample) bool { return s.End.Equal(f.End) }); i >= 0 {
			out[i] = f
			continue
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Sample) int { return a.End.Compare(b.End) })
	return out
}

func errMessage(err error) string {
	var api interface{ ErrorMessage() string }
	if errors.As(err, &api) && api.ErrorMessage() != "" {
		return api.ErrorMessage()
	}
	return err.Error()
}

// Attributes the Scaler keeps on its lock row, beside the lease's own (times in Unix milliseconds).
const (
	attrCalls       = "scaleCalls"
	attrLastUp      = "scaleLastUp"
	attrLastDown    = "scaleLastDown"
	attrRefusedUp   = "scaleRefusedUp"
	attrRefusedDown = "scaleRefusedDown"
)

func loadHistory(ctx context.Context, db lease.DynamoDBAPI, table, key string) (History, error) {
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]dtypes.AttributeValue{"leaseKey": &dtypes.AttributeValueMemberS{Value: key}}})
	if err != nil {
		return History{}, fmt.Errorf("read the scaling history from lock table %s: %w", table, err)
	}
	var h History
	ms := func(name string) time.Time {
		if v, ok := out.Item[name].(*dtypes.AttributeValueMemberN); ok {
			var n int64
			if _, err := fmt.Sscan(v.Value, &n); err == nil && n > 0 {
				return time.UnixMilli(n)
			}
		}
		return time.Time{}
	}
	if v, ok := out.Item[attrCalls].(*dtypes.AttributeValueMemberNS); ok {
		for _, s := range v.Value {
			var n int64
			if _, err := fmt.Sscan(s, &n); err == nil {
				h.Calls = append(h.Calls, time.UnixMilli(n))
			}
		}
		slices.SortFunc(h.Calls, func(a, b time.Time) int { return a.Compare(b) })
	}
	h.LastUp, h.LastDown, h.RefusedUp, h.RefusedDown = ms(attrLastUp), ms(attrLastDown), ms(attrRefusedUp), ms(attrRefusedDown)
	return h, nil
}

// saveHistory writes h on the lock row, conditioned on owner holding the lock; the lease's own attributes
// are untouched.
func saveHistory(ctx context.Context, db lease.DynamoDBAPI, table, key, owner string, h History) error {
	names := map[string]string{"#o": "leaseOwner"}
	values := map[string]dtypes.AttributeValue{":me": &dtypes.AttributeValueMemberS{Value: owner}}
	var set, remove []string
	put := func(attr string, t time.Time) {
		if t.IsZero() {
			remove = append(remove, "#"+attr)
		} else {
			set = append(set, "#"+attr+" = :"+attr)
			values[":"+attr] = &dtypes.AttributeValueMemberN{Value: fmt.Sprint(t.UnixMilli())}
		}
		names["#"+attr] = attr
	}
	put(attrLastUp, h.LastUp)
	put(attrLastDown, h.LastDown)
	put(attrRefusedUp, h.RefusedUp)
	put(attrRefusedDown, h.RefusedDown)
	names["#"+attrCalls] = attrCalls
	if len(h.Calls) == 0 {
		remove = append(remove, "#"+attrCalls)
	} else {
		ns := make([]string, 0, len(h.Calls))
		for _, c := range h.Calls {
			if v := fmt.Sprint(c.UnixMilli()); !slices.Contains(ns, v) {
				ns = append(ns, v)
			}
		}
		set = append(set, "#"+attrCalls+" = :calls")
		values[":calls"] = &dtypes.AttributeValueMemberNS{Value: ns}
	}
	expr := ""
	if len(set) > 0 {
		expr = "SET " + strings.Join(set, ", ")
	}
	if len(remove) > 0 {
		expr += " REMOVE " + strings.Join(remove, ", ")
	}
	_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table),
		Key:                      map[string]dtypes.AttributeValue{"leaseKey": &dtypes.AttributeValueMemberS{Value: key}},
		UpdateExpression:         aws.String(strings.TrimSpace(expr)),
		ConditionExpression:      aws.String("#o = :me"),
		ExpressionAttributeNames: names, ExpressionAttributeValues: values})
	if err != nil {
		return fmt.Errorf("keep the scaling history on lock table %s: %w", table, err)
	}
	return nil
}
