package lease

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/prometheus/client_golang/prometheus"
)

func TestCheckAdvance(t *testing.T) {
	seq := func(s string, sub int64) Checkpoint { return Checkpoint{SequenceNumber: s, SubSequence: sub} }
	tests := []struct {
		name     string
		cur, nxt Checkpoint
		ok       bool
	}{
		{"from trim horizon", TrimHorizon, seq("5", 0), true},
		{"from latest", Latest, seq("5", 0), true},
		{"forward", seq("5", 0), seq("6", 0), true},
		{"same", seq("5", 2), seq("5", 2), true},
		{"sub-sequence forward", seq("5", 2), seq("5", 3), true},
		{"sub-sequence back", seq("5", 2), seq("5", 1), false},
		{"backwards", seq("50", 0), seq("6", 0), false},
		{"beyond int64", seq("49590338271490256608559692538361571095921575989136588898", 0), seq("49590338271490256608559692538361571095921575989136588899", 0), true},
		{"garbage", TrimHorizon, seq("abc", 0), false},
		{"sentinel is not a checkpoint", seq("5", 0), Latest, false},
		{"negative sub-sequence", TrimHorizon, seq("5", -1), false},
		{"to shard end", seq("5", 0), ShardEnd, true},
		{"after shard end", ShardEnd, seq("9", 0), false},
		{"shard end again", ShardEnd, ShardEnd, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkAdvance(tc.cur, tc.nxt)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidCheckpoint)) {
				t.Fatalf("checkAdvance(%v, %v) = %v, want ok=%v", tc.cur, tc.nxt, err, tc.ok)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	proc := func(*Handle) {}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{Table: "t", Process: proc}, ""},
		{"no table", Config{Process: proc}, "Table"},
		{"no process", Config{Table: "t"}, "Process"},
		{"renew too slow", Config{Table: "t", Process: proc, FailoverTime: time.Second, RenewInterval: 600 * time.Millisecond}, "RenewInterval"},
		{"failover too short", Config{Table: "t", Process: proc, FailoverTime: time.Millisecond}, "FailoverTime"},
		{"negative max leases", Config{Table: "t", Process: proc, MaxLeasesPerWorker: -1}, "MaxLeasesPerWorker"},
		{"handoff shorter than failover", Config{Table: "t", Process: proc, FailoverTime: 10 * time.Second, HandoffTimeout: time.Second}, "HandoffTimeout"},
		{"negative handoff", Config{Table: "t", Process: proc, HandoffTimeout: -time.Second}, "HandoffTimeout"},
		{"unknown assignment", Config{Table: "t", Process: proc, Assignment: "random"}, "Assignment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				c := tc.cfg
				if c.FailoverTime != 10*time.Second || c.RenewInterval != 10*time.Second/3-25*time.Millisecond ||
					c.Assignment != AssignByLeader || c.TakeInterval != time.Second || c.MaxMovesPerRound != 2 ||
					c.MaxLeasesToStealAtOneTime != 1 || c.WorkerID == "" {
					t.Fatalf("defaults: %+v", c)
				}
				scan := Config{Table: "t", Process: proc, Assignment: AssignByScan}
				if err := scan.Validate(); err != nil || scan.TakeInterval != 2*(10*time.Second+25*time.Millisecond) {
					t.Fatalf("scan mode's take interval %v (%v), want the KCL's 2 × (failover + 25ms)", scan.TakeInterval, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want ErrInvalidConfig naming %s", err, tc.wantErr)
			}
		})
	}
}

// renewals counts the successful renew calls recorded on reg.
func renewals(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		if mf.GetName() != "clickfleet_lease_dynamodb_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["call"] == "renew" && labels["result"] == "ok" {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// TestCheckpointer runs one worker on one lease carrying an attribute written
// by another tool and a pending checkpoint, and exercises the Checkpointer.
func TestCheckpointer(t *testing.T) {
	f := newFleet(t, 2)
	ctx := context.Background()
	key := f.keys[0]
	// Another tool's attribute, a pending checkpoint and a past owner switch.
	_, err := f.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(f.tbl.Name()),
		Key:              keyOf(key),
		UpdateExpression: aws.String("SET operatorNote = :n, pendingCheckpoint = :p, pendingCheckpointSubSequenceNumber = :z, ownerSwitchesSinceCheckpoint = :two"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":n": str("keep me"), ":p": str("77"), ":z": num(0), ":two": num(2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	handles := make(chan *Handle, 4)
	reg := prometheus.NewRegistry()
	c, err := New(f.db, Config{Table: f.tbl.Name(), WorkerID: "solo", FailoverTime: testFailover, Registerer: reg,
		Process: func(h *Handle) {
			handles <- h
			<-h.Context().Done()
		}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var h *Handle
	for h == nil {
		select {
		case got := <-handles:
			if got.ShardID() == key {
				h = got
			}
		case <-time.After(10 * time.Second):
			t.Fatal("lease not acquired")
		}
	}
	if h.Start() != TrimHorizon || h.Lease().PendingCheckpoint == nil {
		t.Fatalf("start %v, lease %+v", h.Start(), h.Lease())
	}
	if err := h.Checkpoint(ctx, "100", 4); err != nil {
		t.Fatal(err)
	}
	l, err := f.tbl.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if l.Checkpoint != (Checkpoint{SequenceNumber: "100", SubSequence: 4}) || l.OwnerSwitchesSinceCheckpoint != 0 || l.PendingCheckpoint != nil || l.Owner != "solo" {
		t.Fatalf("after checkpoint: %+v", l)
	}
	if err := h.Checkpoint(ctx, "99", 0); !errors.Is(err, ErrInvalidCheckpoint) {
		t.Fatalf("backwards checkpoint: %v", err)
	}
	if err := h.RecordChildShards(ctx, []string{"shardId-000000000100", "shardId-000000000101"}); err != nil {
		t.Fatal(err)
	}
	if err := h.CheckpointShardEnd(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Checkpoint(ctx, "200", 0); !errors.Is(err, ErrInvalidCheckpoint) {
		t.Fatalf("checkpoint after SHARD_END: %v", err)
	}
	// Wait until the worker has renewed the lease a few times, then release.
	for deadline := time.Now().Add(10 * time.Second); renewals(t, reg) < 3; {
		if time.Now().After(deadline) {
			t.Fatal("no renewals")
		}
		time.Sleep(20 * time.Millisecond) // polling the metric
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if cause := context.Cause(h.Context()); !errors.Is(cause, ErrLeaseReleased) {
		t.Fatalf("cause after release: %v", cause)
	}
	if err := h.Checkpoint(ctx, "300", 0); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("checkpoint after release: %v, want ErrLeaseLost", err)
	}
	out, err := f.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(f.tbl.Name()), Key: keyOf(key), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	l, err = decodeLease(out.Item)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := out.Item["operatorNote"].(*types.AttributeValueMemberS); !ok || n.Value != "keep me" {
		t.Fatalf("operatorNote lost through take, renew, checkpoint and release: %#v", out.Item)
	}
	if !l.Checkpoint.IsShardEnd() || l.Owner != "" || len(l.ChildShardIDs) != 2 || l.Counter < 5 {
		t.Fatalf("final item: %+v", l)
	}
}
