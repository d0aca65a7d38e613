package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

// emfLines starts cmd and returns its standard output's EMF lines (JSON objects with _aws), decoded; the
// channel closes with the output. The process gets SIGTERM when the test ends.
func emfLines(t *testing.T, cmd *exec.Cmd) <-chan map[string]any {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	lines := make(chan map[string]any)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var v map[string]any
			if json.Unmarshal(sc.Bytes(), &v) == nil && v["_aws"] != nil {
				lines <- v
			}
		}
	}()
	return lines
}

// A consume worker writes its scaling metrics as EMF lines on standard output: the lease table as the
// application, its leases, and a records rate that saw the records put.
func TestConsumeWritesEMF(t *testing.T) {
	kin, ddb := testenv.Kinesis(t), testenv.DynamoDB(t)
	testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stream := testenv.Stream(t, kin, 2)
	leases := testenv.LeaseTable(t, ddb)
	var entries []ktypes.PutRecordsRequestEntry
	for i := range 200 {
		u := fmt.Sprintf("u%d", i%7)
		entries = append(entries, ktypes.PutRecordsRequestEntry{PartitionKey: aws.String(u),
			Data: fmt.Appendf(nil, `{"user_id":%q,"event_timestamp":%d,"event_name":"search"}`, u, 1_626_091_318_000+int64(i))})
	}
	if _, err := kin.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Binary(t), "consume", "--processor", "count", "--stream", stream, "--lease-table", leases,
		"--redis-url", os.Getenv("CLICKFLEET_REDIS_URL"), "--key-prefix", testenv.Name(t, "cf")+":", "--http-listen", "",
		"--worker-id", "w1", "--take-interval", "200ms", "--idle-time", "100ms", "--emf-interval", "300ms", "--log-format", "json")
	lines := emfLines(t, cmd)
	sawRecords, sawLeases := false, false
	for !sawRecords || !sawLeases {
		select {
		case v, ok := <-lines:
			if !ok {
				t.Fatal("consume closed its standard output")
			}
			if v["stream"] != stream || v["application"] != leases {
				t.Fatalf("EMF line with dimensions %v/%v, want %s/%s: %v", v["stream"], v["application"], stream, leases, v)
			}
			aws := v["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
			if aws["Namespace"] != emfNamespace {
				t.Fatalf("namespace %v", aws["Namespace"])
			}
			if _, ok := v[emfMetricLag].(float64); !ok {
				t.Fatalf("no %s in %v", emfMetricLag, v)
			}
			sawLeases = sawLeases || v[emfMetricLeases].(float64) == 2
			sawRecords = sawRecords || v[emfMetricRecords].(float64) > 0
		case <-ctx.Done():
			t.Fatalf("no EMF line showed both leases held and records processed within 90 s (leases %v, records %v)", sawLeases, sawRecords)
		}
	}
}

// clickfleet scale writes the stream's open shards as an EMF line (what deploy/aws caps the workers'
// task counts at), once it has looked at the stream; dry-run leads without a lock.
func TestScaleWritesOpenShardsEMF(t *testing.T) {
	kin := testenv.Kinesis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream := testenv.Stream(t, kin, 3)
	cmd := exec.Command(testenv.Binary(t), "scale", "--dry-run", "--stream", stream, "--source", "metrics",
		"--workers", "http://127.0.0.1:1", "--scale-interval", "200ms", "--emf-interval", "300ms", "--http-listen", "", "--log-format", "json")
	lines := emfLines(t, cmd)
	select {
	case v, ok := <-lines:
		if !ok {
			t.Fatal("scale closed its standard output without an EMF line")
		}
		if v[emfDimStream] != stream || v[emfMetricShards] != 3.0 {
			t.Fatalf("EMF line %v, want %s=%s and %s=3", v, emfDimStream, stream, emfMetricShards)
		}
		if ns := v["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)["Namespace"]; ns != emfNamespace {
			t.Fatalf("namespace %v", ns)
		}
	case <-ctx.Done():
		t.Fatal("no EMF line with the open shards within 60 s")
	}
}
