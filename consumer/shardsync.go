package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lease"
)

// KinesisAPI is the part of the Kinesis client the worker uses.
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, opts ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, opts ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, opts ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// shardSyncer keeps the lease table in step with the stream's shards: a lease for every shard that needs
// processing, created parents first with the lineage filled in, and finished parents deleted once their
// children are under way. Every worker runs one; all writes are conditional, so they may race.
type shardSyncer struct {
	api     KinesisAPI
	stream  string
	table   *lease.Table
	initial lease.Checkpoint
	log     *zap.Logger
	closed  closedShards // as of the last sync
}

// shardInfo is a shard as ListShards describes it, with its parents.
type shardInfo struct {
	id, startHash, endHash string
	parents                []string
	closed                 bool
}

func (s *shardSyncer) listShards(ctx context.Context) ([]shardInfo, error) {
	var shards []shardInfo
	in := &kinesis.ListShardsInput{StreamName: aws.String(s.stream)}
	for {
		out, err := s.api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of stream %s: %w", s.stream, err)
		}
		for _, sh := range out.Shards {
			info := shardInfo{id: aws.ToString(sh.ShardId)}
			if r := sh.HashKeyRange; r != nil {
				info.startHash, info.endHash = aws.ToString(r.StartingHashKey), aws.ToString(r.EndingHashKey)
			}
			for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
				if aws.ToString(p) != "" {
					info.parents = append(info.parents, aws.ToString(p))
				}
			}
			info.closed = sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
			shards = append(shards, info)
		}
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	// Shard ids grow with creation, so parents sort before their children.
	slices.SortFunc(shards, func(a, b shardInfo) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return shards, nil
}

// sync creates the missing leases and deletes finished ones. It returns the shards it listed.
func (s *shardSyncer) sync(ctx context.Context) ([]shardInfo, error) {
	shards, err := s.listShards(ctx)
	if err != nil {
		return nil, err
	}
	s.closed.note(shards)
	leases, err := s.table.List(ctx)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]lease.Lease, len(leases))
	for _, l := range leases {
		byKey[l.Key] = l
	}
	inList := make(map[string]bool, len(shards))
	children := map[string][]string{}
	for _, sh := range shards {
		inList[sh.id] = true
		for _, p := range sh.parents {
			children[p] = append(children[p], sh.id)
		}
	}
	for _, sh := range shards {
		if _, ok := byKey[sh.id]; ok {
			continue
		}
		// A shard whose descendants already have leases was processed (and its lease deleted) or skipped:
		// never start it again.
		if hasLeasedDescendant(sh.id, children, byKey) {
			continue
		}
		l := lease.Lease{Key: sh.id, Checkpoint: s.initial, StartingHashKey: sh.startHash, EndingHashKey: sh.endHash}
		for _, p := range sh.parents {
			if inList[p] { // a parent past retention no longer blocks
				l.ParentShardIDs = append(l.ParentShardIDs, p)
			}
		}
		if len(l.ParentShardIDs) > 0 {
			l.Checkpoint = lease.TrimHorizon // a child is read whole
		}
		err := s.table.Create(ctx, l)
		switch {
		case err == nil:
			s.log.Info("lease created", zap.String("shard_id", sh.id), zap.Strings("parent_shard_ids", l.ParentShardIDs),
				zap.Stringer("checkpoint", l.Checkpoint))
		case errors.Is(err, lease.ErrLeaseExists):
		default:
			return nil, err
		}
		byKey[sh.id] = l
	}
	for _, l := range leases {
		if !l.Checkpoint.IsShardEnd() || !s.finished(l, children[l.Key], inList, byKey) {
			continue
		}
		err := s.table.DeleteFinished(ctx, l.Key)
		switch {
		case err == nil:
			s.log.Info("finished lease deleted", zap.String("shard_id", l.Key))
		case errors.Is(err, lease.ErrLeaseNotFound):
		default:
			return nil, err
		}
	}
	return shards, nil
}

// finished says a SHARD_END lease can go: every child has a lease with a real checkpoint (it has started),
// or the shard has left the stream's shard list and has no children to wait for.
func (s *shardSyncer) finished(l lease.Lease, listed []string, inList map[string]bool, byKey map[string]lease.Lease) bool {
	kids := slices.Clone(listed)
	for _, c := range l.ChildShardIDs {
		if !slices.Contains(kids, c) {
			kids = append(kids, c)
		}
	}
	if len(kids) == 0 {
		return !inList[l.Key]
	}
	for _, c := range kids {
		cl, ok := byKey[c]
		if !ok || cl.Checkpoint.IsSentinel() && !cl.Checkpoint.IsShardEnd() {
			return false
		}
	}
	return true
}

func hasLeasedDescendant(id string, children map[string][]string, byKey map[string]lease.Lease) bool {
	seen := map[string]bool{}
	stack := slices.Clone(children[id])
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[c] {
			continue
		}
		seen[c] = true
		if _, ok := byKey[c]; ok {
			return true
		}
		stack = append(stack, children[c]...)
	}
	return false
}

// childrenOf returns the shards listing id as a parent, from a fresh sync (which also creates their leases).
func (s *shardSyncer) childrenOf(ctx context.Context, id string) ([]shardInfo, error) {
	shards, err := s.sync(ctx)
	if err != nil {
		return nil, err
	}
	var kids []shardInfo
	for _, sh := range shards {
		if slices.Contains(sh.parents, id) {
			kids = append(kids, sh)
		}
	}
	return kids, nil
}
