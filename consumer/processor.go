package consumer

import (
	"context"
	"time"

	"github.com/clickfleet/clickfleet/lease"
)

// Record is one user record: a plain Kinesis record, or one sub-record of a KPL aggregate.
type Record struct {
	ShardID        string
	SequenceNumber string
	// SubSequence is the index within a KPL aggregate; 0 for a plain record.
	SubSequence int64
	// Aggregated says the record came out of a KPL aggregate.
	Aggregated      bool
	PartitionKey    string
	ExplicitHashKey string
	Data            []byte
	// ArrivedAt is Kinesis' ApproximateArrivalTimestamp.
	ArrivedAt time.Time
}

// Position is where a record stands in its shard: its sequence and sub-sequence numbers.
func (r Record) Position() lease.Checkpoint {
	return lease.Checkpoint{SequenceNumber: r.SequenceNumber, SubSequence: r.SubSequence}
}

// Checkpointer records how far a shard is processed; see lease.Checkpointer. After LeaseLost or a
// returned error matching lease.ErrLeaseLost, the processor must stop writing anything for the shard.
type Checkpointer = lease.Checkpointer

// InitInput is given to Processor.Initialize.
type InitInput struct {
	ShardID string
	// Start is the lease's checkpoint: the records delivered are those after it (a sequence number), or
	// from the initial position (TRIM_HORIZON, LATEST, AT_TIMESTAMP).
	Start lease.Checkpoint
	// ParentShardIDs are the shards this one was split or merged from; all are finished.
	ParentShardIDs []string
	// ValidFor reports how much longer the lease is this worker's by its own clock (see
	// lease.Handle.ValidFor): zero once it is lost. A processor whose writes a deposed owner must not
	// make (objects without a fenced store) checks it before each write and bounds the write by it.
	// Safe for concurrent use.
	ValidFor func() time.Duration
	// LeaseCounter is the lease's leaseCounter when this holding period started. Every take of the lease
	// raises it, so a later holding period of the shard always has a larger one: a processor can use it
	// as a fencing token for a store the lease does not fence (a newer owner records it there before
	// reading; the store refuses writes carrying a smaller one). It starts again if the lease table is
	// created again.
	LeaseCounter int64
}

// Batch is given to Processor.ProcessRecords: the records of one GetRecords call, in shard order.
type Batch struct {
	Records []Record
	// MillisBehindLatest as Kinesis reports it (some emulators always say 0).
	MillisBehindLatest int64
	// Lag is the time since the last record's arrival, measured when the batch was read.
	Lag time.Duration
	// Checkpointer checkpoints the shard; it is valid for the whole holding period.
	Checkpointer Checkpointer
}

// Processor processes one shard for one holding period. The worker calls its methods from one goroutine,
// in the lifecycle order described in the package documentation.
type Processor interface {
	// Initialize is called once before any records. An error ends the holding period (the lease is
	// released so that the shard is retried).
	Initialize(ctx context.Context, in InitInput) error
	// ProcessRecords handles one batch. It blocks until the batch is handled (the worker reads the next
	// batch only then), and checkpoints when its effects are durable. An error makes the worker deliver
	// the same batch again after a backoff: processing must be idempotent, as delivery is at-least-once.
	// ctx is cancelled when the lease is lost.
	ProcessRecords(ctx context.Context, b Batch) error
	// LeaseLost says another worker owns the shard now: stop at once, write nothing more, checkpoint
	// nothing.
	LeaseLost(ctx context.Context)
	// ShardEnded says every record of the closed shard has been delivered: make everything durable and
	// call cp.CheckpointShardEnd; the children start only then. An error, or returning without that
	// checkpoint, makes the worker call ShardEnded again after a backoff.
	ShardEnded(ctx context.Context, cp Checkpointer) error
	// ShutdownRequested says this worker stops holding the shard (a clean shutdown, or a handoff to
	// another worker for balance): make everything durable and checkpoint the last processed record;
	// the next holder starts after that checkpoint.
	ShutdownRequested(ctx context.Context, cp Checkpointer) error
}

// ProcessorFactory makes the Processor for one holding period of one shard.
type ProcessorFactory func(shardID string) Processor
