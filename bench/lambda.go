package bench

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/messages"
)

// lambdaProcessor is the seeds' design as a baseline: what their Lambdas do per record — one Redis write
// for the last access of every event, one DynamoDB PutItem at every session boundary — with a checkpoint
// per batch. It keeps sessions in memory only (as a warm Lambda would) and guards nothing against replays:
// it shows the cost of per-record I/O, not a correct processor.
type lambdaProcessor struct {
	rdb      *redis.Client
	ddb      DynamoDBAPI
	table    string
	prefix   string
	count    func(int)
	sessions map[string]*session.Sessionizer
}

func (p *lambdaProcessor) Initialize(context.Context, consumer.InitInput) error {
	p.sessions = map[string]*session.Sessionizer{}
	return nil
}

func (p *lambdaProcessor) ProcessRecords(ctx context.Context, b consumer.Batch) error {
	var ev messages.Event
	for _, r := range b.Records {
		if err := messages.DecodeInto(r.Data, &ev); err != nil {
			continue // the seeds' Lambdas drop what they cannot read
		}
		if err := p.rdb.HSet(ctx, p.prefix+"lambda:"+ev.UserID, "last_access_ms", ev.EventTimeMs).Err(); err != nil {
			return fmt.Errorf("lambda baseline: last access of %s: %w", ev.UserID, err)
		}
		s := p.sessions[ev.UserID]
		if s == nil {
			s = &session.Sessionizer{}
			p.sessions[ev.UserID] = s
		}
		if !s.Add(ev.UserID, ev.DeviceType, ev.EventTimeMs, session.DefaultGapMs) {
			continue
		}
		c := s.Current
		if _, err := p.ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(p.table), Item: map[string]dtypes.AttributeValue{
			"session_id": &dtypes.AttributeValueMemberS{Value: c.SessionID}, "user_id": &dtypes.AttributeValueMemberS{Value: c.UserID},
			"session_time": &dtypes.AttributeValueMemberS{Value: c.SessionTime},
			"start_ms":     &dtypes.AttributeValueMemberN{Value: strconv.FormatInt(c.StartMs, 10)},
		}}); err != nil {
			return fmt.Errorf("lambda baseline: session of %s: %w", ev.UserID, err)
		}
	}
	p.count(len(b.Records))
	last := b.Records[len(b.Records)-1]
	return b.Checkpointer.Checkpoint(ctx, last.SequenceNumber, last.SubSequence)
}

func (p *lambdaProcessor) LeaseLost(context.Context) {}
func (p *lambdaProcessor) ShardEnded(ctx context.Context, cp consumer.Checkpointer) error {
	return cp.CheckpointShardEnd(ctx)
}
func (p *lambdaProcessor) ShutdownRequested(context.Context, consumer.Checkpointer) error { return nil }
