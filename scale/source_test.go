package scale

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// worker serves a consume worker's two read counters on /metrics, as the Prometheus client writes them.
type worker struct {
	mu             sync.Mutex
	bytes, records float64
	down           bool
	srv            *httptest.Server
}

func newWorker(t *testing.T) *worker {
	w := &worker{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.down || r.URL.Path != "/metrics" {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(rw, "# HELP %s x\n# TYPE %s counter\n%s %g\n", MetricReadBytes, MetricReadBytes, MetricReadBytes, w.bytes)
		fmt.Fprintf(rw, "# HELP %s x\n# TYPE %s counter\n%s %g\n", MetricReadRecords, MetricReadRecords, MetricReadRecords, w.records)
		fmt.Fprintf(rw, "# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 12\n")
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *worker) set(bytes, records float64, down bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bytes, w.records, w.down = bytes, records, down
}

func TestWorkersSource(t *testing.T) {
	a, b := newWorker(t), newWorker(t)
	src := &Workers{URLs: []string{a.srv.URL, b.srv.URL + "/"}}
	ctx := context.Background()
	got, err := src.Rates(ctx, time.Time{}, t0)
	if err != nil || len(got) != 0 {
		t.Fatalf("first scrape primes the counters and gives no sample: %v %v", got, err)
	}
	a.set(1000, 10, false)
	b.set(3000, 30, false)
	got, err = src.Rates(ctx, time.Time{}, t0.Add(2*time.Second))
	if err != nil || len(got) != 1 {
		t.Fatalf("second scrape: %v %v", got, err)
	}
	if s := got[0]; s.BytesPerSecond != 2000 || s.RecordsPerSecond != 20 || s.Period != 2*time.Second || !s.End.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("sample %+v, want 2000 B/s and 20 records/s over 2s (both workers summed)", s)
	}

	// A worker that does not answer: no sample; the next complete scrape covers both periods.
	b.set(5000, 50, true)
	if _, err := src.Rates(ctx, time.Time{}, t0.Add(3*time.Second)); err == nil || !strings.Contains(err.Error(), b.srv.URL) {
		t.Fatalf("a worker down must be an error naming it, got %v", err)
	}
	a.set(2000, 20, false)
	b.set(5000, 50, false)
	got, err = src.Rates(ctx, time.Time{}, t0.Add(4*time.Second))
	if err != nil || len(got) != 1 || got[0].RecordsPerSecond != 15 || got[0].Period != 2*time.Second {
		t.Fatalf("after the gap: %+v %v, want 30 records over 2s", got, err)
	}

	// A worker restarted: its counters began again at 0.
	b.set(400, 4, false)
	got, err = src.Rates(ctx, time.Time{}, t0.Add(5*time.Second))
	if err != nil || len(got) != 1 || got[0].RecordsPerSecond != 4 || got[0].BytesPerSecond != 400 {
		t.Fatalf("after a restart: %+v %v, want only the restarted worker's 4 records", got, err)
	}

	// Not a worker: no counters.
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "up 1") }))
	defer other.Close()
	if _, err := (&Workers{URLs: []string{other.URL}}).Rates(ctx, time.Time{}, t0); err == nil || !strings.Contains(err.Error(), MetricReadRecords) {
		t.Fatalf("a server without the counters: %v", err)
	}
}

// fakeCloudWatch answers GetMetricData from per-minute sums, two datapoints per page, and records the
// requests.
type fakeCloudWatch struct {
	bytes, records map[time.Time]float64
	requests       []*cloudwatch.GetMetricDataInput
}

func (f *fakeCloudWatch) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	f.requests = append(f.requests, in)
	page := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &page)
	}
	out := &cloudwatch.GetMetricDataOutput{}
	more := false
	for _, q := range in.MetricDataQueries {
		src := f.bytes
		if aws.ToString(q.MetricStat.Metric.MetricName) == CloudWatchRecordsMetric {
			src = f.records
		}
		var ts []time.Time
		for t := aws.ToTime(in.StartTime); t.Before(aws.ToTime(in.EndTime)); t = t.Add(time.Minute) {
			if _, ok := src[t]; ok {
				ts = append(ts, t)
			}
		}
		r := cwtypes.MetricDataResult{Id: q.Id, Label: q.MetricStat.Metric.MetricName, StatusCode: cwtypes.StatusCodeComplete}
		for i := 2 * page; i < min(len(ts), 2*page+2); i++ {
			r.Timestamps, r.Values = append(r.Timestamps, ts[i]), append(r.Values, src[ts[i]])
		}
		if len(ts) > 2*page+2 {
			more = true
			r.StatusCode = cwtypes.StatusCodePartialData
		}
		out.MetricDataResults = append(out.MetricDataResults, r)
	}
	if more {
		out.NextToken = aws.String(fmt.Sprint(page + 1))
	}
	return out, nil
}

