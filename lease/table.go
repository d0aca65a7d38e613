package lease

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap"
)

// DynamoDBAPI holds exactly the DynamoDB client methods this package uses.
// *dynamodb.Client implements it.
type DynamoDBAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	DeleteTable(ctx context.Context, in *dynamodb.DeleteTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteTableOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Attribute names of the Java KCL's lease table (DynamoDBLeaseSerializer).
const (
	attrKey                = "leaseKey"
	attrOwner              = "leaseOwner"
	attrCounter            = "leaseCounter"
	attrCheckpoint         = "checkpoint"
	attrCheckpointSub      = "checkpointSubSequenceNumber"
	attrOwnerSwitches      = "ownerSwitchesSinceCheckpoint"
	attrPending            = "pendingCheckpoint"
	attrPendingSub         = "pendingCheckpointSubSequenceNumber"
	attrPendingState       = "pendingCheckpointState"
	attrParents            = "parentShardId"
	attrChildren           = "childShardIds"
	attrStartingHashKey    = "startingHashKey"
	attrEndingHashKey      = "endingHashKey"
	attrCheckpointOwner    = "checkpointOwner"
	tableActivePollMin     = 50 * time.Millisecond
	tableActivePollMax     = 2 * time.Second
	defaultEnsureTableWait = 5 * time.Minute
)

// errConditionFailed is the internal form of a ConditionalCheckFailedException.
var errConditionFailed = errors.New("lease: condition failed")

// Table reads and writes leases in one DynamoDB lease table. Every write to an
// existing lease is an UpdateItem that sets or removes only the attributes it
// means to change, so attributes written by other tools survive. Its methods
// are safe for concurrent use.
type Table struct {
	db      DynamoDBAPI
	name    string
	metrics *metrics
}

// NewTable returns a Table for the named lease table. It does no I/O.
func NewTable(db DynamoDBAPI, name string) *Table { return &Table{db: db, name: name} }

// Name returns the table's name.
func (t *Table) Name() string { return t.name }

// Create writes a new lease, failing with ErrLeaseExists if its key is already
// in the table. Counter, Owner and CheckpointOwner are written as given (a new
// lease normally has counter 0 and no owner); a zero Checkpoint is written as
// TRIM_HORIZON.
func (t *Table) Create(ctx context.Context, l Lease) error {
	if l.Key == "" {
		return fmt.Errorf("create lease: empty lease key")
	}
	if l.Checkpoint.SequenceNumber == "" {
		l.Checkpoint = TrimHorizon
	}
	_, err := t.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(t.name),
		Item:                     encodeLease(l),
		ConditionExpression:      aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{"#k": attrKey},
	})
	err = classify(err)
	t.metrics.call("create", err)
	if errors.Is(err, errConditionFailed) {
		return fmt.Errorf("create lease %s: %w", l.Key, ErrLeaseExists)
	}
	if err != nil {
		return fmt.Errorf("create lease %s: %w", l.Key, err)
	}
	return nil
}

// CreateChild creates the lease of a child shard after a reshard: no owner,
// checkpoint TRIM_HORIZON, parentShardId set to parents. It returns nil if the
// lease already exists, so every worker reaching a parent's end may call it.
func (t *Table) CreateChild(ctx context.Context, shardID string, parents []string, startingHashKey, endingHashKey string) error {
	if len(parents) == 0 {
		return fmt.Errorf("create child lease %s: no parent shard ids", shardID)
	}
	err := t.Create(ctx, Lease{Key: shardID, Checkpoint: TrimHorizon, ParentShardIDs: parents,
		StartingHashKey: startingHashKey, EndingHashKey: endingHashKey})
	if errors.Is(err, ErrLeaseExists) {
		return nil
	}
	return err
}

