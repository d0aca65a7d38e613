package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap"
)

// The leader lock: one item of the coordinator-state table (CoordinatorStateTable), renewed by its holder
// like a lease — a conditional bump of its counter — and taken over by another worker once that worker has
// seen the counter unchanged for the failover time by its own clock. Wall clocks are never compared.
const (
	attrLeaderOwner   = "owner"
	attrLeaderCounter = "leaderCounter"
	leaderItemKey     = "Leader"
)

// elector keeps, or watches, the leader lock for one worker. Its methods are called from one goroutine
// (the coordinator's leader loop) except validFor and isLeader, which are safe for concurrent use.
type elector struct {
	db       DynamoDBAPI
	table    string // the coordinator-state table
	me       string
	failover time.Duration
	clock    Clock
	log      *zap.Logger
	metrics  *metrics

	mu      sync.Mutex
	leader  bool
	counter int64     // leader: the counter we last wrote; otherwise the one last seen
	seenAt  time.Time // not leader: when (our clock) the counter was first seen at its value
	bumpAt  time.Time // leader: when the last successful bump was sent (our clock)
	since   time.Time // leader: when this leadership began
	sawAny  bool      // not leader: whether the lock was ever read
}

// validFor returns how much longer this worker is provably the leader by its own clock: the failover
// time minus the time since its last successful bump was sent, or zero when it is not the leader. No
// other worker takes the lock before that has run out (it waits the failover time from after it read the
// counter, which is after we sent the bump).
func (el *elector) validFor() time.Duration {
	el.mu.Lock()
	defer el.mu.Unlock()
	if !el.leader {
		return 0
	}
	return max(el.failover-el.clock.Now().Sub(el.bumpAt), 0)
}

// isLeader reports whether this worker holds the lock and it is still valid.
func (el *elector) isLeader() bool { return el.validFor() > 0 }

// tick renews the lock when this worker holds it, or watches it and takes it over when its holder is
// gone. Errors are returned for the caller to classify; a lost race is not an error.
func (el *elector) tick(ctx context.Context) error {
	el.mu.Lock()
	leader := el.leader
	el.mu.Unlock()
	if leader {
		return el.renew(ctx)
	}
	return el.watch(ctx)
}

// renew bumps the lock's counter, fenced on owner and counter. A failed condition means another worker
// took the lock: this one steps down.
func (el *elector) renew(ctx context.Context) error {
	el.mu.Lock()
	c := el.counter
	el.mu.Unlock()
	sent := el.clock.Now()
	err := el.update(ctx, "leader_renew", "SET #c = :next", "#o = :me AND #c = :c", c)
	switch {
	case err == nil:
		el.bumped(c+1, sent)
		return nil
	case errors.Is(err, errConditionFailed):
		el.stepDown("the lock was taken by another worker")
		return nil
	}
	if el.validFor() == 0 {
		el.stepDown("not renewed within the failover time")
	}
	return err
}

// watch reads the lock (eventually consistent: every write that acts on it is conditional) and takes it
// when it is free, or when its counter has stayed unchanged for the failover time by this worker's clock.
func (el *elector) watch(ctx context.Context) error {
	out, err := el.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(el.table), Key: el.key()})
	el.metrics.call("leader_read", err)
	if err != nil {
		return fmt.Errorf("lease: read the leader lock in %s: %w", el.table, err)
	}
	now := el.clock.Now()
	if len(out.Item) == 0 {
		return el.create(ctx)
	}
	owner, counter, err := decodeLock(out.Item)
	if err != nil {
		return fmt.Errorf("lease: leader lock in %s: %w", el.table, err)
	}
	el.mu.Lock()
	if !el.sawAny || counter != el.counter {
		el.sawAny, el.counter, el.seenAt = true, counter, now
	}
	expired := owner == "" || owner == el.me || now.Sub(el.seenAt) >= el.failover
	el.mu.Unlock()
	if !expired {
		return nil
	}
	return el.takeOver(ctx, owner, counter)
}

