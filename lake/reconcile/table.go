package reconcile

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickfleet/clickfleet/messages"
)

// DynamoDBAPI is the part of the DynamoDB client ReadTable uses; *dynamodb.Client has it.
type DynamoDBAPI interface {
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// DefaultSegments is ReadTable's parallel scan segments unless given.
const DefaultSegments = 4

// ReadTable returns the rows of the sessions table whose start_ms is in r. It scans the whole table in
// segments parallel segments (0: DefaultSegments), strongly consistent, with a filter on start_ms and
// only the compared attributes projected: the filter saves the transfer, not the read (DynamoDB bills
// the items scanned). A Scan, not a Query of the user_id index per user: a row of a user the lake never
// saw is exactly an extra row, and only a scan finds it. Errors name the table.
func ReadTable(ctx context.Context, api DynamoDBAPI, table string, r Range, segments int) ([]messages.Session, error) {
	if segments <= 0 {
		segments = DefaultSegments
	}
	in := scanInput(table, r)
	var (
		mu       sync.Mutex
		rows     []messages.Session
		firstErr error
		wg       sync.WaitGroup
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for seg := range segments {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := scanSegment(sctx, api, *in, int32(seg), int32(segments))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil { // the first failure; the others are its cancellation's
					firstErr = err
					cancel()
				}
				return
			}
			rows = append(rows, got...)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("reconcile: scan the sessions table %s: %w", table, firstErr)
	}
	return rows, nil
}

// scanInput is the Scan of one range: a filter on start_ms (none for an open range) and the compared
// attributes.
func scanInput(table string, r Range) *dynamodb.ScanInput {
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String("session_id, user_id, device_type, start_ms, last_event_ms, event_count")}
	var cond string
	vals := map[string]dtypes.AttributeValue{}
	if !r.From.IsZero() {
		cond = "start_ms >= :from"
		vals[":from"] = &dtypes.AttributeValueMemberN{Value: strconv.FormatInt(r.From.UnixMilli(), 10)}
	}
	if !r.To.IsZero() {
		if cond != "" {
			cond += " AND "
		}
		cond += "start_ms < :to"
		vals[":to"] = &dtypes.AttributeValueMemberN{Value: strconv.FormatInt(r.To.UnixMilli(), 10)}
	}
	if cond != "" {
		in.FilterExpression, in.ExpressionAttributeValues = aws.String(cond), vals
	}
	return in
}

func scanSegment(ctx context.Context, api DynamoDBAPI, in dynamodb.ScanInput, seg, total int32) ([]messages.Session, error) {
	if total > 1 {
		in.Segment, in.TotalSegments = aws.Int32(seg), aws.Int32(total)
	}
	var out []messages.Session
	p := dynamodb.NewScanPaginator(api, &in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			s, err := rowFromItem(it)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// rowFromItem decodes a sessions table item's compared attributes; a number that does not parse is an
// error naming the row and the attribute.
func rowFromItem(it map[string]dtypes.AttributeValue) (messages.Session, error) {
	str := func(k string) string {
		if v, ok := it[k].(*dtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	s := messages.Session{SessionID: str("session_id"), UserID: str("user_id"), DeviceType: str("device_type")}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"start_ms", &s.StartMs}, {"last_event_ms", &s.LastEventMs}, {"event_count", &s.EventCount}} {
		v, ok := it[f.name].(*dtypes.AttributeValueMemberN)
		if !ok {
			continue // absent: 0, which differs from any session's value
		}
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return s, fmt.Errorf("row %s: %s %q is not an integer", s.SessionID, f.name, v.Value)
		}
		*f.dst = n
	}
	return s, nil
}
