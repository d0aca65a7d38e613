package actors_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/lease"
)

// A consumer worker whose shards are processed by the actors: sessions in DynamoDB, user state in Redis,
// offers and error records on their streams, exactly once. The factory's Failed channel ends the worker
// when a shard fails for good (a missing sessions table, say).
func ExampleFactory() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	aws, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	kin, ddb := kinesis.NewFromConfig(aws), dynamodb.NewFromConfig(aws)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	f, err := actors.New(actors.Config{Stream: "clickstream", Kinesis: kin, DynamoDB: ddb, Redis: rdb})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close() // after the worker's Run returned
	w, err := consumer.New(kin, ddb, consumer.Config{Stream: "clickstream", Lease: lease.Config{Table: lease.DefaultTable},
		NewProcessor: f.NewProcessor})
	if err != nil {
		fmt.Println(err)
		return
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case err := <-f.Failed():
			cancel(err)
		case <-runCtx.Done():
		}
	}()
	if err := w.Run(runCtx); err != nil {
		fmt.Println(err)
	}
	if cause := context.Cause(runCtx); cause != nil && ctx.Err() == nil {
		fmt.Println("a shard failed:", cause)
	}
}
