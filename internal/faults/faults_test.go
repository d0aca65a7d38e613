package faults_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/internal/faults"
	"github.com/clickfleet/clickfleet/internal/retry"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Each error kind reaches the SDK as AWS sends it: the modeled exception type where the service models
// it, the right code otherwise, retried by the SDK's retryer (3 attempts by default, so 3 calls arrive),
// and transient for retry.IsPermanent.
func TestAWSLayerErrorShapes(t *testing.T) {
	kin := testenv.Kinesis(t)
	ddb := testenv.DynamoDB(t)
	stream := testenv.Stream(t, kin, 1)
	table := testenv.LeaseTable(t, ddb)
	kl := layer(t, os.Getenv("AWS_ENDPOINT_URL_KINESIS"))
	dl := layer(t, os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"))
	// The SDK's standard retryer (its 3 attempts, its choice of what to retry) without its waits between
	// attempts: the attempts and the errors are what is checked, and the waits on throttles add up to
	// 20 s over the fraction case's 40 calls.
	noWait := func() aws.Retryer {
		return awsretry.NewStandard(func(o *awsretry.StandardOptions) {
			o.Backoff = awsretry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	}
	kc := kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) { o.BaseEndpoint, o.Retryer = aws.String(kl.url), noWait() })
	dc := dynamodb.NewFromConfig(testenv.AWSConfig(t), func(o *dynamodb.Options) { o.BaseEndpoint, o.Retryer = aws.String(dl.url), noWait() })
	ctx := context.Background()
	getRecords := func() error {
		it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		_, err = kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		return err
	}
	getItem := func() error {
		_, err := dc.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]dtypes.AttributeValue{"leaseKey": &dtypes.AttributeValueMemberS{Value: "x"}}})
		return err
	}
	for _, tc := range []struct {
		name   string
		l      *testLayer
		op     string
		call   func() error
		kind   faults.Kind
		code   string
		status int
		check  func(error) bool
	}{
		{"kinesis throughput", kl, "GetRecords", getRecords, faults.ThroughputExceeded, "ProvisionedThroughputExceededException", 400,
			func(err error) bool { var e *ktypes.ProvisionedThroughputExceededException; return errors.As(err, &e) }},
		{"kinesis limit", kl, "GetRecords", getRecords, faults.LimitExceeded, "LimitExceededException", 400,
			func(err error) bool { var e *ktypes.LimitExceededException; return errors.As(err, &e) }},
		{"kinesis 500", kl, "GetRecords", getRecords, faults.InternalFailure, "InternalFailure", 500, nil},
		{"kinesis 503", kl, "GetRecords", getRecords, faults.ServiceUnavailable, "ServiceUnavailable", 503, nil},
		{"dynamodb throughput", dl, "GetItem", getItem, faults.ThroughputExceeded, "ProvisionedThroughputExceededException", 400,
			func(err error) bool { var e *dtypes.ProvisionedThroughputExceededException; return errors.As(err, &e) }},
		{"dynamodb throttling", dl, "GetItem", getItem, faults.Throttling, "ThrottlingException", 400, nil},
		{"dynamodb 500", dl, "GetItem", getItem, faults.InternalFailure, "InternalServerError", 500,
			func(err error) bool { var e *dtypes.InternalServerError; return errors.As(err, &e) }},
		{"dynamodb 503", dl, "GetItem", getItem, faults.ServiceUnavailable, "ServiceUnavailable", 503, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatalf("without a fault: %v", err)
			}
			if err := tc.l.Set(faults.Fault{Kind: tc.kind, Fraction: 1, Operations: []string{tc.op}}); err != nil {
				t.Fatal(err)
			}
			defer tc.l.Clear()
			calls0, faulted0 := tc.l.Total(tc.op)
			err := tc.call()
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tc.code {
				t.Fatalf("got %v, want an API error %s", err, tc.code)
			}
			var re interface{ HTTPStatusCode() int }
			if !errors.As(err, &re) || re.HTTPStatusCode() != tc.status {
				t.Fatalf("got %v, want HTTP %d", err, tc.status)
			}
			if tc.check != nil && !tc.check(err) {
				t.Fatalf("got %T-wrapped %v, not the modeled exception", err, err)
			}
			if retry.IsPermanent(err) {
				t.Fatalf("retry.IsPermanent(%v) = true, want transient", err)
			}
			calls, faulted := tc.l.Total(tc.op)
			if calls-calls0 != 3 || faulted-faulted0 != 3 {
				t.Fatalf("%d calls (%d faulted) reached the layer, want the SDK's 3 attempts", calls-calls0, faulted-faulted0)
			}
		})
	}
	t.Run("fraction", func(t *testing.T) {
		if err := dl.Set(faults.Fault{Kind: faults.Throttling, Fraction: 0.5}); err != nil {
			t.Fatal(err)
		}
		defer dl.Clear()
		calls0, faulted0 := dl.Total("GetItem")
		from := time.Now()
		ok := 0
		for range 40 {
			if getItem() == nil {
				ok++
			}
		}
		calls, faulted := dl.Total("GetItem")
		calls, faulted = calls-calls0, faulted-faulted0
		perSecond := 0
		for _, s := range dl.Counts("GetItem", from, time.Now()) {
			perSecond += s.Calls
		}
		if perSecond < calls {
			t.Fatalf("the per-second counts hold %d calls, the total %d", perSecond, calls)
		}
		// Half the attempts fail; the SDK's retries make most calls succeed in the end.
		if faulted < calls/4 || faulted > 3*calls/4 || ok < 20 {
			t.Fatalf("fraction 0.5: %d of %d attempts faulted, %d of 40 calls succeeded", faulted, calls, ok)
		}
	})
}