// create writes the lock for the first time, with this worker as its holder.
func (el *elector) create(ctx context.Context) error {
	sent := el.clock.Now()
	_, err := el.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(el.table),
		Item: map[string]types.AttributeValue{attrCoordinatorKey: str(leaderItemKey), attrLeaderOwner: str(el.me),
			attrLeaderCounter: num(1)},
		ConditionExpression:      aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{"#k": attrCoordinatorKey},
	})
	err = classify(err)
	el.metrics.call("leader_take", err)
	switch {
	case err == nil:
		el.becameLeader(1, sent, "")
		return nil
	case errors.Is(err, errConditionFailed):
		return nil // another worker created it first
	}
	return fmt.Errorf("lease: create the leader lock in %s: %w", el.table, err)
}

// takeOver takes the lock from a holder that is gone (or from nobody), fenced on the counter it saw.
func (el *elector) takeOver(ctx context.Context, prev string, counter int64) error {
	sent := el.clock.Now()
	err := el.update(ctx, "leader_take", "SET #c = :next, #o = :me", "#c = :c", counter)
	switch {
	case err == nil:
		el.becameLeader(counter+1, sent, prev)
		return nil
	case errors.Is(err, errConditionFailed):
		return nil // it changed meanwhile: its holder is alive, or another worker won
	}
	return err
}

// release gives the lock up at shutdown, so another worker takes it at its next watch instead of after the
// failover time.
func (el *elector) release(ctx context.Context) error {
	el.mu.Lock()
	leader, c := el.leader, el.counter
	el.leader = false
	el.mu.Unlock()
	if !leader {
		return nil
	}
	el.metrics.leader.Set(0)
	err := el.update(ctx, "leader_release", "SET #c = :next REMOVE #o", "#o = :me AND #c = :c", c)
	if errors.Is(err, errConditionFailed) {
		return nil
	}
	return err
}

// update applies a conditional UpdateItem to the lock; :me, :c (the counter the condition expects) and
// :next (counter + 1) are bound.
func (el *elector) update(ctx context.Context, call, expr, cond string, counter int64) error {
	_, err := el.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(el.table),
		Key:                      el.key(),
		UpdateExpression:         aws.String(expr),
		ConditionExpression:      aws.String(cond),
		ExpressionAttributeNames: map[string]string{"#o": attrLeaderOwner, "#c": attrLeaderCounter},
		ExpressionAttributeValues: map[string]types.AttributeValue{":me": str(el.me), ":c": num(counter),
			":next": num(counter + 1)},
	})
	err = classify(err)
	el.metrics.call(call, err)
	if err != nil {
		return fmt.Errorf("lease: %s in %s: %w", call, el.table, err)
	}
	return nil
}

func (el *elector) key() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrCoordinatorKey: str(leaderItemKey)}
}

func (el *elector) bumped(counter int64, sent time.Time) {
	el.mu.Lock()
	defer el.mu.Unlock()
	el.counter, el.bumpAt = counter, sent
}

func (el *elector) becameLeader(counter int64, sent time.Time, prev string) {
	el.mu.Lock()
	el.leader, el.counter, el.bumpAt, el.since = true, counter, sent, sent
	el.mu.Unlock()
	el.metrics.leader.Set(1)
	el.metrics.leaderTakes.Inc()
	el.log.Info("became the leader", zap.String("previous", prev), zap.Int64("leader_counter", counter))
}

func (el *elector) stepDown(why string) {
	el.mu.Lock()
	was := el.leader
	el.leader, el.sawAny = false, false
	el.mu.Unlock()
	if was {
		el.metrics.leader.Set(0)
		el.log.Warn("no longer the leader", zap.String("reason", why))
	}
}

// decodeLock reads the lock item's owner (empty when released) and counter.
func decodeLock(item map[string]types.AttributeValue) (owner string, counter int64, err error) {
	if v, ok := item[attrLeaderOwner].(*types.AttributeValueMemberS); ok {
		owner = v.Value
	}
	v, ok := item[attrLeaderCounter].(*types.AttributeValueMemberN)
	if !ok {
		return "", 0, fmt.Errorf("no %s", attrLeaderCounter)
	}
	counter, err = strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w", attrLeaderCounter, v.Value, err)
	}
	return owner, counter, nil
}
