package emf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/emf"
)

// The line is CloudWatch's format to the byte (a golden line), for the metrics the workers report.
func TestLineGolden(t *testing.T) {
	at := time.UnixMilli(1_764_590_400_000)
	line, err := emf.Line(at, "clickfleet", map[string]string{"stream": "clickstream", "application": "consume"}, []emf.Metric{
		{Name: "MaxMillisBehindLatest", Unit: emf.Milliseconds, Value: 61500},
		{Name: "RecordsPerSecond", Unit: emf.CountPerSecond, Value: 1234.5},
		{Name: "LeasesHeld", Unit: emf.Count, Value: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	const golden = `{"LeasesHeld":3,"MaxMillisBehindLatest":61500,"RecordsPerSecond":1234.5,` +
		`"_aws":{"CloudWatchMetrics":[{"Dimensions":[["application","stream"]],"Metrics":[` +
		`{"Name":"MaxMillisBehindLatest","Unit":"Milliseconds"},{"Name":"RecordsPerSecond","Unit":"Count/Second"},` +
		`{"Name":"LeasesHeld","Unit":"Count"}],"Namespace":"clickfleet"}],"Timestamp":1764590400000},` +
		`"application":"consume","stream":"clickstream"}` + "\n"
	if string(line) != golden {
		t.Fatalf("line:\n%s\nwant:\n%s", line, golden)
	}
	if _, err := emf.Line(at, "n", map[string]string{"x": "1"}, []emf.Metric{{Name: "x", Value: 1}}); err == nil {
		t.Fatal("a metric named like a dimension was accepted")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The reporter writes one line per interval, each a JSON object with the collected values and the time
// since the previous report.
func TestReporter(t *testing.T) {
	var out syncBuf
	var mu sync.Mutex
	var elapsed []time.Duration
	r := &emf.Reporter{Namespace: "clickfleet", Dimensions: map[string]string{"stream": "s"}, Interval: 20 * time.Millisecond, Out: &out,
		Collect: func(d time.Duration) []emf.Metric {
			mu.Lock()
			elapsed = append(elapsed, d)
			mu.Unlock()
			return []emf.Metric{{Name: "LeasesHeld", Unit: emf.Count, Value: 2}}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "\n") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%q after 10 s, want 3 lines", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["LeasesHeld"] != 2.0 || v["stream"] != "s" {
			t.Fatalf("line %q: %v", l, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, d := range elapsed {
		if d <= 0 {
			t.Fatalf("elapsed %v, want positive", elapsed)
		}
	}
}
