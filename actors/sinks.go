package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// Kinesis and DynamoDB batch limits.
const (
	maxPutRecords      = 500
	maxPutRecordsBytes = 5 << 20
	maxBatchWrite      = 25
)

// putRecords puts recs on stream and keeps each partition key's order: calls sharing a key are made
// one after another, all others WriteConcurrency at a time (planPuts), and each call is repeated until
// every record of it is stored (putCall).
func (sh *shardShared) putRecords(ctx context.Context, stream, kind string, recs []outRecord) error {
	if len(recs) == 0 {
		return nil
	}
	lanes := planPuts(recs)
	return parallel(len(lanes), sh.f.cfg.WriteConcurrency, func(i int) error {
		for _, call := range lanes[i] {
			if err := sh.putCall(ctx, stream, kind, call); err != nil {
				return err
			}
		}
		return nil
	})
}

// putCall stores one call's records with PutRecords attempts that send what the call's putQueue still
// has to store, until it is empty. An attempt that stored nothing is retried with the growing backoff of
// every write; one that stored some records and failed others made progress, but the shard's limits are
// what refused the rest: the pauses between such attempts double from RetryBackoff up to a second (the
// window of Kinesis' per-shard limits), so a throttled output stream is not sent the same entries again
// and again within the window that refuses them.
func (sh *shardShared) putCall(ctx context.Context, stream, kind string, call []outRecord) error {
	q := newPutQueue(call)
	partialPause := retry.Backoff{Initial: sh.f.cfg.RetryBackoff, Max: min(sh.f.cfg.MaxBackoff, time.Second)}
	for !q.empty() {
		var partial error
		err := sh.write(ctx, "PutRecords "+stream, func(ctx context.Context) error {
			stored, err := sh.putAttempt(ctx, stream, q)
			sh.f.m.effects.WithLabelValues(kind).Add(float64(stored))
			if stored > 0 && err != nil && !errors.Is(err, lease.ErrLeaseLost) {
				partial, err = err, nil
			}
			return err
		})
		switch {
		case err != nil:
			return err
		case partial != nil:
			sh.f.m.errors.WithLabelValues("write").Inc()
			sh.log.Info("sending the failed entries of a partly stored PutRecords call again", zap.String("stream", stream), zap.Error(partial))
			if err := retry.Sleep(ctx, partialPause.Next()); err != nil {
				return err
			}
		}
	}
	return nil
}

// putAttempt sends q's next entries in one PutRecords call and returns how many records it stored for
// good; the error says what failed, nil when q is empty now.
func (sh *shardShared) putAttempt(ctx context.Context, stream string, q *putQueue) (int, error) {
	sent := q.next()
	entries := make([]ktypes.PutRecordsRequestEntry, len(sent))
	for j, r := range sent {
		entries[j] = ktypes.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.key)}
	}
	out, err := sh.f.cfg.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	if err != nil {
		return 0, fmt.Errorf("PutRecords %s (%d records): %w", stream, len(entries), err)
	}
	if len(out.Records) != len(entries) {
		return 0, fmt.Errorf("PutRecords %s: %d results for %d records", stream, len(out.Records), len(entries))
	}
	failed := make([]bool, len(entries))
	n, code := 0, ""
	for j, res := range out.Records {
		if res.ErrorCode != nil {
			failed[j] = true
			n++
			code = aws.ToString(res.ErrorCode) + ": " + aws.ToString(res.ErrorMessage)
		}
	}
	stored := q.done(failed)
	if n > 0 {
		return stored, fmt.Errorf("PutRecords %s: %d of %d records failed (%s); %d records of their partition keys to send again",
			stream, n, len(entries), code, q.len())
	}
	return stored, nil
}

