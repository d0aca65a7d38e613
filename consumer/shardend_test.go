package consumer_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// endProbe is a processor whose ShardEnded always fails with err; it records how each holding period of
// each shard ended.
type endProbe struct {
	err     error
	mu      sync.Mutex
	endings map[string][]string // shard → "lease lost" / "shutdown requested", in order
	atEnd   chan string         // shards whose ShardEnded was called
}

type endProbeProc struct {
	p     *endProbe
	shard string
}

func (p *endProbe) factory(shard string) consumer.Processor { return &endProbeProc{p: p, shard: shard} }

func (p *endProbe) ended(shard string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.endings[shard]...)
}

func (e *endProbeProc) record(how string) {
	e.p.mu.Lock()
	defer e.p.mu.Unlock()
	e.p.endings[e.shard] = append(e.p.endings[e.shard], how)
}

func (e *endProbeProc) Initialize(context.Context, consumer.InitInput) error { return nil }
func (e *endProbeProc) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	if n := len(b.Records); n > 0 {
		return b.Checkpointer.Checkpoint(ctx, b.Records[n-1].SequenceNumber, b.Records[n-1].SubSequence)
	}
	return nil
}
func (e *endProbeProc) LeaseLost(context.Context) { e.record("lease lost") }
func (e *endProbeProc) ShardEnded(context.Context, consumer.Checkpointer) error {
	select {
	case e.p.atEnd <- e.shard:
	default:
	}
	return e.p.err
}
func (e *endProbeProc) ShutdownRequested(context.Context, consumer.Checkpointer) error {
	e.record("shutdown requested")
	return nil
}

// A shard's processor ends with its shard whatever becomes of ShardEnded: when ShardEnded fails
// permanently the worker stops and the processor gets LeaseLost; when it keeps failing until the worker
// is stopped, the processor gets ShutdownRequested. Before, both returned without telling the processor,
// so its actors lived on until the factory closed.
func TestShardEndAlwaysEndsTheProcessor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		want      string
	}{
		{"permanent failure of ShardEnded", retry.Permanent(errors.New("the sessions table is gone")), true, "lease lost"},
		{"stopped while ShardEnded is retried", errors.New("Redis is down"), false, "shutdown requested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kin := testenv.Kinesis(t)
			ddb, table := leaseTable(t)
			stream := testenv.Stream(t, kin, 1)
			putUsers(t, kin, stream, 3, 5, 0)
			parent := openShards(t, kin, stream)[0]
			if _, err := kin.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String(stream),
				ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String(midpoint(t, parent))}); err != nil {
				t.Fatal(err)
			}
			waitOpen(t, kin, stream, 2)
			probe := &endProbe{err: tc.err, endings: map[string][]string{}, atEnd: make(chan string, 1)}
			w, err := consumer.New(kin, ddb, consumer.Config{
				Stream: stream, NewProcessor: probe.factory, IdleTime: 100 * time.Millisecond, MinCallInterval: 250 * time.Millisecond,
				ShardSyncInterval: time.Second, ParentPollInterval: 200 * time.Millisecond, RetryBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
				Lease: lease.Config{Table: table, WorkerID: "w", FailoverTime: time.Second, TakeInterval: 300 * time.Millisecond, ShutdownTimeout: 2 * time.Second},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			select {
			case <-probe.atEnd:
			case <-time.After(30 * time.Second):
				t.Fatal("ShardEnded was not called within 30s of the split")
			}
			if !tc.permanent {
				cancel()
			}
			bound := w.ShutdownBound() + 5*time.Second
			select {
			case err := <-done:
				if tc.permanent != (err != nil && retry.IsPermanent(err)) {
					t.Fatalf("Run returned %v; want a permanent error: %v", err, tc.permanent)
				}
			case <-time.After(bound):
				t.Fatalf("Run did not return within %v", bound)
			}
			if got := probe.ended(*parent.ShardId); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("the parent's processor ended with %v, want exactly [%s]", got, tc.want)
			}
		})
	}
}
