package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/messages"
)

// putRow writes a session row as the actors do (the attributes of docs/contracts.md).
func putRow(t *testing.T, ddb *dynamodb.Client, table string, s messages.Session) {
	t.Helper()
	n := func(v int64) dtypes.AttributeValue {
		return &dtypes.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	str := func(v string) dtypes.AttributeValue { return &dtypes.AttributeValueMemberS{Value: v} }
	_, err := ddb.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]dtypes.AttributeValue{
		"session_id": str(s.SessionID), "user_id": str(s.UserID), "device_type": str(s.DeviceType), "session_time": str(s.SessionTime),
		"start_ms": n(s.StartMs), "last_event_ms": n(s.LastEventMs), "event_count": n(s.EventCount), "updated_ms": n(12345)}})
	if err != nil {
		t.Fatal(err)
	}
}

// ReadTable returns exactly the rows whose start is in the range, from every segment of the scan.
func TestReadTable(t *testing.T) {
	ddb := testenv.DynamoDB(t)
	table := testenv.Name(t, "sessions")
	ctx := context.Background()
	if _, err := provision.EnsureSessionsTable(ctx, ddb, table); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ddb.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	var all []messages.Session
	for i := range 60 { // one a minute from 09:30 to 10:29
		s := sess(fmt.Sprintf("user%d", i%7), "mobile", int64(i-30)*60, int64(i-30)*60+5, int64(i+1))
		putRow(t, ddb, table, s)
		all = append(all, s)
	}
	byID := func(ss []messages.Session) []messages.Session {
		ss = slices.Clone(ss)
		slices.SortFunc(ss, func(a, b messages.Session) int { return cmp.Compare(a.StartMs, b.StartMs) })
		for i := range ss {
			ss[i].SessionTime = "" // not read
		}
		return ss
	}
	for _, tc := range []struct {
		name     string
		r        Range
		segments int
		want     []messages.Session
	}{
		{"a range, one segment", Range{From: t0, To: t0.Add(10 * time.Minute)}, 1, all[30:40]},
		{"a range, the default segments", Range{From: t0.Add(-5 * time.Minute), To: t0.Add(time.Minute)}, 0, all[25:31]},
		{"open end", Range{From: t0.Add(25 * time.Minute)}, 3, all[55:]},
		{"open start", Range{To: t0.Add(-25 * time.Minute)}, 2, all[:5]},
		{"everything", Range{}, 4, all},
		{"nothing", Range{From: t0.Add(time.Hour)}, 4, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadTable(ctx, ddb, table, tc.r, tc.segments)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := byID(got), byID(tc.want); !reflect.DeepEqual(g, w) {
				t.Fatalf("%d rows, want %d:\n got %v\nwant %v", len(g), len(w), g, w)
			}
		})
	}
	_, err := ReadTable(ctx, ddb, table+"-missing", Range{}, 2)
	var nf *dtypes.ResourceNotFoundException
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), table+"-missing") {
		t.Fatalf("a missing table: %v, want ResourceNotFoundException naming it", err)
	}
}

// Store keeps a result where Load finds it; Load without one says so.
func TestStoreAndLoad(t *testing.T) {
	s3c := testenv.S3(t)
	bucket := testenv.Bucket(t, s3c)
	ctx := context.Background()
	key := "lake/" + ResultKey
	if _, err := Load(ctx, s3c, bucket, key); !errors.Is(err, ErrNoResult) {
		t.Fatalf("Load before any Store: %v, want ErrNoResult", err)
	}
	a := sess("user1", "mobile", 0, 40, 12)
	b := sess("user2", "desktop", 100, 130, 5)
	res := Compare(Range{From: t0, To: t0.Add(time.Hour)}, Lake{Sessions: []messages.Session{a, b}}, []messages.Session{a})
	res.At, res.LakeURL, res.Table = time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC), "s3://"+bucket+"/lake/", "sessions"
	if err := Store(ctx, s3c, bucket, key, res); err != nil {
		t.Fatal(err)
	}
	got, err := Load(ctx, s3c, bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	if got.Equal || got.Summary != res.Summary || !got.At.Equal(res.At) || got.Table != "sessions" || len(got.Differences) != 1 ||
		got.Differences[0].SessionID != b.SessionID || got.Differences[0].Kind != Missing {
		t.Fatalf("loaded %+v, stored %+v", got, res)
	}
	if _, err := Load(ctx, s3c, bucket+"-none", key); err == nil || errors.Is(err, ErrNoResult) {
		t.Fatalf("Load from a missing bucket: %v, want an error other than ErrNoResult", err)
	}
}
