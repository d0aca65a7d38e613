package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/replicawait"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/lease/position"
	"github.com/clickfleet/clickfleet/messages"
)

var (
	positionsScript = redis.NewScript(session.PositionsScript)
	fenceScript     = redis.NewScript(session.FenceScript)
)

// retry runs fn until it succeeds, the context ends, fn returns an error matching lease.ErrLeaseLost or a
// permanent error (retry.IsPermanent: a missing table or stream, a denied call, a failing script), pausing
// with capped exponential backoff and jitter between attempts. While it waits after a transient error the
// factory is not Ready.
func (sh *shardShared) retry(ctx context.Context, what string, fn func() error) error {
	cfg := &sh.f.cfg
	waiting := false
	defer func() {
		if waiting {
			sh.f.retrying.Add(-1)
			sh.f.m.retrying.Dec()
		}
	}()
	return retry.Do(ctx, retry.Policy{
		Backoff: retry.Backoff{Initial: cfg.RetryBackoff, Max: cfg.MaxBackoff},
		Stop:    func(err error) bool { return errors.Is(err, lease.ErrLeaseLost) },
		OnRetry: func(attempt int, pause time.Duration, err error) {
			if !waiting {
				waiting = true
				sh.f.retrying.Add(1)
				sh.f.m.retrying.Inc()
			}
			sh.f.m.errors.WithLabelValues("write").Inc()
			lvl := sh.log.Warn
			if attempt == 1 {
				lvl = sh.log.Info
			}
			lvl("retrying after an error", zap.String("op", what), zap.Int("attempt", attempt), zap.Duration("backoff", pause), zap.Error(err))
		},
	}, func(context.Context) error { return fn() })
}

// write is retry for the writes a deposed owner must not make: every attempt (see attempt) starts only
// while the lease is provably this worker's and is bounded by that validity.
func (sh *shardShared) write(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	return sh.retry(ctx, what, func() error { return sh.attempt(ctx, fn) })
}

// attempt runs fn once, only while the lease is provably this worker's (consumer.InitInput.ValidFor),
// with a context bounded by that validity; once it is zero, attempt returns an error matching
// lease.ErrLeaseLost without calling fn.
func (sh *shardShared) attempt(ctx context.Context, fn func(ctx context.Context) error) error {
	if sh.validFor == nil {
		return fn(ctx)
	}
	vf := sh.validFor()
	if vf <= 0 {
		return errDeposed
	}
	actx, cancel := context.WithTimeout(ctx, vf)
	defer cancel()
	err := fn(actx)
	if err != nil && actx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("the lease's validity (%s) ran out during the attempt: %w", vf, err)
	}
	return err
}

// waitReplicas waits once, within the lease's validity, until Config.WaitReplicas replicas acknowledged
// every write Redis applied before it (replicawait.Wait, which writes value at the shard's ack key),
// at most Config.WaitTimeout. It counts the result and warns when fewer replicas acknowledged.
func (sh *shardShared) waitReplicas(ctx context.Context, value string) error {
	cfg := &sh.f.cfg
	return sh.attempt(ctx, func(ctx context.Context) error {
		acked, err := replicawait.Wait(ctx, cfg.Redis, replicawait.Key(cfg.Prefix, sh.shard), value, cfg.WaitReplicas, cfg.WaitTimeout)
		switch {
		case err == nil:
			sh.f.m.replicaWaits.WithLabelValues("acknowledged").Inc()
		case errors.Is(err, replicawait.ErrNotAcknowledged):
			sh.f.m.replicaWaits.WithLabelValues("short").Inc()
			sh.log.Warn("fewer Redis replicas than required acknowledged the shard's state in time: no checkpoint past it; it is written again",
				zap.Int("replicas", cfg.WaitReplicas), zap.Int("acknowledged", acked), zap.Duration("timeout", cfg.WaitTimeout), zap.String("durable_up_to", value))
		default:
			sh.f.m.replicaWaits.WithLabelValues("failed").Inc()
		}
		return err
	})
}

// resource names the output a permanent error concerns, so that the worker's error says which setting
// to fix; other errors are returned as they are.
func resource(setting, kind, name string, err error) error {
	if err == nil || !retry.IsPermanent(err) {
		return err
	}
	return &consumer.ResourceError{Setting: setting, Kind: kind, Name: name, Err: err}
}

