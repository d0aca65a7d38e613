package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickfleet/clickfleet/lease"
)

// capacityDB is a lease.DynamoDBAPI that counts the capacity units its calls cost, as DynamoDB bills them
// on demand (from item sizes, since the local emulator reports no real ConsumedCapacity):
//   - a read unit is one strongly consistent read of up to 4 KB, or two eventually consistent ones; a
//     GetItem reads its item (at least one unit), a Scan or Query page the items it read, rounded up to
//     4 KB per page; every index read is eventually consistent;
//   - a write unit is one write of up to 1 KB: PutItem and UpdateItem cost the larger of the item before
//     and after (the item as returned, else the request), at least one unit, failed conditions included;
//     DeleteItem its key; a write that changes an indexed attribute (leaseOwner) costs the index one more
//     (two when it moves between owners: a delete and a put).
//
// Sources: the DynamoDB Developer Guide, "Read/write capacity mode" and "Item sizes and formats".
type capacityDB struct {
	lease.DynamoDBAPI
	mu            sync.Mutex
	reads, writes float64
}

// units returns the read and write units counted so far.
func (c *capacityDB) units() (reads, writes float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads, c.writes
}

func (c *capacityDB) addRead(bytes int, consistent bool) {
	u := math.Max(1, math.Ceil(float64(bytes)/4096))
	if !consistent {
		u /= 2
	}
	c.mu.Lock()
	c.reads += u
	c.mu.Unlock()
}

func (c *capacityDB) addWrite(bytes int, indexWrites int) {
	u := math.Max(1, math.Ceil(float64(bytes)/1024)) + float64(indexWrites)
	c.mu.Lock()
	c.writes += u
	c.mu.Unlock()
}

func (c *capacityDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	out, err := c.DynamoDBAPI.GetItem(ctx, in, o...)
	if err == nil {
		c.addRead(itemSize(out.Item), aws.ToBool(in.ConsistentRead))
	}
	return out, err
}

func (c *capacityDB) Scan(ctx context.Context, in *dynamodb.ScanInput, o ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	out, err := c.DynamoDBAPI.Scan(ctx, in, o...)
	if err == nil {
		c.addRead(itemsSize(out.Items), aws.ToBool(in.ConsistentRead))
	}
	return out, err
}

func (c *capacityDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := c.DynamoDBAPI.Query(ctx, in, o...)
	if err == nil {
		c.addRead(itemsSize(out.Items), aws.ToBool(in.ConsistentRead) && in.IndexName == nil)
	}
	return out, err
}

func (c *capacityDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	out, err := c.DynamoDBAPI.PutItem(ctx, in, o...)
	if err == nil || isConditionFailure(err) {
		c.addWrite(itemSize(in.Item), 0)
	}
	return out, err
}

func (c *capacityDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	out, err := c.DynamoDBAPI.UpdateItem(ctx, in, o...)
	if err != nil && !isConditionFailure(err) {
		return out, err
	}
	size := itemSize(in.Key) + valuesSize(in.ExpressionAttributeValues)
	index := 0
	if err == nil {
		size = max(size, itemSize(out.Attributes))
		index = ownerIndexWrites(in)
	}
	c.addWrite(size, index)
	return out, err
}

func (c *capacityDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	out, err := c.DynamoDBAPI.DeleteItem(ctx, in, o...)
	if err == nil || isConditionFailure(err) {
		c.addWrite(itemSize(in.Key), 0)
	}
	return out, err
}

// ownerIndexWrites is what an update costs the owner index: 2 when it sets leaseOwner (the item leaves
// one owner's partition and joins another's), 1 when it removes it, 0 when it leaves it alone.
func ownerIndexWrites(in *dynamodb.UpdateItemInput) int {
	expr := aws.ToString(in.UpdateExpression)
	for placeholder, name := range in.ExpressionAttributeNames {
		if name != "leaseOwner" {
			continue
		}
		set, remove, _ := strings.Cut(expr, "REMOVE")
		switch {
		case strings.Contains(set, placeholder+" ="):
			return 2
		case strings.Contains(remove, placeholder):
			return 1
		}
	}
	return 0
}

func isConditionFailure(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func itemsSize(items []map[string]types.AttributeValue) int {
	n := 0
	for _, it := range items {
		n += itemSize(it)
	}
	return n
}

// itemSize is an item's size as DynamoDB counts it: the lengths of its attribute names and values.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

func valuesSize(vals map[string]types.AttributeValue) int {
	n := 0
	for _, v := range vals {
		n += valueSize(v)
	}
	return n
}

// valueSize follows "Item sizes and formats": strings and binaries by their bytes, numbers by their
// significant digits (about one byte per two digits, plus one), booleans and nulls one byte, maps and
// lists three bytes plus one per element plus the elements.
func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	}
	return 0
}

func numberSize(s string) int {
	digits := 0
	for _, r := range s {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	return (digits+1)/2 + 1
}