// Get reads one lease with a strongly consistent read. A missing key gives
// ErrLeaseNotFound.
func (t *Table) Get(ctx context.Context, key string) (Lease, error) {
	out, err := t.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(t.name),
		Key:            keyOf(key),
		ConsistentRead: aws.Bool(true),
	})
	t.metrics.call("get", err)
	if err != nil {
		return Lease{}, fmt.Errorf("get lease %s: %w", key, err)
	}
	if len(out.Item) == 0 {
		return Lease{}, fmt.Errorf("get lease %s: %w", key, ErrLeaseNotFound)
	}
	l, err := decodeLease(out.Item)
	if err != nil {
		return Lease{}, fmt.Errorf("get lease %s: %w", key, err)
	}
	return l, nil
}

// List reads every lease with a strongly consistent, paginated Scan, sorted by key.
func (t *Table) List(ctx context.Context) ([]Lease, error) { return t.list(ctx, true) }

// ListEventually is List with an eventually consistent Scan, at half the read units: for a reader whose
// every write on what it read is conditional (the leader), so a stale item only costs a failed condition.
func (t *Table) ListEventually(ctx context.Context) ([]Lease, error) { return t.list(ctx, false) }

func (t *Table) list(ctx context.Context, consistent bool) ([]Lease, error) {
	var (
		leases []Lease
		start  map[string]types.AttributeValue
	)
	call := "scan_eventually"
	if consistent {
		call = "scan"
	}
	for {
		out, err := t.db.Scan(ctx, &dynamodb.ScanInput{
			TableName:         aws.String(t.name),
			ConsistentRead:    aws.Bool(consistent),
			ExclusiveStartKey: start,
		})
		t.metrics.call(call, err)
		if err != nil {
			return nil, fmt.Errorf("list leases in %s: %w", t.name, err)
		}
		for _, item := range out.Items {
			l, err := decodeLease(item)
			if err != nil {
				return nil, fmt.Errorf("list leases in %s: %w", t.name, err)
			}
			leases = append(leases, l)
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	slices.SortFunc(leases, func(a, b Lease) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return leases, nil
}

// OwnedKeys returns the keys of the leases whose leaseOwner is owner, sorted, from the owner index
// (OwnerIndex): a read of the worker's own rows only, eventually consistent as every index read is — a
// lease assigned a moment ago may be missing, one taken away a moment ago may still be listed.
func (t *Table) OwnedKeys(ctx context.Context, owner string) ([]string, error) {
	var (
		keys  []string
		start map[string]types.AttributeValue
	)
	for {
		out, err := t.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(t.name),
			IndexName:                 aws.String(OwnerIndex),
			KeyConditionExpression:    aws.String("#o = :o"),
			ExpressionAttributeNames:  map[string]string{"#o": attrOwner},
			ExpressionAttributeValues: map[string]types.AttributeValue{":o": str(owner)},
			ExclusiveStartKey:         start,
		})
		t.metrics.call("query_owned", err)
		if err != nil {
			return nil, fmt.Errorf("list the leases of %s in %s: %w", owner, t.name, err)
		}
		for _, item := range out.Items {
			if k, ok := item[attrKey].(*types.AttributeValueMemberS); ok {
				keys = append(keys, k.Value)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	slices.Sort(keys)
	return keys, nil
}

// MayStart reports whether the shard's lease may start processing: every
// parent named in its parentShardId is checkpointed at SHARD_END or has no
// lease any more. A missing lease for shardID itself gives ErrLeaseNotFound.
func (t *Table) MayStart(ctx context.Context, shardID string) (bool, error) {
	l, err := t.Get(ctx, shardID)
	if err != nil {
		return false, err
	}
	for _, p := range l.ParentShardIDs {
		pl, err := t.Get(ctx, p)
		if errors.Is(err, ErrLeaseNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("may shard %s start: %w", shardID, err)
		}
		if !pl.Checkpoint.IsShardEnd() {
			return false, nil
		}
	}
	return true, nil
}

// DeleteFinished deletes a lease whose checkpoint is SHARD_END (call it once
// every child has a real checkpoint). It returns ErrLeaseNotFound if the lease
// is gone and ErrInvalidCheckpoint if it is not at SHARD_END.
func (t *Table) DeleteFinished(ctx context.Context, key string) error {
	_, err := t.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(key),
		ConditionExpression:       aws.String("#cp = :end"),
		ExpressionAttributeNames:  map[string]string{"#cp": attrCheckpoint},
		ExpressionAttributeValues: map[string]types.AttributeValue{":end": str(ShardEnd.SequenceNumber)},
	})
	err = classify(err)
	t.metrics.call("delete", err)
	if errors.Is(err, errConditionFailed) {
		if _, gerr := t.Get(ctx, key); gerr != nil {
			return fmt.Errorf("delete finished lease %s: %w", key, gerr)
		}
		return fmt.Errorf("delete finished lease %s: %w: not at SHARD_END", key, ErrInvalidCheckpoint)
	}
	if err != nil {
		return fmt.Errorf("delete finished lease %s: %w", key, err)
	}
	return nil
}

// update is one UpdateItem under construction.
type update struct {
	set, remove, add, cond []string
	names                  map[string]string
	values                 map[string]types.AttributeValue
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

// n returns the placeholder of an attribute name.
func (u *update) n(attr string) string {
	p := "#" + attr
	u.names[p] = attr
	return p
}

// v returns the placeholder of a value.
func (u *update) v(name string, av types.AttributeValue) string {
	p := ":" + name
	u.values[p] = av
	return p
}

func (u *update) setTo(attr string, av types.AttributeValue) *update {
	u.set = append(u.set, u.n(attr)+" = "+u.v(attr, av))
	return u
}

func (u *update) del(attrs ...string) *update {
	for _, a := range attrs {
		u.remove = append(u.remove, u.n(a))
	}
	return u
}

func (u *update) when(cond string) *update { u.cond = append(u.cond, cond); return u }

// fenceCounter conditions on leaseCounter = counter and sets it to counter+1.
func (u *update) fenceCounter(counter int64) *update {
	u.when(u.n(attrCounter) + " = " + u.v("expected", num(counter)))
	return u.setTo(attrCounter, num(counter+1))
}

func (u *update) ownerIs(owner string) *update {
	return u.when(u.n(attrOwner) + " = " + u.v("owner", str(owner)))
}

func (u *update) checkpointOwnerIs(owner string) *update {
	return u.when(u.n(attrCheckpointOwner) + " = " + u.v("cpowner", str(owner)))
}

func (u *update) bumpOwnerSwitches() *update {
	u.add = append(u.add, u.n(attrOwnerSwitches)+" "+u.v("one", num(1)))
	return u
}

func (u *update) expression() string {
	var s string
	for _, part := range []struct {
		kw    string
		items []string
	}{{"SET", u.set}, {"REMOVE", u.remove}, {"ADD", u.add}} {
		if len(part.items) == 0 {
			continue
		}
		if s != "" {
			s += " "
		}
		s += part.kw + " "
		for i, it := range part.items {
			if i > 0 {
				s += ", "
			}
			s += it
		}
	}
	return s
}

// apply runs the update on key and returns the item as written. A failed
// condition gives errConditionFailed (wrapped with the key).
func (t *Table) apply(ctx context.Context, call, key string, u *update) (Lease, error) {
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       keyOf(key),
		UpdateExpression:          aws.String(u.expression()),
		ExpressionAttributeNames:  u.names,
		ExpressionAttributeValues: maps.Clone(u.values),
		ReturnValues:              types.ReturnValueAllNew,
	}
	if len(u.cond) > 0 {
		c := u.cond[0]
		for _, more := range u.cond[1:] {
			c += " AND " + more
		}
		in.ConditionExpression = aws.String(c)
	}
	if len(in.ExpressionAttributeValues) == 0 {
		in.ExpressionAttributeValues = nil
	}
	out, err := t.db.UpdateItem(ctx, in)
	err = classify(err)
	t.metrics.call(call, err)
	if err != nil {
		return Lease{}, fmt.Errorf("%s lease %s: %w", call, key, err)
	}
	l, err := decodeLease(out.Attributes)
	if err != nil {
		return Lease{}, fmt.Errorf("%s lease %s: %w", call, key, err)
	}
	return l, nil
}

// renew bumps the counter of a lease owner holds at counter.
func (t *Table) renew(ctx context.Context, key, owner string, counter int64) (Lease, error) {
	return t.apply(ctx, "renew", key, newUpdate().fenceCounter(counter).ownerIs(owner))
}

// take makes owner the owner of the lease as observed in l (unowned or
// expired). A pending handoff (checkpointOwner) is kept: the new owner waits
// for it like a thief does.
func (t *Table) take(ctx context.Context, l Lease, owner string) (Lease, error) {
	u := newUpdate().fenceCounter(l.Counter).setTo(attrOwner, str(owner))
	if l.Owner != "" && l.Owner != owner {
		u.bumpOwnerSwitches()
	}
	return t.apply(ctx, "take", l.Key, u)
}

// steal claims a live lease from its owner for balance: the thief becomes
// leaseOwner and the old owner is recorded as checkpointOwner, who may still
// checkpoint until it passes the lease on.
func (t *Table) steal(ctx context.Context, l Lease, thief string) (Lease, error) {
	u := newUpdate().fenceCounter(l.Counter).ownerIs(l.Owner).
		when("attribute_not_exists("+"#"+attrCheckpointOwner+")").
		setTo(attrOwner, str(thief)).setTo(attrCheckpointOwner, str(l.Owner)).bumpOwnerSwitches()
	u.n(attrCheckpointOwner)
	return t.apply(ctx, "steal", l.Key, u)
}

// adopt starts a holding period of a lease the leader assigned to owner at counter: a renew under its own
// call name, which starts owner's clock on the lease.
func (t *Table) adopt(ctx context.Context, key, owner string, counter int64) (Lease, error) {
	return t.apply(ctx, "adopt", key, newUpdate().fenceCounter(counter).ownerIs(owner))
}

// evict releases a lease owner holds at counter: leaseOwner is removed, so the
// lease is available to every worker at once.
func (t *Table) evict(ctx context.Context, key, owner string, counter int64) (Lease, error) {
	return t.apply(ctx, "release", key, newUpdate().fenceCounter(counter).ownerIs(owner).del(attrOwner))
}

// passOn ends a handoff from prev: checkpointOwner is removed, so the new
// owner starts. The counter is not bumped (the new owner renews it).
func (t *Table) passOn(ctx context.Context, key, prev string) (Lease, error) {
	return t.apply(ctx, "pass_on", key, newUpdate().checkpointOwnerIs(prev).del(attrCheckpointOwner))
}

// endHandoff is the new owner ending a handoff that timed out: fenced on its
// counter and ownership, it removes checkpointOwner.
func (t *Table) endHandoff(ctx context.Context, key, owner, prev string, counter int64) (Lease, error) {
	return t.apply(ctx, "end_handoff", key,
		newUpdate().fenceCounter(counter).ownerIs(owner).checkpointOwnerIs(prev).del(attrCheckpointOwner))
}

// checkpointUpdate writes cp, resets ownerSwitchesSinceCheckpoint and clears
// the pending checkpoint, as a KCL checkpoint does.
func checkpointUpdate(cp Checkpoint) *update {
	return newUpdate().
		setTo(attrCheckpoint, str(cp.SequenceNumber)).
		setTo(attrCheckpointSub, num(cp.SubSequence)).
		setTo(attrOwnerSwitches, num(0)).
		del(attrPending, attrPendingSub, attrPendingState)
}

// childrenUpdate adds shard ids to childShardIds.
func childrenUpdate(children []string) *update {
	u := newUpdate()
	u.add = append(u.add, u.n(attrChildren)+" "+u.v("children", &types.AttributeValueMemberSS{Value: children}))
	return u
}

func keyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrKey: str(key)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// classify turns a ConditionalCheckFailedException into errConditionFailed.
func classify(err error) error {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("%w: %w", errConditionFailed, err)
	}
	return err
}

func encodeLease(l Lease) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		attrKey:           str(l.Key),
		attrCounter:       num(l.Counter),
		attrOwnerSwitches: num(l.OwnerSwitchesSinceCheckpoint),
		attrCheckpoint:    str(l.Checkpoint.SequenceNumber),
		attrCheckpointSub: num(l.Checkpoint.SubSequence),
	}
	if l.Owner != "" {
		item[attrOwner] = str(l.Owner)
	}
	if len(l.ParentShardIDs) > 0 {
		item[attrParents] = &types.AttributeValueMemberSS{Value: l.ParentShardIDs}
	}
	if len(l.ChildShardIDs) > 0 {
		item[attrChildren] = &types.AttributeValueMemberSS{Value: l.ChildShardIDs}
	}
	if l.PendingCheckpoint != nil && l.PendingCheckpoint.SequenceNumber != "" {
		item[attrPending] = str(l.PendingCheckpoint.SequenceNumber)
		item[attrPendingSub] = num(l.PendingCheckpoint.SubSequence)
	}
	if l.StartingHashKey != "" && l.EndingHashKey != "" {
		item[attrStartingHashKey] = str(l.StartingHashKey)
		item[attrEndingHashKey] = str(l.EndingHashKey)
	}
	if l.CheckpointOwner != "" {
		item[attrCheckpointOwner] = str(l.CheckpointOwner)
	}
	return item
}

