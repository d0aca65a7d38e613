package faults

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// hashKey is a 128-bit hash key, big-endian, as Kinesis places records: the MD5 of the partition key read
// as a number, or an explicit hash key.
type hashKey [16]byte

// recordHashKey is where Kinesis puts a record: its explicit hash key when it has a valid one, else the
// MD5 of its partition key.
func recordHashKey(partitionKey, explicit string) hashKey {
	if explicit != "" {
		if h, ok := parseHashKey(explicit); ok {
			return h
		}
	}
	return md5.Sum([]byte(partitionKey))
}

// parseHashKey reads a decimal hash key (0 … 2^128-1).
func parseHashKey(s string) (hashKey, bool) {
	var h hashKey
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() < 0 || n.BitLen() > 128 {
		return h, false
	}
	n.FillBytes(h[:])
	return h, true
}

// shardRange is one open shard's hash key range.
type shardRange struct {
	lo, hi hashKey
	id     string
}

// shardMap is one stream's open shards by hash key range, as ListShards last listed them.
type shardMap struct {
	mu      sync.Mutex // held while listing, so one caller lists and the others wait for its answer
	fetched time.Time
	err     error
	open    []shardRange // sorted by lo
}

// find returns the open shard whose range holds h.
func (m *shardMap) find(h hashKey) (string, bool) {
	i, _ := slices.BinarySearchFunc(m.open, h, func(r shardRange, h hashKey) int { return bytes.Compare(r.hi[:], h[:]) })
	if i < len(m.open) && bytes.Compare(m.open[i].lo[:], h[:]) <= 0 {
		return m.open[i].id, true
	}
	return "", false
}

// shardMaps keeps a shard map per stream, listed from the upstream and listed again when older than
// refresh. A stream that cannot be listed (deleted, not yet created) is asked again after refresh too.
type shardMaps struct {
	api     *kinesis.Client
	refresh time.Duration
	now     func() time.Time

	mu   sync.Mutex
	maps map[string]*shardMap
}

// lookup returns stream's map when it is known: listed now if it is older than refresh.
func (s *shardMaps) lookup(ctx context.Context, stream string) (*shardMap, bool) {
	s.mu.Lock()
	m := s.maps[stream]
	if m == nil {
		m = &shardMap{}
		s.maps[stream] = m
	}
	s.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now := s.now(); m.fetched.IsZero() || now.Sub(m.fetched) >= s.refresh {
		open, err := s.list(ctx, stream)
		m.fetched, m.err = now, err
		if err == nil {
			m.open = open
		}
	}
	if m.open == nil {
		return nil, false
	}
	return m, true
}

// list returns stream's open shards (those without an ending sequence number), sorted by range.
func (s *shardMaps) list(ctx context.Context, stream string) ([]shardRange, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var open []shardRange
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := s.api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("faults: list shards of %s: %w", stream, err)
		}
		for _, sh := range out.Shards {
			if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
				continue // closed: it takes no more records
			}
			lo, ok1 := parseHashKey(aws.ToString(sh.HashKeyRange.StartingHashKey))
			hi, ok2 := parseHashKey(aws.ToString(sh.HashKeyRange.EndingHashKey))
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("faults: shard %s of %s has an unreadable hash key range", aws.ToString(sh.ShardId), stream)
			}
			open = append(open, shardRange{lo: lo, hi: hi, id: aws.ToString(sh.ShardId)})
		}
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
	slices.SortFunc(open, func(a, b shardRange) int { return bytes.Compare(a.lo[:], b.lo[:]) })
	return open, nil
}
