package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// Kinesis and DynamoDB batch limits.
const (
	maxPutRecords      = 500
	maxPutRecordsBytes = 5 << 20
	maxBatchWrite      = 25
)

// putRecords puts recs on stream in calls of at most 500 records and 5 MiB, retrying failed entries.
func (sh *shardShared) putRecords(ctx context.Context, stream, kind string, recs []outRecord) error {
	if len(recs) == 0 {
		return nil
	}
	var chunks [][]outRecord
	for start := 0; start < len(recs); {
		end, size := start, 0
		for end < len(recs) && end-start < maxPutRecords && (end == start || size+len(recs[end].data)+len(recs[end].key) <= maxPutRecordsBytes) {
			size += len(recs[end].data) + len(recs[end].key)
			end++
		}
		chunks = append(chunks, recs[start:end])
		start = end
	}
	return parallel(len(chunks), sh.f.cfg.WriteConcurrency, func(i int) error {
		left := chunks[i]
		return sh.write(ctx, "PutRecords "+stream, func(ctx context.Context) error {
			entries := make([]ktypes.PutRecordsRequestEntry, len(left))
			for j, r := range left {
				entries[j] = ktypes.PutRecordsRequestEntry{Data: r.data, PartitionKey: aws.String(r.key)}
			}
			out, err := sh.f.cfg.Kinesis.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
			if err != nil {
				return fmt.Errorf("PutRecords %s (%d records): %w", stream, len(entries), err)
			}
			var failed []outRecord
			var code string
			for j, res := range out.Records {
				if res.ErrorCode != nil {
					failed = append(failed, left[j])
					code = aws.ToString(res.ErrorCode) + ": " + aws.ToString(res.ErrorMessage)
				}
			}
			sh.f.m.effects.WithLabelValues(kind).Add(float64(len(left) - len(failed)))
			left = failed
			if len(failed) > 0 {
				return fmt.Errorf("PutRecords %s: %d of %d records failed (%s)", stream, len(failed), len(entries), code)
			}
			return nil
		})
	})
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
				v, err := tx.Get(ctx, fenceKey).Result()
				if err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				if fence, _ := strconv.ParseInt(v, 10, 64); err == nil && fence > sh.epoch {
					return fmt.Errorf("%w (%s is %d, above this holding period's lease counter %d)", errFenced, fenceKey, fence, sh.epoch)
				}
				_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
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