// loadUsers reads the users' hashes with one pipeline, retrying until it succeeds or ctx ends.
func (sh *shardShared) loadUsers(ctx context.Context, ids []string) ([]map[string]string, error) {
	out := make([]map[string]string, len(ids))
	err := sh.retry(ctx, "load users", func() error {
		pipe := sh.f.cfg.Redis.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.HGetAll(ctx, session.UserKey(sh.f.cfg.Prefix, id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("HGETALL %d users: %w", len(ids), err)
		}
		for i, c := range cmds {
			out[i] = c.Val()
		}
		return nil
	})
	if err != nil {
		sh.f.m.errors.WithLabelValues("load").Inc()
	}
	return out, err
}

// laggingRows reads the shard's set of users whose session rows lag (session.LaggingRowsKey), retrying
// until it succeeds or ctx ends.
func (sh *shardShared) laggingRows(ctx context.Context) ([]string, error) {
	var ids []string
	err := sh.retry(ctx, "read lagging rows", func() error {
		pipe := sh.f.cfg.Redis.Pipeline()
		c := pipe.SMembers(ctx, session.LaggingRowsKey(sh.f.cfg.Prefix, sh.shard))
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("SMEMBERS %s: %w", session.LaggingRowsKey(sh.f.cfg.Prefix, sh.shard), err)
		}
		ids = c.Val()
		return nil
	})
	return ids, err
}

// writeFlush writes one barrier's effects — guard probe, outputs, sessions, state, in that order — then
// checkpoints its position. It returns only when all is done, or with the reason it stopped (the holding
// period ended, or the lease was lost): every other failure is retried.
func (sh *shardShared) writeFlush(ctx context.Context, fs *flushState, cp consumer.Checkpointer, n int) error {
	start := time.Now()
	users, err := sh.probe(ctx, fs)
	if err != nil {
		return resource("Redis", "Redis user state", sh.f.cfg.Prefix+"user:*", err)
	}
	cfg := &sh.f.cfg
	streams := cfg.routes.Streams()
	outs := make(map[string][]outRecord, len(streams))
	nRows := 0
	for i := range users {
		nRows += len(users[i].rows)
	}
	sessions := make([]messages.Session, 0, nRows)
	for i := range users {
		u := &users[i]
		for _, o := range u.outputs {
			stream := cfg.routes.Route(o.route).Stream
			outs[stream] = append(outs[stream], outRecord{key: u.user, data: o.data})
		}
		sessions = append(sessions, u.rows...)
	}
	for _, stream := range streams {
		if err := sh.putRecords(ctx, stream, "offer", outs[stream]); err != nil {
			if len(cfg.Routes) == 0 {
				return resource("OffersStream", "offers stream", stream, err)
			}
			return resource("Routes", "route output stream", stream, err)
		}
	}
	if err := sh.putRecords(ctx, cfg.ErrorsStream, "error_record", fs.errs); err != nil {
		return resource("ErrorsStream", "errors stream", cfg.ErrorsStream, err)
	}
	if err := sh.writeSessions(ctx, sessions); err != nil {
		return resource("SessionsTable", "sessions table", cfg.SessionsTable, err)
	}
	if err := sh.writeDurableState(ctx, users, fs.upTo); err != nil {
		return resource("Redis", "Redis user state", cfg.Prefix+"user:*", err)
	}
	if hook := sh.f.cfg.AfterFlush; hook != nil {
		hook(FlushInfo{ShardID: sh.shard, N: n, UpTo: fs.upTo, Users: fs.nUsersAsked, Records: fs.records,
			Barrier: fs.barrier, Write: time.Since(start)})
	}
	if sh.f.crash != nil {
		sh.f.crash()
	}
	if fs.upTo.IsZero() || fs.upTo.Compare(sh.checkpointed) <= 0 || cp == nil {
		return nil
	}
	err = sh.retry(ctx, "checkpoint", func() error { return cp.Checkpoint(ctx, fs.upTo.SequenceNumber, fs.upTo.SubSequence) })
	if err != nil {
		return err
	}
	sh.checkpointed = fs.upTo
	return nil
}

// writeDurableState writes the users' state (writeState) and, with Config.WaitReplicas set, makes it
// durable before the flush goes on to its checkpoint at upTo: it waits until that many replicas
// acknowledged it and, when fewer do in time or the wait fails, writes the state again and waits again,
// after a backoff, until they do or the holding period ends. The state is written again, not only waited
// for: the primary that took the first write may have failed over to a replica that never received it.
// Writing it again is harmless: the same fields with the same values, in transactions under the same
// fence, and no one else writes these users during the holding period.
func (sh *shardShared) writeDurableState(ctx context.Context, users []userEffects, upTo position.Position) error {
	if sh.f.cfg.WaitReplicas == 0 {
		return sh.writeState(ctx, users)
	}
	return sh.retry(ctx, "write user state durably", func() error {
		if err := sh.writeState(ctx, users); err != nil {
			return err
		}
		return sh.waitReplicas(ctx, upTo.Encode())
	})
}

