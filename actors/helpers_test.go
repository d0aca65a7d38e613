package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
)

// sinks are the real servers a test writes to, with names unique to the test.
type sinks struct {
	kin                 *kinesis.Client
	ddb                 *dynamodb.Client
	rdb                 *redis.Client
	offers, errs, table string
	prefix              string
}

func newSinks(t testing.TB) *sinks {
	t.Helper()
	s := &sinks{kin: testenv.Kinesis(t), ddb: testenv.DynamoDB(t), rdb: testenv.Redis(t)}
	s.offers = testenv.Stream(t, s.kin, 1)
	s.errs = testenv.Stream(t, s.kin, 1)
	s.table = sessionsTable(t, s.ddb)
	s.prefix = testenv.Name(t, "cf") + ":"
	return s
}

// withTable returns a copy of s with its own sessions table and key prefix (another application on the
// same servers).
func (s *sinks) withTable(t testing.TB) *sinks {
	c := *s
	c.table = sessionsTable(t, s.ddb)
	c.prefix = testenv.Name(t, "cf") + ":"
	return &c
}

func sessionsTable(t testing.TB, ddb *dynamodb.Client) string {
	t.Helper()
	name := testenv.Name(t, "sessions")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := provision.EnsureSessionsTable(ctx, ddb, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}

func (s *sinks) config(stream string) Config {
	return Config{Stream: stream, Kinesis: s.kin, DynamoDB: s.ddb, Redis: s.rdb, SessionsTable: s.table,
		OffersStream: s.offers, ErrorsStream: s.errs, Prefix: s.prefix, FlushInterval: time.Hour, FlushMaxRecords: 1 << 30,
		RetryBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
}

func newFactory(t testing.TB, cfg Config) *Factory {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// startProcessor returns a processor of testShard from f, initialised at TRIM_HORIZON, with a fresh
// checkpointer for its batches.
func startProcessor(t *testing.T, f *Factory) (consumer.Processor, *fakeCheckpointer) {
	t.Helper()
	p := f.NewProcessor(testShard)
	if err := p.Initialize(context.Background(), consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	return p, &fakeCheckpointer{}
}

// fakeCheckpointer records checkpoints; once lost, every call fails with lease.ErrLeaseLost.
type fakeCheckpointer struct {
	mu       sync.Mutex
	at       string
	shardEnd bool
	lost     bool
	calls    int
}

func (c *fakeCheckpointer) Checkpoint(_ context.Context, seq string, sub int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.lost {
		return fmt.Errorf("fake: %w", lease.ErrLeaseLost)
	}
	c.at = fmt.Sprintf("%s:%d", seq, sub)
	return nil
}

func (c *fakeCheckpointer) CheckpointShardEnd(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost {
		return fmt.Errorf("fake: %w", lease.ErrLeaseLost)
	}
	c.shardEnd = true
	return nil
}

func (c *fakeCheckpointer) position() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *fakeCheckpointer) lose() {
	c.mu.Lock()
	c.lost = true
	c.mu.Unlock()
}

// seqNo returns the i-th sequence number of a synthetic shard (fixed width, so they compare as Kinesis').
func seqNo(i int) string { return fmt.Sprintf("%s%034d", seqPrefix, i) }

const seqPrefix = "4960000000000000000000"

// seqIndex is the i of seqNo(i); an error for another sequence number.
func seqIndex(seq string) (int, error) {
	digits, ok := strings.CutPrefix(seq, seqPrefix)
	if !ok || len(digits) != 34 {
		return 0, fmt.Errorf("sequence number %q is not a seqNo", seq)
	}
	return strconv.Atoi(digits)
}

// rec returns a synthetic record of shard at index i.
func rec(shard string, i int, key string, data []byte) consumer.Record {
	return consumer.Record{ShardID: shard, SequenceNumber: seqNo(i), PartitionKey: key, Data: data}
}

func pocJSON(user, name string, tsMs int64, percent float64, clickID string) []byte {
	ts := time.UnixMilli(tsMs).UTC().Format("2006-01-02 15:04:05.000000")
	click := ""
	if clickID != "" {
		click = fmt.Sprintf(`"click_id":%q,`, clickID)
	}
	return fmt.Appendf(nil, `{"timestamp":%q,"user_id":%q,"pixel_id":"px1",%s"event_name":%q,"user_ip":"","additional_data":{"time_on_data":3.5,"percent_viewed":%g,"product_id":42,"price":9.99}}`,
		ts, user, click, name, percent)
}

func labJSON(user, name string, tsMs int64, device string) []byte {
	return fmt.Appendf(nil, `{"user_id":%q,"event_timestamp":"%d","event_name":%q,"event_type":"click","device_type":%q}`, user, tsMs, name, device)
}

// scanSessions returns the sessions table's rows by id, updated_ms cleared.
func scanSessions(t *testing.T, ddb *dynamodb.Client, table string) map[string]messages.Session {
	t.Helper()
	out := map[string]messages.Session{}
	var start map[string]dtypes.AttributeValue
	for {
		page, err := ddb.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			s := messages.Session{}
			get := func(k string) string {
				switch v := it[k].(type) {
				case *dtypes.AttributeValueMemberS:
					return v.Value
				case *dtypes.AttributeValueMemberN:
					return v.Value
				}
				return ""
			}
			n := func(k string) int64 {
				var x int64
				fmt.Sscan(get(k), &x)
				return x
			}
			s.SessionID, s.UserID, s.DeviceType, s.SessionTime = get("session_id"), get("user_id"), get("device_type"), get("session_time")
			s.StartMs, s.LastEventMs, s.EventCount = n("start_ms"), n("last_event_ms"), n("event_count")
			if n("updated_ms") <= 0 {
				t.Errorf("session %s has no updated_ms", s.SessionID)
			}
			out[s.SessionID] = s
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out
		}
		start = page.LastEvaluatedKey
	}
}

// userHashes returns every cf:user:* hash under prefix, by user id.
func userHashes(t *testing.T, rdb *redis.Client, prefix string) map[string]map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string]string{}
	iter := rdb.Scan(ctx, 0, prefix+"user:*", 1000).Iterator()
	for iter.Next(ctx) {
		h, err := rdb.HGetAll(ctx, iter.Val()).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[iter.Val()[len(prefix)+len("user:"):]] = h
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readStream returns every record on stream (all shards, from the start).
func readStream(t *testing.T, kin *kinesis.Client, stream string) []ktypes.Record {
	t.Helper()
	ctx := context.Background()
	shards, err := kin.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var out []ktypes.Record
	for _, sh := range shards.Shards {
		it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			page, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, page.Records...)
			if len(page.Records) == 0 {
				break
			}
			iter = page.NextShardIterator
		}
	}
	return out
}

// offerClicks returns the click_id of each offer on stream, with the number of times it appears.
func offerClicks(t *testing.T, kin *kinesis.Client, stream string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range readStream(t, kin, stream) {
		var v struct {
			ClickID string `json:"click_id"`
		}
		if err := json.Unmarshal(r.Data, &v); err != nil || v.ClickID == "" {
			t.Fatalf("offer without click_id: %s (%v)", r.Data, err)
		}
		out[v.ClickID]++
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// flushLog records every flush's FlushInfo (Config.AfterFlush), which the processors report from their
// own goroutines.
type flushLog struct {
	mu      sync.Mutex
	flushes []FlushInfo
}

func (l *flushLog) add(i FlushInfo) {
	l.mu.Lock()
	l.flushes = append(l.flushes, i)
	l.mu.Unlock()
}

// all returns the flushes recorded so far, in the order they were reported.
func (l *flushLog) all() []FlushInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.flushes)
}
