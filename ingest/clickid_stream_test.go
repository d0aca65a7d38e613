package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/google/uuid"

	"github.com/clickfleet/clickfleet/consumer/streamtail"
	"github.com/clickfleet/clickfleet/ingest"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/messages"
)

// readRecords reads stream from its start until n records have arrived (or 30 s pass) and returns their
// bytes by click_id.
func readRecords(t *testing.T, kin streamtail.API, stream string, n int) map[string][][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	out := map[string][][]byte{}
	got := 0
	errDone := errors.New("done")
	err := streamtail.Tail(ctx, kin, stream, streamtail.Options{PollInterval: 50 * time.Millisecond}, func(r streamtail.Record) error {
		ev, err := messages.Decode(r.Data)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		out[ev.ClickID] = append(out[ev.ClickID], r.Data)
		if got++; got == n {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("read %d of %d records from %s: %v", got, n, stream, err)
	}
	return out
}

// postEvents posts body as NDJSON and returns the answer's results, failing unless the status is want.
func postEvents(t *testing.T, h *harness, body string, want int) []string {
	t.Helper()
	a := h.post(body, "application/x-ndjson", testKey)
	if a.status != want {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var r ingest.Response
	a.decode(t, &r)
	ids := make([]string, len(r.Results))
	for i, res := range r.Results {
		ids[i] = res.ClickID
	}
	return ids
}

// Events without a click_id get a UUIDv7 one, on the stream and in the answer; events with one keep it
// and their bytes.
func TestEventsGetAClickID(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 2)
	h := start(t, testConfig(t, stream), kin)

	withID := pocEvents("own", 3)
	without := []string{
		`{"user_id":"user1","event_timestamp":"1626091318000","event_name":"checkout","event_type":"click","device_type":"desktop"}`,
		`{"user_id":"user2","event_timestamp":1626091320000,"event_name":"search","click_id":null}`,
		`{"timestamp":"2021-07-12 12:01:58.732726","user_id":"35","click_id":"","event_name":"Search","additional_data":{"percent_viewed":70}}`,
	}
	sent := append(append([]string{}, without...), withID...)
	ids := postEvents(t, h, strings.Join(sent, "\n"), http.StatusOK)
	if len(ids) != len(sent) {
		t.Fatalf("%d results for %d events", len(ids), len(sent))
	}
	onStream := readRecords(t, kin, stream, len(sent))
	for i, id := range ids {
		recs := onStream[id]
		if len(recs) != 1 {
			t.Fatalf("event %d: click_id %q is on the stream %d times", i, id, len(recs))
		}
		if i >= len(without) {
			if want := clickID(t, sent[i]); id != want || string(recs[0]) != sent[i] {
				t.Errorf("event %d with click_id %q: answered %q, stored %s", i, want, id, recs[0])
			}
			continue
		}
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.String() != id {
			t.Errorf("event %d: click_id %q is not a UUIDv7 (%v)", i, id, err)
		}
		if !strings.Contains(string(recs[0]), `"click_id":"`+id+`"`) {
			t.Errorf("event %d stored as %s", i, recs[0])
		}
	}
	// The event without the member has it appended, and is otherwise byte for byte as sent.
	if got, want := string(onStream[ids[0]][0]), strings.TrimSuffix(without[0], "}")+`,"click_id":"`+ids[0]+`"}`; got != want {
		t.Errorf("stored\n %s\nwant\n %s", got, want)
	}
	if len(map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true}) != 3 {
		t.Error("two events got the same click_id")
	}
}

// stallingKinesis is a loopback HTTP proxy in front of the Kinesis emulator that forwards every call but,
// for the first stall PutRecords calls, withholds the emulator's answer until the caller gives up: the
// records are stored, the caller sees a timeout — a PutRecords call lost on the way back.
type stallingKinesis struct {
	url     string
	stall   int32
	stalled atomic.Int32
}

func newStallingKinesis(t *testing.T, stall int32) *stallingKinesis {
	t.Helper()
	upstream := os.Getenv("AWS_ENDPOINT_URL_KINESIS")
	if upstream == "" {
		t.Fatal("AWS_ENDPOINT_URL_KINESIS is not set")
	}
	p := &stallingKinesis{stall: stall}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, upstream+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutRecords") && resp.StatusCode == http.StatusOK && p.stalled.Add(1) <= p.stall {
			select { // stored; the answer is lost: the caller's timeout ends the wait
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// A PutRecords call that times out after Kinesis stored it is retried and stores every event again: both
// copies carry the same click_id — the one the ingest gave it before the first attempt — and the same
// bytes, and the answer reports that id.
func TestRetriedPutRecordsStoresOneClickID(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 2)
	proxy := newStallingKinesis(t, 1)
	viaProxy := kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) {
		o.BaseEndpoint = &proxy.url
		o.RetryMaxAttempts = 1
	})
	cfg := testConfig(t, stream)
	cfg.PutTimeout, cfg.PutAttempts, cfg.PutBackoff = 500*time.Millisecond, 3, 10*time.Millisecond
	h := start(t, cfg, viaProxy)

	var sent []string
	for i := range 20 {
		sent = append(sent, labEvent("user"+string(rune('a'+i%4)), "")) // an empty click_id gets one
	}
	sent = append(sent, pocEvents("own", 5)...)
	ids := postEvents(t, h, strings.Join(sent, "\n"), http.StatusOK)
	if proxy.stalled.Load() < 2 {
		t.Fatalf("%d PutRecords calls; want a stalled one and its retry", proxy.stalled.Load())
	}
	if got := h.metric("clickfleet_ingest_putrecords_retried_records_total", "stream", "events"); got != float64(len(sent)) {
		t.Fatalf("%g records retried, want %d", got, len(sent))
	}
	onStream := readRecords(t, kin, stream, 2*len(sent))
	for i, id := range ids {
		recs := onStream[id]
		if id == "" || len(recs) != 2 || !bytes.Equal(recs[0], recs[1]) {
			t.Fatalf("event %d (click_id %q): %d records on the stream carry it, want 2 identical ones", i, id, len(recs))
		}
		if i >= 20 && id != clickID(t, sent[i]) {
			t.Fatalf("event %d: its own click_id became %q", i, id)
		}
	}
	t.Logf("%d events, each stored twice under one click_id after a lost PutRecords answer", len(sent))
}