func TestCloudWatchSource(t *testing.T) {
	m := func(k int) time.Time { return t0.Add(time.Duration(k) * time.Minute) }
	fake := &fakeCloudWatch{
		bytes:   map[time.Time]float64{m(-6): 60 * 1000, m(-5): 60 * 2000, m(-3): 60 * 3000, m(-2): 60 * 9999},
		records: map[time.Time]float64{m(-6): 60 * 10, m(-5): 60 * 20, m(-3): 60 * 30, m(-2): 60 * 99},
	}
	src := &CloudWatch{API: fake, Stream: "clickstream"}
	now := t0.Add(10 * time.Second)
	got, err := src.Rates(context.Background(), m(-6).Add(25*time.Second), now)
	if err != nil {
		t.Fatal(err)
	}
	// The request: both metrics of the stream, one-minute sums, whole minutes from since (rounded down)
	// to now minus the two-minute delay (rounded down).
	in := fake.requests[0]
	if !aws.ToTime(in.StartTime).Equal(m(-6)) || !aws.ToTime(in.EndTime).Equal(m(-2)) {
		t.Fatalf("range %s..%s, want %s..%s", aws.ToTime(in.StartTime), aws.ToTime(in.EndTime), m(-6), m(-2))
	}
	if len(in.MetricDataQueries) != 2 {
		t.Fatalf("queries %d", len(in.MetricDataQueries))
	}
	for i, want := range []string{CloudWatchBytesMetric, CloudWatchRecordsMetric} {
		q := in.MetricDataQueries[i].MetricStat
		if aws.ToString(q.Metric.Namespace) != "AWS/Kinesis" || aws.ToString(q.Metric.MetricName) != want || aws.ToString(q.Stat) != "Sum" ||
			aws.ToInt32(q.Period) != 60 || len(q.Metric.Dimensions) != 1 || aws.ToString(q.Metric.Dimensions[0].Name) != "StreamName" ||
			aws.ToString(q.Metric.Dimensions[0].Value) != "clickstream" {
			t.Fatalf("query %d: %+v %+v", i, q, q.Metric)
		}
	}
	if len(fake.requests) != 2 || aws.ToString(fake.requests[1].NextToken) != "1" {
		t.Fatalf("want the second page read with the token, got %d requests", len(fake.requests))
	}
	// The answer: one sample a minute, per second, a minute without a datapoint counted as zero, nothing
	// of the minute not yet trusted (m(-2)).
	want := []struct{ bytes, records float64 }{{1000, 10}, {2000, 20}, {0, 0}, {3000, 30}}
	if len(got) != len(want) {
		t.Fatalf("samples %+v", got)
	}
	for i, w := range want {
		s := got[i]
		if !s.End.Equal(m(-6+i+1)) || s.Period != time.Minute || math.Abs(s.BytesPerSecond-w.bytes) > 1e-9 || math.Abs(s.RecordsPerSecond-w.records) > 1e-9 {
			t.Fatalf("sample %d: %+v, want %v/s ending %s", i, s, w, m(-6+i+1))
		}
	}
	// Nothing to ask yet: no call.
	fake.requests = nil
	if got, err := src.Rates(context.Background(), m(-3), m(-1)); err != nil || len(got) != 0 || len(fake.requests) != 0 {
		t.Fatalf("an empty range: %v %v, %d requests", got, err, len(fake.requests))
	}
}

func TestMergeSamples(t *testing.T) {
	s := func(end int, r float64) Sample {
		return Sample{End: t0.Add(time.Duration(end) * time.Minute), Period: time.Minute, RecordsPerSecond: r}
	}
	got := mergeSamples([]Sample{s(-3, 1), s(-2, 2), s(-1, 3)}, []Sample{s(-1, 30), s(0, 4), s(-5, 9)}, t0.Add(-3*time.Minute))
	want := []Sample{s(-2, 2), s(-1, 30), s(0, 4)}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if !got[i].End.Equal(want[i].End) || got[i].RecordsPerSecond != want[i].RecordsPerSecond {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
}