func decodeLease(item map[string]types.AttributeValue) (Lease, error) {
	var (
		l   Lease
		err error
	)
	getS := func(name string) string {
		if v, ok := item[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	getN := func(name string) int64 {
		v, ok := item[name].(*types.AttributeValueMemberN)
		if !ok {
			return 0
		}
		n, perr := strconv.ParseInt(v.Value, 10, 64)
		if perr != nil {
			err = errors.Join(err, fmt.Errorf("attribute %s: %w", name, perr))
		}
		return n
	}
	getSS := func(name string) []string {
		switch v := item[name].(type) {
		case *types.AttributeValueMemberSS:
			s := slices.Clone(v.Value)
			slices.Sort(s)
			return s
		case *types.AttributeValueMemberS: // tolerate a scalar written by other tools
			return []string{v.Value}
		}
		return nil
	}
	l.Key = getS(attrKey)
	if l.Key == "" {
		return Lease{}, fmt.Errorf("lease item without a string %s", attrKey)
	}
	l.Owner = getS(attrOwner)
	l.Counter = getN(attrCounter)
	l.OwnerSwitchesSinceCheckpoint = getN(attrOwnerSwitches)
	l.Checkpoint = Checkpoint{SequenceNumber: getS(attrCheckpoint), SubSequence: getN(attrCheckpointSub)}
	l.ParentShardIDs = getSS(attrParents)
	l.ChildShardIDs = getSS(attrChildren)
	if p := getS(attrPending); p != "" {
		l.PendingCheckpoint = &Checkpoint{SequenceNumber: p, SubSequence: getN(attrPendingSub)}
	}
	l.CheckpointOwner = getS(attrCheckpointOwner)
	l.StartingHashKey = getS(attrStartingHashKey)
	l.EndingHashKey = getS(attrEndingHashKey)
	if err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", l.Key, err)
	}
	return l, nil
}

func zapCheckpoint(cp Checkpoint) zap.Field { return zap.Stringer("checkpoint", cp) }