// probe drops the users whose stored position on this shard is at or beyond the flushed one: whoever
// stored it wrote their sessions and outputs first, so these effects are a deposed owner's or a
// duplicate. A row-only effect (nothing applied, the session row's state changed) is kept only while
// the stored position is still its own. Users with nothing to write are dropped too. The stale users are
// listed in fs.stale.
//
// It first reads the shard's fence. Above this holding period's epoch, a newer owner started: the flush
// stops as lease lost before it writes anything. Equal to a non-zero epoch, no one else can have stored
// a position for this shard's users since this holding period raised the fence (before it read any
// state; an older owner's transactions are refused since, a newer one would have raised it), so every
// stored position is one this holding period read or wrote, which its users already skip past: nothing is
// stale and the users' positions are not read. Otherwise (no lease counter, or a fence lost with a Redis
// restart) the positions are read with session.PositionsScript, PositionsUsers users a call, in one
// pipeline.
func (sh *shardShared) probe(ctx context.Context, fs *flushState) ([]userEffects, error) {
	users := fs.users
	fs.stale = fs.stale[:0]
	if sh.epoch > 0 {
		fence, err := sh.readFence(ctx)
		if err != nil {
			return nil, err
		}
		if fence > sh.epoch {
			return nil, fmt.Errorf("%w (%s is %d, above this holding period's lease counter %d)", errFenced, session.FenceKey(sh.f.cfg.Prefix, sh.shard), fence, sh.epoch)
		}
		if fence == sh.epoch {
			keep := users[:0]
			for i := range users {
				if u := &users[i]; !u.pos.IsZero() || len(u.rows) > 0 {
					keep = append(keep, *u)
				}
			}
			clear(users[len(keep):])
			fs.users = keep
			return keep, nil
		}
	}
	field := session.PositionField(sh.shard)
	stored := make([]position.Position, len(users))
	var calls []scriptCall
	var at [][]int // the users of each call
	for i := range users {
		if users[i].pos.IsZero() {
			continue
		}
		if len(calls) == 0 || len(at[len(at)-1]) == session.PositionsUsers {
			calls = append(calls, scriptCall{args: []any{field}})
			at = append(at, make([]int, 0, session.PositionsUsers))
		}
		c := &calls[len(calls)-1]
		users[i].key = session.UserKey(sh.f.cfg.Prefix, users[i].user) // the state write's too
		c.keys = append(c.keys, users[i].key)
		at[len(at)-1] = append(at[len(at)-1], i)
	}
	nRead := 0
	for _, c := range calls {
		nRead += len(c.keys)
	}
	sh.f.m.positionsRead.Add(float64(nRead))
	err := sh.write(ctx, "guard probe", func(ctx context.Context) error {
		cmds, err := sh.runScripts(ctx, positionsScript, session.PositionsScript, calls)
		if err != nil {
			return fmt.Errorf("read %d users' positions: %w", len(users), err)
		}
		for k, c := range cmds {
			vals, err := c.Slice()
			if err == nil && len(vals) != len(at[k]) {
				err = fmt.Errorf("%d positions for %d users", len(vals), len(at[k]))
			}
			if err != nil {
				return fmt.Errorf("read users' positions: %w", err)
			}
			for j, v := range vals {
				i := at[k][j]
				s, _ := v.(string)
				if stored[i], err = position.Decode(s); err != nil {
					return retry.Permanent(fmt.Errorf("user %s: %w", users[i].user, err))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	keep := users[:0]
	for i := range users {
		u := &users[i]
		if u.pos.IsZero() {
			if len(u.rows) > 0 {
				keep = append(keep, *u) // rows without state to write (cannot happen today; keep them)
			}
			continue
		}
		cmp := stored[i].Compare(u.pos)
		if (u.rowOnly && cmp != 0) || (!u.rowOnly && !stored[i].IsZero() && cmp >= 0) {
			fs.stale = append(fs.stale, u.user)
			continue
		}
		keep = append(keep, *u)
	}
	clear(users[len(keep):])
	fs.users = keep
	if n := len(fs.stale); n > 0 {
		sh.f.m.effects.WithLabelValues("stale").Add(float64(n))
		sh.log.Info("dropped effects of users already written beyond this flush (a deposed owner's late flush, or a duplicate)", zap.Int("users", n))
	}
	return keep, nil
}

// scriptCall is one call of a script: its keys and arguments.
type scriptCall struct {
	keys []string
	args []any
}

// runScripts runs calls of script (whose source is src) with EVALSHA in one pipeline; when Redis does not
// know the script (a new or restarted server) it loads it and runs the calls again (for read-only
// scripts, such as the probe's).
func (sh *shardShared) runScripts(ctx context.Context, script *redis.Script, src string, calls []scriptCall) ([]*redis.Cmd, error) {
	if len(calls) == 0 {
		return nil, nil
	}
	run := func() ([]*redis.Cmd, error) {
		pipe := sh.f.cfg.Redis.Pipeline()
		cmds := make([]*redis.Cmd, len(calls))
		for i, c := range calls {
			cmds[i] = script.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = sh.f.cfg.Redis.ScriptLoad(ctx, src).Err(); err == nil {
			cmds, err = run()
		}
	}
	return cmds, err
}

// parallel runs fn(i) for i in [0, n) on at most limit goroutines and returns the first error.
func parallel(n, limit int, fn func(i int) error) error {
	if n == 1 || limit <= 1 {
		for i := 0; i < n; i++ {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := 0; w < min(n, limit); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
