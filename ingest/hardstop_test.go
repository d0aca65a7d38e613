package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

// Records that reach the batcher after the hard stop (the send context is already cancelled when their
// call would start, so no PutRecords attempt is made) are failed, never stored: the answer is a 503 with
// Retry-After whose per-event results say failed with a reason, and the metrics count them as failed,
// not accepted. This drives the events batcher with a cancelled send context, as Serve does after
// ShutdownTimeout, and a request through the server's handler.
func TestHardStopReportsUnsentRecordsFailed(t *testing.T) {
	kin := testenv.Kinesis(t)
	cfg := DefaultConfig()
	keys, err := NewKeys([]string{"test-key-0001"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Keys, cfg.Stream, cfg.MaxClockSkew, cfg.Linger = keys, testenv.Stream(t, kin, 1), 0, 0
	reg := prometheus.NewRegistry()
	s, err := New(cfg, kin, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	sendCtx, hardStop := context.WithCancel(context.Background())
	hardStop()
	stop, ran := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ran)
		s.events.run(stop, sendCtx)
	}()
	defer func() { close(stop); <-ran }()

	const n = 3
	var body strings.Builder
	for i := range n {
		fmt.Fprintf(&body, `{"user_id":"u%d","event_timestamp":"1626091318000","event_name":"checkout","event_type":"click","device_type":"desktop","click_id":"hard-stop-%d"}`+"\n", i, i)
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body.String()))
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("X-Api-Key", "test-key-0001")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)

	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("answer %d (Retry-After %q): %s; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	var resp Response
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("answer is not a Response: %v: %s", err, rec.Body)
	}
	if resp.Accepted != 0 || resp.Failed != n || len(resp.Results) != n {
		t.Fatalf("accepted %d, failed %d, %d results; want 0, %d, %d: %s", resp.Accepted, resp.Failed, len(resp.Results), n, n, rec.Body)
	}
	for _, r := range resp.Results {
		if r.Status != StatusFailed || r.Reason == "" || r.ShardID != "" || r.SequenceNumber != "" {
			t.Errorf("event %d: %+v, want failed with a reason and no position", r.Index, r)
		}
	}
	if got := testutil.ToFloat64(s.m.events.WithLabelValues(outcomeAccepted)); got != 0 {
		t.Errorf("%v events counted accepted, want 0", got)
	}
	if got := testutil.ToFloat64(s.m.events.WithLabelValues(outcomeFailed)); got != n {
		t.Errorf("%v events counted failed, want %d", got, n)
	}
	for _, result := range []string{"ok", "partial", "error"} {
		if got := testutil.ToFloat64(s.m.putCalls.WithLabelValues("events", result)); got != 0 {
			t.Errorf("%v PutRecords calls %s after the hard stop, want none", got, result)
		}
	}
}