// putQueue is what one PutRecords call still has to store, by partition key: each key's records in
// their order, the first of them not yet stored. An attempt sends every key's records at once
// (next), except for keys that saw a failed entry: Kinesis stores the entries after a failed one, so
// a later record of that key may be on the stream ahead of it. Such a key keeps, from the failed
// entry on, every record of its (the stored ones too: stored again behind it, the last copy of each
// of its records is in the key's order), and from then on sends a window of them per attempt: one,
// doubling after each attempt in which none of the key's entries failed, back to one when one did —
// so a key meeting repeated failures (a throttled shard) is sent again a few copies at a time, not
// its whole remainder each time.
type putQueue struct {
	keys []keyQueue
}

// keyQueue is one partition key's part of a putQueue.
type keyQueue struct {
	recs   []outRecord // not known to be stored for good, in the key's order
	window int         // records per attempt; 0: all
	sent   int         // sent by the attempt under way
}

// newPutQueue returns the queue of a call's records (each key's records together: planPuts).
func newPutQueue(call []outRecord) *putQueue {
	q := &putQueue{}
	for i := 0; i < len(call); {
		j := i + 1
		for j < len(call) && call[j].key == call[i].key {
			j++
		}
		q.keys = append(q.keys, keyQueue{recs: call[i:j:j]})
		i = j
	}
	return q
}

// empty reports whether every record is stored.
func (q *putQueue) empty() bool { return len(q.keys) == 0 }

// len returns how many records are still to send.
func (q *putQueue) len() int {
	n := 0
	for i := range q.keys {
		n += len(q.keys[i].recs)
	}
	return n
}

// next returns the entries of the next attempt, in the keys' order.
func (q *putQueue) next() []outRecord {
	var out []outRecord
	for i := range q.keys {
		k := &q.keys[i]
		k.sent = len(k.recs)
		if k.window > 0 {
			k.sent = min(k.sent, k.window)
		}
		out = append(out, k.recs[:k.sent]...)
	}
	return out
}

// done takes the outcome of the attempt that sent next's entries (failed[j]: entry j was not stored)
// and returns how many records are stored for good.
func (q *putQueue) done(failed []bool) int {
	stored, j := 0, 0
	keep := q.keys[:0]
	for _, k := range q.keys {
		first := -1
		for e := range k.sent {
			if failed[j+e] && first < 0 {
				first = e
			}
		}
		j += k.sent
		switch {
		case first < 0:
			stored += k.sent
			k.recs = k.recs[k.sent:]
			if k.window > 0 {
				k.window *= 2
			}
		default:
			stored += first
			k.recs, k.window = k.recs[first:], 1
		}
		if len(k.recs) > 0 {
			keep = append(keep, k)
		}
	}
	q.keys = keep
	return stored
}

// planPuts arranges recs in PutRecords calls that keep each partition key's records in their order
// while different keys travel in parallel. The records are grouped by key (each key's in its order, the
// keys in the order they first appear) and whole groups are packed into calls of at most maxPutRecords
// records and maxPutRecordsBytes; a group that does not fit in the call being filled starts the next
// one, and a group too large for any call continues over consecutive calls. It returns lanes: each a
// sequence of calls to make one after another (the calls a group continues over); two lanes share no
// key, so they may be in flight at once.
func planPuts(recs []outRecord) [][][]outRecord {
	recs = groupByKey(recs)
	var (
		lanes [][][]outRecord
		lane  [][]outRecord
		start int // the call being filled is recs[start:i]
		bytes int
	)
	endCall := func(end int, endLane bool) {
		if end > start {
			lane = append(lane, recs[start:end:end])
			start, bytes = end, 0
		}
		if endLane && len(lane) > 0 {
			lanes = append(lanes, lane)
			lane = nil
		}
	}
	for i := 0; i < len(recs); {
		j, groupBytes := i, 0
		for ; j < len(recs) && recs[j].key == recs[i].key; j++ {
			groupBytes += putSize(recs[j])
		}
		if i-start+j-i > maxPutRecords || bytes+groupBytes > maxPutRecordsBytes {
			endCall(i, true)
		}
		for ; i < j; i++ { // the group, continuing in the next call (same lane) where it does not fit
			if size := putSize(recs[i]); i > start && (i-start == maxPutRecords || bytes+size > maxPutRecordsBytes) {
				endCall(i, false)
			}
			bytes += putSize(recs[i])
		}
	}
	endCall(len(recs), true)
	return lanes
}

