package efoproxy_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/internal/efoproxy"
)

// upstream stands in for kinesis-mock's TLS port: it answers SubscribeToShard as kinesis-mock does — HTTP
// 200 without `initial-response`, then events, or an exception as the first event for consumer "busy" —
// and keeps a subscription of consumer "held" open until the client goes.
func upstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ ConsumerARN string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.WriteHeader(http.StatusOK)
		enc := eventstream.NewEncoder()
		send := func(m eventstream.Message) {
			_ = enc.Encode(w, m)
			w.(http.Flusher).Flush()
		}
		switch {
		case strings.Contains(in.ConsumerARN, "/consumer/busy:"):
			send(exception("ResourceInUseException", "Another active subscription exists"))
		case strings.Contains(in.ConsumerARN, "/consumer/held:"):
			send(recordsEvent("1", "a"))
			<-r.Context().Done()
		default:
			send(recordsEvent("1", "a"))
			send(recordsEvent("2", "b"))
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func recordsEvent(seq, data string) eventstream.Message {
	payload, _ := json.Marshal(map[string]any{
		"Records":                    []map[string]any{{"SequenceNumber": seq, "Data": []byte(data), "PartitionKey": "k", "ApproximateArrivalTimestamp": 1.7e9}},
		"ContinuationSequenceNumber": seq, "MillisBehindLatest": 0,
	})
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Headers.Set(":event-type", eventstream.StringValue("SubscribeToShardEvent"))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload = payload
	return m
}

func exception(kind, msg string) eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("exception"))
	m.Headers.Set(":exception-type", eventstream.StringValue(kind))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload, _ = json.Marshal(map[string]string{"message": msg})
	return m
}

// fixture is a proxy in front of upstream, and an SDK client of the proxy.
type fixture struct {
	proxy  *efoproxy.Proxy
	client *kinesis.Client
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	up := upstream(t)
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	p, err := efoproxy.New(efoproxy.Config{Upstream: up.URL, RootCAs: roots, FirstEventWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewUnstartedServer(p)
	front.EnableHTTP2 = true
	front.StartTLS()
	t.Cleanup(front.Close)
	client := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(front.URL), HTTPClient: front.Client(),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	return fixture{proxy: p, client: client}
}

func (f fixture) subscribe(ctx context.Context, consumer string) (*kinesis.SubscribeToShardOutput, error) {
	return f.client.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
		ConsumerARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/" + consumer + ":1"), ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &ktypes.StartingPosition{Type: ktypes.ShardIteratorTypeTrimHorizon}})
}

// events reads the stream's events to its end and returns their first records' data and the stream's error.
func events(t *testing.T, out *kinesis.SubscribeToShardOutput) ([]string, error) {
	t.Helper()
	stream := out.GetStream()
	defer stream.Close()
	var data []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-stream.Events():
			if !ok {
				return data, stream.Err()
			}
			if e, isEvent := ev.(*ktypes.SubscribeToShardEventStreamMemberSubscribeToShardEvent); isEvent && len(e.Value.Records) > 0 {
				data = append(data, string(e.Value.Records[0].Data))
			}
		case <-timeout:
			t.Fatalf("the stream did not end within 10 s; events so far: %v", data)
		}
	}
}

// Through the proxy the SDK reads kinesis-mock's subscriptions (the initial-response it needs comes first)
// and gets a refused one as the error Kinesis answers with.
func TestProxyMakesSubscriptionsReadable(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	out, err := f.subscribe(ctx, "app")
	if err != nil {
		t.Fatalf("SubscribeToShard through the proxy: %v", err)
	}
	data, err := events(t, out)
	if err != nil || strings.Join(data, ",") != "a,b" {
		t.Fatalf("events %v, end %v; want a,b and a clean end", data, err)
	}
	_, err = f.subscribe(ctx, "busy")
	var inUse *ktypes.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Fatalf("a subscription kinesis-mock refuses with an exception event: %v, want *types.ResourceInUseException", err)
	}
	if opened, open := f.proxy.Count("app"); opened != 1 || open != 0 {
		t.Fatalf("Count(app) = %d opened, %d open; want 1 and 0", opened, open)
	}
}

// End ends a consumer's open subscriptions as Kinesis would: cleanly (the SDK's Err is nil) or with a
// reset stream (its Err is not).
func TestProxyEndsSubscriptions(t *testing.T) {
	for _, tc := range []struct {
		how     efoproxy.How
		wantErr bool
	}{{efoproxy.Clean, false}, {efoproxy.Reset, true}} {
		t.Run(string(tc.how), func(t *testing.T) {
			f := newFixture(t)
			out, err := f.subscribe(t.Context(), "held")
			if err != nil {
				t.Fatal(err)
			}
			first := <-out.GetStream().Events() // the subscription is open
			if first == nil {
				t.Fatalf("no first event: %v", out.GetStream().Err())
			}
			if n := f.proxy.End("other", tc.how); n != 0 {
				t.Fatalf("End(other) ended %d subscriptions, want 0", n)
			}
			if n := f.proxy.End("held", tc.how); n != 1 {
				t.Fatalf("End(held) ended %d subscriptions, want 1", n)
			}
			_, err = events(t, out)
			if (err != nil) != tc.wantErr || errors.Is(err, io.EOF) {
				t.Fatalf("the stream ended with %v; want an error: %v", err, tc.wantErr)
			}
		})
	}
}
