package lease

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/zap/zaptest"

	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/retry"
)

// A worker whose writes to the lease table are denied (an IAM policy without dynamodb:UpdateItem) cannot
// take, renew or release a lease, and retrying cannot help: the coordinator stops and Run returns the
// permanent error naming the table — whether the denial comes before it took anything or while it holds
// leases — instead of logging and holding nothing while it looks healthy.
func TestPermanentLeaseTableErrorStopsTheCoordinator(t *testing.T) {
	for _, tc := range []struct {
		name        string
		deniedFirst bool
	}{{"denied before the first take", true}, {"denied while holding leases", false}} {
		t.Run(tc.name, func(t *testing.T) {
			db := testDB(t)
			tbl := NewTable(db, testTable(t, db))
			createLeases(t, tbl, 2)
			layer, err := faults.NewAWSLayer(*db.Options().BaseEndpoint, 1)
			if err != nil {
				t.Fatal(err)
			}
			addr, err := layer.Listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = layer.Close() })
			denied := func() {
				if err := layer.Set(faults.Fault{Kind: faults.AccessDenied, Fraction: 1, Operations: []string{"UpdateItem"}}); err != nil {
					t.Fatal(err)
				}
			}
			viaLayer := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
				Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
			if tc.deniedFirst {
				denied()
			}
			c, err := New(viaLayer, Config{Table: tbl.Name(), WorkerID: "w", FailoverTime: testFailover, TakeInterval: 200 * time.Millisecond,
				ShutdownTimeout: time.Second, Logger: zaptest.NewLogger(t, zaptest.Level(testLogLevel())),
				Process: func(h *Handle) {
					<-h.Context().Done()
					_ = h.Release(context.Background())
				}})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { done <- c.Run(ctx) }()
			if !tc.deniedFirst {
				deadline := time.Now().Add(30 * time.Second)
				for len(c.Holding()) < 2 {
					if time.Now().After(deadline) {
						t.Fatalf("the coordinator holds %v after 30s, want both leases", c.Holding())
					}
					time.Sleep(50 * time.Millisecond)
				}
				denied()
			}
			bound := c.Config().ShutdownBound() + 2*testFailover
			select {
			case err := <-done:
				if err == nil || !retry.IsPermanent(err) || !strings.Contains(err.Error(), tbl.Name()) {
					t.Fatalf("Run returned %v, want the permanent error naming table %s", err, tbl.Name())
				}
				if !errors.Is(c.Err(), err) {
					t.Errorf("Err() = %v, want Run's error", c.Err())
				}
				t.Logf("Run returned: %v", err)
			case <-time.After(bound):
				t.Fatalf("Run did not return within %v of UpdateItem being denied (holding %v)", bound, c.Holding())
			}
		})
	}
}