// putSize is what a record counts toward a PutRecords call's size limit.
func putSize(r outRecord) int { return len(r.data) + len(r.key) }

// groupByKey returns recs with each partition key's records together, in their order, the keys in the
// order they first appear: recs itself when they are so already, otherwise a new slice.
func groupByKey(recs []outRecord) []outRecord {
	group := make(map[string]int, 64)
	ids := make([]int, len(recs))
	var counts []int
	for i := range recs {
		g, ok := group[recs[i].key]
		if !ok {
			g = len(counts)
			group[recs[i].key] = g
			counts = append(counts, 0)
		}
		ids[i] = g
		counts[g]++
	}
	if slices.IsSorted(ids) {
		return recs
	}
	next := make([]int, len(counts)) // where each group's next record goes
	for g, sum := 1, 0; g < len(counts); g++ {
		sum += counts[g-1]
		next[g] = sum
	}
	out := make([]outRecord, len(recs))
	for i := range recs {
		out[next[ids[i]]] = recs[i]
		next[ids[i]]++
	}
	return out
}

// sessionItem is a session row with absolute values (PutItem semantics).
func sessionItem(s *messages.Session, updatedMs int64) map[string]dtypes.AttributeValue {
	num := func(v int64) dtypes.AttributeValue {
		return &dtypes.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	str := func(v string) dtypes.AttributeValue { return &dtypes.AttributeValueMemberS{Value: v} }
	return map[string]dtypes.AttributeValue{
		"session_id": str(s.SessionID), "user_id": str(s.UserID), "device_type": str(s.DeviceType),
		"session_time": str(s.SessionTime), "start_ms": num(s.StartMs), "last_event_ms": num(s.LastEventMs),
		"event_count": num(s.EventCount), "updated_ms": num(updatedMs),
	}
}

// writeSessions writes the session rows with BatchWriteItem, 25 per call, retrying UnprocessedItems.
// A session id appearing twice keeps its last values (a request must not repeat a key).
func (sh *shardShared) writeSessions(ctx context.Context, sessions []messages.Session) error {
	if len(sessions) == 0 {
		return nil
	}
	uniq := sessions
	at := make(map[string]int, len(sessions))
	for i := range sessions {
		if _, ok := at[sessions[i].SessionID]; ok {
			uniq = nil // a repeat: build the list of last values below
			break
		}
		at[sessions[i].SessionID] = i
	}
	if uniq == nil {
		clear(at)
		uniq = make([]messages.Session, 0, len(sessions))
		for _, s := range sessions {
			if i, ok := at[s.SessionID]; ok {
				uniq[i] = s
				continue
			}
			at[s.SessionID] = len(uniq)
			uniq = append(uniq, s)
		}
	}
	updated := sh.f.cfg.Now().UnixMilli()
	table := sh.f.cfg.SessionsTable
	n := (len(uniq) + maxBatchWrite - 1) / maxBatchWrite
	return parallel(n, sh.f.cfg.WriteConcurrency, func(i int) error {
		part := uniq[i*maxBatchWrite : min(len(uniq), (i+1)*maxBatchWrite)]
		reqs := make([]dtypes.WriteRequest, len(part))
		for j := range part {
			reqs[j] = dtypes.WriteRequest{PutRequest: &dtypes.PutRequest{Item: sessionItem(&part[j], updated)}}
		}
		return sh.write(ctx, "BatchWriteItem "+table, func(ctx context.Context) error {
			out, err := sh.f.cfg.DynamoDB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]dtypes.WriteRequest{table: reqs}})
			if err != nil {
				return fmt.Errorf("BatchWriteItem %s (%d sessions): %w", table, len(reqs), err)
			}
			left := out.UnprocessedItems[table]
			sh.f.m.effects.WithLabelValues("session").Add(float64(len(reqs) - len(left)))
			sh.f.m.sessionWrites.Add(float64(len(reqs) - len(left)))
			sh.f.rowWrites.Add(int64(len(reqs) - len(left)))
			if len(left) > 0 {
				reqs = left
				return fmt.Errorf("BatchWriteItem %s: %d items unprocessed", table, len(left))
			}
			return nil
		})
	})
}

