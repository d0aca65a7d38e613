package provision

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// DynamoDBAPI is the part of the DynamoDB client that provisioning uses.
type DynamoDBAPI interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
}

// SessionsUserIndex is the name of the global secondary index on `user_id` of the sessions table.
const SessionsUserIndex = "user_id-start_ms-index"

// EnsureSessionsTable creates the sessions table (docs/contracts.md, "Sessions"): hash key `session_id` (S) and a global
// secondary index SessionsUserIndex on `user_id` (S) with range `start_ms` (N), on-demand billing. The
// index is created with the table because some emulators cannot add one later. It reports whether it
// created the table and waits until the table is ACTIVE. An existing table without the index is an error.
func EnsureSessionsTable(ctx context.Context, api DynamoDBAPI, name string) (created bool, err error) {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: dtypes.BillingModePayPerRequest,
		AttributeDefinitions: []dtypes.AttributeDefinition{
			{AttributeName: aws.String("session_id"), AttributeType: dtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("user_id"), AttributeType: dtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("start_ms"), AttributeType: dtypes.ScalarAttributeTypeN},
		},
		KeySchema: []dtypes.KeySchemaElement{{AttributeName: aws.String("session_id"), KeyType: dtypes.KeyTypeHash}},
		GlobalSecondaryIndexes: []dtypes.GlobalSecondaryIndex{{
			IndexName: aws.String(SessionsUserIndex),
			KeySchema: []dtypes.KeySchemaElement{
				{AttributeName: aws.String("user_id"), KeyType: dtypes.KeyTypeHash},
				{AttributeName: aws.String("start_ms"), KeyType: dtypes.KeyTypeRange},
			},
			Projection: &dtypes.Projection{ProjectionType: dtypes.ProjectionTypeAll},
		}},
	}
	created, desc, err := ensureTable(ctx, api, in)
	if err != nil {
		return created, err
	}
	for _, gsi := range desc.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == SessionsUserIndex {
			return created, nil
		}
	}
	return created, fmt.Errorf("table %s exists without the index %s on user_id; it cannot be added on every backend, so recreate the table", name, SessionsUserIndex)
}

// ensureTable creates the table unless it exists and waits until it and its indexes are ACTIVE.
func ensureTable(ctx context.Context, api DynamoDBAPI, in *dynamodb.CreateTableInput) (bool, *dtypes.TableDescription, error) {
	name := aws.ToString(in.TableName)
	created := false
	_, err := api.CreateTable(ctx, in)
	var inUse *dtypes.ResourceInUseException
	switch {
	case err == nil:
		created = true
	case errors.As(err, &inUse):
	default:
		return false, nil, fmt.Errorf("create table %s: %w", name, err)
	}
	for {
		out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		var notFound *dtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &notFound):
		case err != nil:
			return created, nil, fmt.Errorf("describe table %s: %w", name, err)
		case tableActive(out.Table):
			return created, out.Table, nil
		}
		if err := retry.Sleep(ctx, 100*time.Millisecond); err != nil {
			return created, nil, fmt.Errorf("table %s is not ACTIVE yet: %w", name, err)
		}
	}
}

func tableActive(t *dtypes.TableDescription) bool {
	if t == nil || t.TableStatus != dtypes.TableStatusActive {
		return false
	}
	for _, gsi := range t.GlobalSecondaryIndexes {
		if gsi.IndexStatus != "" && gsi.IndexStatus != dtypes.IndexStatusActive {
			return false
		}
	}
	return true
}