// S3 calls get S3's XML errors: 503 SlowDown is retried and transient.
func TestAWSLayerS3SlowDown(t *testing.T) {
	c := testenv.S3(t)
	bucket := testenv.Bucket(t, c)
	sl := layer(t, os.Getenv("AWS_ENDPOINT_URL_S3"))
	sc := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(sl.url), true })
	if err := sl.Set(faults.Fault{Kind: faults.ServiceUnavailable, Fraction: 1, Operations: []string{"GET"}}); err != nil {
		t.Fatal(err)
	}
	_, err := sc.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "SlowDown" || retry.IsPermanent(err) {
		t.Fatalf("got %v, want a transient SlowDown", err)
	}
	sl.Clear()
	if _, err := sc.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}

type testLayer struct {
	*faults.AWSLayer
	url string
}

func layer(t *testing.T, upstream string) *testLayer {
	t.Helper()
	l, url := testenv.AWSFaultLayer(t, upstream, 1)
	return &testLayer{l, url}
}

// Toxiproxy in front of Redis: latency slows calls, reset_peer breaks them, disable refuses
// connections, and clearing brings it back.
func TestProxiesRedis(t *testing.T) {
	testenv.Redis(t)
	opts, err := redis.ParseURL(os.Getenv("CLICKFLEET_REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	p := faults.NewProxies()
	defer p.Close()
	addr, err := p.Add("redis", "127.0.0.1:0", opts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
	defer rdb.Close()
	ctx := context.Background()
	ping := func() (time.Duration, error) {
		start := time.Now()
		err := rdb.Ping(ctx).Err()
		return time.Since(start), err
	}
	if _, err := ping(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	names, err := p.Latency("redis", 300*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := ping(); err != nil || d < 500*time.Millisecond {
		t.Fatalf("with 300ms latency each way: ping took %v (%v), want ≥ 600ms", d, err)
	}
	if err := p.Remove("redis", names); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ResetPeer("redis", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ping(); err == nil {
		t.Fatal("ping succeeded through reset_peer")
	}
	if err := p.Clear("redis"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "ping after clearing the toxics", 10*time.Second, func() bool { _, err := ping(); return err == nil })
	// A stall: no reply, and the connection closed after the timeout.
	names, err = p.Timeout("redis", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := ping(); err == nil || d < 250*time.Millisecond {
		t.Fatalf("through a stall: ping took %v and returned %v, want an error after ≥ 300ms", d, err)
	}
	if err := p.Remove("redis", names); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "ping after the stall", 10*time.Second, func() bool { _, err := ping(); return err == nil })
	// A bandwidth cap: 64 KiB at 32 KB/s takes about 2 s.
	if _, err := p.Bandwidth("redis", 32); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := rdb.Set(ctx, testenv.Name(t, "faults"), make([]byte, 64<<10), time.Minute).Err(); err != nil {
		t.Fatalf("SET through the bandwidth cap: %v", err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("64 KiB through a 32 KB/s cap took %v, want ≈ 2s", d)
	}
	if err := p.Clear("redis"); err != nil {
		t.Fatal(err)
	}
	if err := p.Disable("redis"); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a disabled proxy accepted a connection")
	}
	if err := p.Enable("redis"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "ping after enabling the proxy again", 10*time.Second, func() bool { _, err := ping(); return err == nil })
	if _, err := p.Add("redis", "127.0.0.1:0", opts.Addr); err == nil {
		t.Fatal("a second proxy of the same name was added")
	}
	if _, err := p.Latency("nope", time.Second, 0); !errors.Is(err, faults.ErrNoProxy) {
		t.Fatalf("unknown proxy: %v, want ErrNoProxy", err)
	}
}

// Reply answers exactly the next Count matching calls with its status and code, in the service's shape,
// and then forwards again; with Forward the call reaches the server first. S3's 409
// ConditionalRequestConflict and DynamoDB's TransactionConflictException (a modeled client fault) reach
// the caller as AWS sends them, and retry.IsPermanent calls both transient.
func TestAWSLayerReply(t *testing.T) {
	c := testenv.S3(t)
	bucket := testenv.Bucket(t, c)
	sl := layer(t, os.Getenv("AWS_ENDPOINT_URL_S3"))
	sc := s3.NewFromConfig(testenv.AWSConfig(t), func(o *s3.Options) { o.BaseEndpoint, o.UsePathStyle = aws.String(sl.url), true })
	ctx := context.Background()
	put := func(key string) error {
		_, err := sc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(key), IfNoneMatch: aws.String("*")})
		return err
	}
	stored := func(key string) bool {
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		return err == nil
	}
	conflict := faults.Reply{Status: 409, Code: "ConditionalRequestConflict", Count: 2, Operations: []string{"PUT"}}
	t.Run("refused", func(t *testing.T) {
		if err := sl.Reply(conflict); err != nil {
			t.Fatal(err)
		}
		calls0, faulted0 := sl.Total("PUT")
		for _, key := range []string{"a", "b"} {
			err := put(key)
			checkAnswer(t, err, "ConditionalRequestConflict", 409)
			if stored(key) {
				t.Fatalf("%s is stored, though the refused PUT never reached the server", key)
			}
		}
		if err := put("c"); err != nil {
			t.Fatalf("the third PUT, past the reply's count: %v", err)
		}
		calls, faulted := sl.Total("PUT")
		if calls-calls0 != 3 || faulted-faulted0 != 2 || sl.Pending() != 0 {
			t.Fatalf("%d PUTs (%d answered with the reply, %d pending), want 3 (2, 0): the SDK does not retry a 409", calls-calls0, faulted-faulted0, sl.Pending())
		}
	})
	t.Run("forwarded", func(t *testing.T) {
		fwd := conflict
		fwd.Count, fwd.Forward = 1, true
		if err := sl.Reply(fwd); err != nil {
			t.Fatal(err)
		}
		checkAnswer(t, put("d"), "ConditionalRequestConflict", 409)
		if !stored("d") {
			t.Fatal("d is not stored, though the PUT was forwarded before the reply")
		}
		if err := put("d"); !strings.Contains(fmt.Sprint(err), "PreconditionFailed") {
			t.Fatalf("PUT of the stored d again: %v, want the server's 412", err)
		}
	})
	t.Run("DynamoDB modeled client fault", func(t *testing.T) {
		ddb := testenv.DynamoDB(t)
		table := testenv.LeaseTable(t, ddb)
		dl := layer(t, os.Getenv("AWS_ENDPOINT_URL_DYNAMODB"))
		dc := dynamodb.NewFromConfig(testenv.AWSConfig(t), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(dl.url) })
		if err := dl.Reply(faults.Reply{Status: 400, Code: "TransactionConflictException", Count: 1, Operations: []string{"GetItem"}}); err != nil {
			t.Fatal(err)
		}
		_, err := dc.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]dtypes.AttributeValue{"leaseKey": &dtypes.AttributeValueMemberS{Value: "x"}}})
		var modeled *dtypes.TransactionConflictException
		if !errors.As(err, &modeled) {
			t.Fatalf("got %v, want the modeled TransactionConflictException", err)
		}
		checkAnswer(t, err, "TransactionConflictException", 400)
	})
	t.Run("invalid", func(t *testing.T) {
		for _, r := range []faults.Reply{{Status: 200, Code: "X", Count: 1}, {Status: 409, Count: 1}, {Status: 409, Code: "X"}} {
			if err := sl.Reply(r); err == nil {
				t.Errorf("Reply(%+v) accepted", r)
			}
		}
	})
}

