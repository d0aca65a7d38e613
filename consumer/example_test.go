package consumer_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/lease"
)

// printer prints every record and checkpoints after each batch: it has no effects to make durable first.
type printer struct{ shard string }

func (p *printer) Initialize(_ context.Context, in consumer.InitInput) error {
	fmt.Println("holding", in.ShardID, "from", in.Start)
	return nil
}

func (p *printer) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	for _, r := range b.Records {
		fmt.Printf("%s %s: %s\n", r.ShardID, r.Position(), r.Data)
	}
	last := b.Records[len(b.Records)-1]
	return b.Checkpointer.Checkpoint(ctx, last.SequenceNumber, last.SubSequence)
}

func (p *printer) LeaseLost(context.Context) {}

func (p *printer) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	return cp.CheckpointShardEnd(ctx)
}

func (p *printer) ShutdownRequested(context.Context, consumer.Checkpointer) error { return nil }

// One worker of a fleet reading the stream "clickstream" with the lease table "clickfleet-leases" (create
// both first, e.g. with 'clickfleet setup'). Run it in several processes: they share the shards. SIGTERM
// checkpoints, releases the leases and returns nil.
func ExampleWorker() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	aws, err := config.LoadDefaultConfig(ctx) // AWS_REGION, AWS_ENDPOINT_URL_KINESIS, … as the SDK reads them
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := consumer.New(kinesis.NewFromConfig(aws), dynamodb.NewFromConfig(aws), consumer.Config{
		Stream:       "clickstream",
		Lease:        lease.Config{Table: lease.DefaultTable},
		NewProcessor: func(shardID string) consumer.Processor { return &printer{shard: shardID} },
	})
	if err != nil {
		fmt.Println(err) // a *settings.Error names the field
		return
	}
	if err := w.Run(ctx); err != nil {
		fmt.Println(err) // a permanent failure, e.g. a *consumer.ResourceError for a missing stream
	}
}
