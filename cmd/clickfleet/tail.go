package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/cobra"

	"github.com/clickfleet/clickfleet/consumer/streamtail"
	"github.com/clickfleet/clickfleet/messages"
)

var errEnoughRecords = errors.New("tail: enough records read")

func newTailCommand(g *globals) *cobra.Command {
	var (
		stream  string
		latest  bool
		max     int64
		timeout time.Duration
		rm      tailReadMode
		poll    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the records of a stream as they arrive (every shard, following resharding)",
		Long: `tail prints one line per record: shard, sequence number, partition key and data. It takes no leases
and writes no checkpoints, so it runs beside the consumers without disturbing them. With --read-mode efo
it reads through a stream consumer of its own (registered at start, deregistered at exit; one killed with
SIGKILL leaves it registered, and Kinesis bills it until it is deregistered), so that it takes nothing
from the shards' 5 GetRecords calls per second the polling applications share.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stream == "" {
				return usagef("--stream (CLICKFLEET_STREAM) is empty")
			}
			if err := rm.check(); err != nil {
				return err
			}
			awsCfg, err := loadAWS(cmd.Context())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			var (
				mu   sync.Mutex
				seen atomic.Int64
			)
			if poll <= 0 {
				return usagef("--poll-interval (CLICKFLEET_POLL_INTERVAL) must be positive, got %s", poll)
			}
			opts := rm.options(awsCfg, latest)
			opts.PollInterval = poll
			err = streamtail.Tail(ctx, kinesis.NewFromConfig(awsCfg), stream, opts, func(r streamtail.Record) error {
				if max > 0 && seen.Load() >= max {
					return errEnoughRecords
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "%s %s %s %s\n", r.ShardID, aws.ToString(r.SequenceNumber), aws.ToString(r.PartitionKey), r.Data)
				mu.Unlock()
				if seen.Add(1) >= max && max > 0 {
					return errEnoughRecords
				}
				return nil
			})
			if errors.Is(err, errEnoughRecords) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&stream, "stream", messages.Stream, "Kinesis stream to read")
	f.BoolVar(&latest, "latest", false, "start at the newest record of each shard instead of the oldest")
	f.Int64Var(&max, "max", 0, "stop after printing this many records (0: no limit)")
	f.DurationVar(&timeout, "timeout", 0, "stop after this long (0: until interrupted)")
	rm.register(f)
	f.DurationVar(&poll, "poll-interval", streamtail.DefaultPollInterval, "least time between two GetRecords calls on one shard. "+
		"Kinesis allows 5 calls/s per shard for every application reading the stream together: consume and archive take 4 at their defaults, the default here the fifth")
	return cmd
}