// checkAnswer fails the test unless err is the AWS API error code with HTTP status, and transient.
func checkAnswer(t *testing.T, err error, code string, status int) {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != code {
		t.Fatalf("got %v, want an API error %s", err, code)
	}
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != status {
		t.Fatalf("got %v, want HTTP %d", err, status)
	}
	if retry.IsPermanent(err) {
		t.Fatalf("retry.IsPermanent(%v) = true, want transient", err)
	}
}

// SetUpstream moves a proxy to another server, as a failover moves an endpoint's name: connections open
// through it are closed, and the client's next commands reach the new server on the same address.
func TestProxiesSetUpstream(t *testing.T) {
	testenv.Redis(t) // the stack is up, so redis-server is installed
	ports := testenv.FreePorts(t, 2)
	first := testenv.StartRedis(t, t.TempDir(), ports[0])
	second := testenv.StartRedis(t, t.TempDir(), ports[1])
	ctx := context.Background()
	for i, c := range []*redis.Client{first, second} {
		if err := c.Set(ctx, "server", i+1, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	p := faults.NewProxies()
	defer p.Close()
	addr, err := p.Add("redis", "127.0.0.1:0", first.Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if got, err := rdb.Get(ctx, "server").Result(); err != nil || got != "1" {
		t.Fatalf("through the proxy before the move: %q, %v; want the first server's 1", got, err)
	}
	raw, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 64)
	if n, err := raw.Read(reply); err != nil || string(reply[:n]) != "+PONG\r\n" {
		t.Fatalf("PING through the proxy: %q, %v", reply[:n], err)
	}
	if err := p.SetUpstream("redis", second.Options().Addr); err != nil {
		t.Fatal(err)
	}
	// A connection opened before the move is closed by it; new ones reach the second server.
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := raw.Read(reply); err == nil {
		t.Fatalf("a connection opened before the move still delivered %q after it", reply[:n])
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a connection opened before the move was still open 5 s after it")
	}
	if got, err := rdb.Get(ctx, "server").Result(); err != nil || got != "2" {
		t.Fatalf("through the proxy after the move: %q, %v; want the second server's 2", got, err)
	}
	if got, err := p.Addr("redis"); err != nil || got != addr {
		t.Fatalf("the proxy listens on %q (%v) after the move, want %q", got, err, addr)
	}
	if err := p.SetUpstream("nope", addr); !errors.Is(err, faults.ErrNoProxy) {
		t.Fatalf("unknown proxy: %v, want ErrNoProxy", err)
	}
}

// With Fault.Entries the layer fails single entries of a PutRecords call, as Kinesis reports a partial
// failure: the call succeeds, each failed entry carries the error code and no sequence number, the
// count says how many failed, and exactly the other entries are stored, in their order, under the
// sequence numbers the answer gives. Other calls pass untouched, and a fraction of 1 stores nothing.
func TestAWSLayerFailsPutRecordsEntries(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 1)
	kl := layer(t, os.Getenv("AWS_ENDPOINT_URL_KINESIS"))
	kc := kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(kl.url) })
	ctx := context.Background()
	for _, bad := range []faults.Fault{
		{Kind: faults.Throttling, Fraction: 0.5, Entries: true},
		{Kind: faults.InternalFailure, Fraction: 0.5, Entries: true, Operations: []string{"GetRecords"}},
	} {
		if err := kl.Set(bad); err == nil {
			t.Fatalf("Set(%+v) accepted", bad)
		}
	}
	put := func(from, n int) *kinesis.PutRecordsOutput {
		t.Helper()
		entries := make([]ktypes.PutRecordsRequestEntry, n)
		for i := range entries {
			entries[i] = ktypes.PutRecordsRequestEntry{Data: []byte(fmt.Sprintf("e%03d", from+i)), PartitionKey: aws.String(fmt.Sprintf("k%d", i%7))}
		}
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatalf("PutRecords through the layer: %v", err)
		}
		if len(out.Records) != n {
			t.Fatalf("%d results for %d entries", len(out.Records), n)
		}
		return out
	}

	if err := kl.Set(faults.Fault{Kind: faults.ThroughputExceeded, Fraction: 0.4, Entries: true}); err != nil {
		t.Fatal(err)
	}
	out := put(0, 200)
	var stored []string // the data the answer says were stored, in request order
	seqs := map[string]string{}
	failed := 0
	for i, r := range out.Records {
		data := fmt.Sprintf("e%03d", i)
		switch {
		case r.ErrorCode != nil:
			failed++
			if aws.ToString(r.ErrorCode) != "ProvisionedThroughputExceededException" || r.SequenceNumber != nil || aws.ToString(r.ErrorMessage) == "" {
				t.Fatalf("failed entry %d: code %q, message %q, sequence %q", i, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage), aws.ToString(r.SequenceNumber))
			}
		case r.SequenceNumber == nil || r.ShardId == nil:
			t.Fatalf("entry %d neither failed nor stored: %+v", i, r)
		default:
			stored = append(stored, data)
			seqs[data] = aws.ToString(r.SequenceNumber)
		}
	}
	if int(aws.ToInt32(out.FailedRecordCount)) != failed || kl.FailedEntries("PutRecords") != failed {
		t.Fatalf("FailedRecordCount %d, layer's count %d, failed entries %d", aws.ToInt32(out.FailedRecordCount), kl.FailedEntries("PutRecords"), failed)
	}
	if failed < 40 || failed > 120 {
		t.Fatalf("%d of 200 entries failed at fraction 0.4", failed)
	}
	if _, faulted := kl.Total("PutRecords"); faulted != 1 {
		t.Fatalf("%d calls counted as faulted, want the one", faulted)
	}
	// GetRecords passes through the layer untouched while the fault is set.
	got := readAll(t, kc, stream)
	if len(got) != len(stored) {
		t.Fatalf("%d records stored, the answer says %d", len(got), len(stored))
	}
	for i, r := range got {
		if string(r.Data) != stored[i] || aws.ToString(r.SequenceNumber) != seqs[stored[i]] {
			t.Fatalf("record %d: %s at %s, want %s at %s", i, r.Data, aws.ToString(r.SequenceNumber), stored[i], seqs[stored[i]])
		}
	}

	if err := kl.Set(faults.Fault{Kind: faults.InternalFailure, Fraction: 1, Entries: true, Operations: []string{"PutRecords"}}); err != nil {
		t.Fatal(err)
	}
	out = put(200, 30)
	for i, r := range out.Records {
		if aws.ToString(r.ErrorCode) != "InternalFailure" {
			t.Fatalf("entry %d at fraction 1: %+v", i, r)
		}
	}
	if aws.ToInt32(out.FailedRecordCount) != 30 {
		t.Fatalf("FailedRecordCount %d, want 30", aws.ToInt32(out.FailedRecordCount))
	}
	if n := len(readAll(t, kin, stream)); n != len(stored) {
		t.Fatalf("%d records stored after a call whose every entry failed, want %d", n, len(stored))
	}
}

// readAll returns the records of a one-shard stream from its start.
func readAll(t *testing.T, kin *kinesis.Client, stream string) []ktypes.Record {
	t.Helper()
	ctx := context.Background()
	it, err := kin.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: ktypes.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var out []ktypes.Record
	for iter := it.ShardIterator; iter != nil; {
		page, err := kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) == 0 {
			return out
		}
		out = append(out, page.Records...)
		iter = page.NextShardIterator
	}
	return out
}
