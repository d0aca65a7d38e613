package scale_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/scale"
)

func skipOnKinesalite(t *testing.T) {
	t.Helper()
	if os.Getenv("CLICKFLEET_STACK_KINESIS") == "kinesalite" {
		t.Skip("kinesalite does not support UpdateShardCount")
	}
}

// waitOpen waits until the stream is ACTIVE with n open shards.
func waitOpen(t *testing.T, s *scale.Stream, n int) {
	t.Helper()
	testenv.WaitForState(t, "the stream ACTIVE with the new shard count", 30*time.Second, func() (bool, string) {
		st, err := s.State(context.Background())
		if err != nil {
			return false, err.Error()
		}
		return st.Status == "ACTIVE" && st.OpenShards == n, st.Status
	})
}

func TestStreamStateAndResizeAgainstTheEmulator(t *testing.T) {
	skipOnKinesalite(t)
	kin := testenv.Kinesis(t)
	s := &scale.Stream{API: kin, Name: testenv.Stream(t, kin, 1)}
	ctx := context.Background()
	st, err := s.State(ctx)
	if err != nil || st.Status != "ACTIVE" || st.OnDemand || st.OpenShards != 1 {
		t.Fatalf("state %+v, %v", st, err)
	}
	// Beyond twice the open shards: the API refuses; that is ErrRefused, not a failure to retry.
	err = s.Resize(ctx, 4)
	if !errors.Is(err, scale.ErrRefused) {
		t.Fatalf("1 → 4 shards: %v, want ErrRefused", err)
	}
	if err := s.Resize(ctx, 2); err != nil {
		t.Fatalf("1 → 2 shards: %v", err)
	}
	waitOpen(t, s, 2)

	// An on-demand stream is told apart.
	name := testenv.Name(t, "od")
	if _, err := kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name),
		StreamModeDetails: &ktypes.StreamModeDetails{StreamMode: ktypes.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = kin.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
	od := &scale.Stream{API: kin, Name: name}
	testenv.WaitFor(t, "the on-demand stream", 30*time.Second, func() bool {
		st, err := od.State(ctx)
		return err == nil && st.Status == "ACTIVE" && st.OnDemand
	})
}

func TestScalerRefusesAConsumersLeaseTable(t *testing.T) {
	kin, ddb := testenv.Kinesis(t), testenv.DynamoDB(t)
	table := testenv.LeaseTable(t, ddb)
	if err := lease.NewTable(ddb, table).Create(context.Background(), lease.Lease{Key: "shardId-000000000000", Owner: "w1"}); err != nil {
		t.Fatal(err)
	}
	s, err := scale.New(scale.Config{Stream: "clickstream", Source: &scale.Workers{URLs: []string{"http://127.0.0.1:1"}},
		Kinesis: kin, DynamoDB: ddb, Lock: lease.Config{Table: table}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Run(ctx); !errors.Is(err, scale.ErrSharedLeaseTable) {
		t.Fatalf("Run on a table with shard leases: %v, want ErrSharedLeaseTable", err)
	}
	leases, err := lease.NewTable(ddb, table).List(ctx)
	if err != nil || len(leases) != 1 {
		t.Fatalf("the scaler must not add its row to a consumer's table: %v %v", leases, err)
	}
}

// lockedBuffer is a bytes.Buffer safe for the scaler's writes and the test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A dry run prints a line per decision — the would-be resize, then the cool-down it would start — and
// leaves the stream as it is.
func TestDryRunPrintsDecisionsAndChangesNothing(t *testing.T) {
	skipOnKinesalite(t)
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 1)
	var mu sync.Mutex
	var records float64
	worker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		records += 50 // a worker reading fast
		n := records
		mu.Unlock()
		fmt.Fprintf(w, "%s %g\n%s %g\n", scale.MetricReadRecords, n, scale.MetricReadBytes, 200*n)
	}))
	defer worker.Close()
	var out lockedBuffer
	s, err := scale.New(scale.Config{Stream: stream, DryRun: true, Interval: 200 * time.Millisecond, Kinesis: kin,
		Source:    &scale.Workers{URLs: []string{worker.URL}},
		Policy:    scale.Policy{ShardRecordsPerSecond: 20, UpAfter: 600 * time.Millisecond},
		Decisions: &out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testenv.WaitFor(t, "a would-be resize and then a cool-down", 30*time.Second, func() bool {
		return strings.Contains(out.String(), "shards=1→2 resize: above 75% for 600ms") && strings.Contains(out.String(), "cooling down")
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(dry run: not resized)") {
		t.Fatalf("decisions:\n%s", out.String())
	}
	st, err := (&scale.Stream{API: kin, Name: stream}).State(context.Background())
	if err != nil || st.OpenShards != 1 || st.Status != "ACTIVE" {
		t.Fatalf("a dry run changed the stream: %+v %v", st, err)
	}
	t.Logf("decisions:\n%s", out.String())
}

// An on-demand stream is left alone: one log line, no decision lines, no call, however many intervals.
func TestOnDemandStreamIsLeftAloneWithOneLogLine(t *testing.T) {
	skipOnKinesalite(t)
	kin := testenv.Kinesis(t)
	name := testenv.Name(t, "od")
	ctx := context.Background()
	if _, err := kin.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name),
		StreamModeDetails: &ktypes.StreamModeDetails{StreamMode: ktypes.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = kin.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	var out lockedBuffer
	s, err := scale.New(scale.Config{Stream: name, DryRun: true, Interval: 100 * time.Millisecond, Kinesis: kin,
		Source: &scale.Workers{URLs: []string{"http://127.0.0.1:1"}}, Decisions: &out, Logger: zap.New(core), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	skips := func() float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "clickfleet_scale_decisions_total" {
				for _, m := range f.GetMetric() {
					if m.GetLabel()[0].GetValue() == "skip" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	testenv.WaitFor(t, "five evaluations of the on-demand stream", 30*time.Second, func() bool { return skips() >= 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := logs.FilterMessageSnippet("on-demand stream").Len(); n != 1 {
		t.Fatalf("%d log lines about the on-demand stream, want 1", n)
	}
	if out.String() != "" {
		t.Fatalf("decision lines for an on-demand stream:\n%s", out.String())
	}
}