// stateTxUsers is how many users' state one transaction writes: enough that its two round trips are
// small beside the writes, few enough that one EXEC holds Redis for about a millisecond.
const stateTxUsers = 256

// checkFence reads the shard's fence in tx (after its WATCH): nil when it is not set or not above this
// holding period's epoch; errFenced when it is above; a permanent error naming the key when it is no
// lease counter.
func (sh *shardShared) checkFence(ctx context.Context, tx *redis.Tx, fenceKey string) error {
	v, err := tx.Get(ctx, fenceKey).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil
	case err != nil:
		return err
	}
	fence, err := parseFence(fenceKey, v)
	if err != nil {
		return err
	}
	if fence > sh.epoch {
		return fmt.Errorf("%w (%s is %d, above this holding period's lease counter %d)", errFenced, fenceKey, fence, sh.epoch)
	}
	return nil
}

// writeState writes the users' state and their place in the shard's lagging-rows set (where it may have
// changed: userEffects.setLags) in transactions of stateTxUsers users, WriteConcurrency at a time. Each
// transaction watches the shard's fence and runs only if the fence is not above this holding period's epoch: no newer owner has
// started (it raises the fence before it reads any state), and none can until the EXEC, which Redis
// refuses if the fence changed meanwhile. So within a holding period only this writer writes the
// shard's users, in flush order, and the probe has already dropped every user whose stored position
// is at or beyond the flushed one: the state never moves backwards, and a deposed owner's write,
// however late it arrives, never lands once a newer owner started.
func (sh *shardShared) writeState(ctx context.Context, users []userEffects) error {
	rowsKey, fenceKey := session.LaggingRowsKey(sh.f.cfg.Prefix, sh.shard), session.FenceKey(sh.f.cfg.Prefix, sh.shard)
	var idx []int
	for i := range users {
		if !users[i].pos.IsZero() {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	fieldArg := any(session.PositionField(sh.shard))
	n := (len(idx) + stateTxUsers - 1) / stateTxUsers
	err := parallel(n, sh.f.cfg.WriteConcurrency, func(k int) error {
		part := idx[k*stateTxUsers : min(len(idx), (k+1)*stateTxUsers)]
		return sh.write(ctx, "write user state", func(ctx context.Context) error {
			err := sh.f.cfg.Redis.Watch(ctx, func(tx *redis.Tx) error {
				if err := sh.checkFence(ctx, tx, fenceKey); err != nil {
					return err
				}
				_, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
					// One argument array for the transaction's HSETs, boxed once where it can be.
					size := 0
					for _, i := range part {
						size += 4 + len(users[i].fields)
					}
					args := make([]any, 0, size)
					for _, i := range part {
						u := &users[i]
						start := len(args)
						key := u.key
						if key == "" { // positions not read
							key = session.UserKey(sh.f.cfg.Prefix, u.user)
						}
						args = append(args, "HSET", key)
						if !u.rowOnly {
							args = append(args, fieldArg, u.pos.Encode())
						}
						args = append(args, u.fields...)
						pipe.Do(ctx, args[start:len(args):len(args)]...)
						switch {
						case !u.setLags:
						case u.lags:
							pipe.SAdd(ctx, rowsKey, u.user)
						default:
							pipe.SRem(ctx, rowsKey, u.user)
						}
					}
					return nil
				})
				return err
			}, fenceKey)
			if errors.Is(err, redis.TxFailedErr) {
				return fmt.Errorf("write %d users' state: the shard's fence %s changed during the transaction", len(part), fenceKey)
			}
			if err != nil && !errors.Is(err, lease.ErrLeaseLost) {
				return fmt.Errorf("write %d users' state: %w", len(part), err)
			}
			return err
		})
	})
	if err == nil {
		sh.f.m.effects.WithLabelValues("state").Add(float64(len(idx)))
	}
	return err
}
