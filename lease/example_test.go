package lease_test

import (
	"context"
	"errors"
	"log"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lease"
)

// Example shows a worker: ensure the table, then hold leases until ctx ends,
// checkpointing as records are processed and handing over on request.
func Example() {
	ctx := context.Background()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	db := dynamodb.NewFromConfig(awsCfg)
	if err := lease.EnsureTable(ctx, db, "clickstream-leases"); err != nil {
		log.Fatal(err)
	}
	coord, err := lease.New(db, lease.Config{
		Table:  "clickstream-leases",
		Logger: zap.NewExample(),
		Process: func(h *lease.Handle) {
			// Read the shard from h.Start(), processing and checkpointing
			// with h.Checkpoint until h.Context() is done.
			<-h.Context().Done()
			if errors.Is(context.Cause(h.Context()), lease.ErrLeaseLost) {
				return // stop at once: another worker owns the shard
			}
			// Handoff or shutdown: finish, checkpoint, pass it on.
			if err := h.Checkpoint(context.Background(), "49590338271490256608559692538361571095921575989136588898", 0); err != nil {
				return
			}
			if err := h.Release(context.Background()); err != nil {
				log.Printf("release %s: %v", h.ShardID(), err) // ErrLeaseLost: it was lost first
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := coord.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
