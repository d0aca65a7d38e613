package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/clickfleet/clickfleet/consumer/streamtail"
	"github.com/clickfleet/clickfleet/ingest"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/messages"
)

const testKey = "test-key-0001"

// harness is an ingest server on a loopback port, stopped when the test ends.
type harness struct {
	t    testing.TB
	url  string
	reg  *prometheus.Registry
	stop func() error // cancels Serve and returns its error
}

func testConfig(t testing.TB, stream string) ingest.Config {
	t.Helper()
	cfg := ingest.DefaultConfig()
	keys, err := ingest.NewKeys([]string{testKey, "other-key-0002"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Keys, cfg.Stream = keys, stream
	cfg.MaxClockSkew = 0
	cfg.Linger = 2 * time.Millisecond
	cfg.PutTimeout = 10 * time.Second // a loaded test machine; a timed-out call may be stored and retried
	return cfg
}

func start(t testing.TB, cfg ingest.Config, api ingest.KinesisAPI) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv, err := ingest.New(cfg, api, ingest.Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	h := &harness{t: t, url: "http://" + ln.Addr().String(), reg: reg}
	h.stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", a.status, err, a.body)
	}
}

func (h *harness) post(body, contentType, key string, extra ...string) answer {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+"/v1/events", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) answer {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func (h *harness) get(path string) answer {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+path, nil)
	return h.do(req)
}

// metric returns the value of a counter or gauge with the given labels.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// pocEvents returns n POC events with click ids prefix-0 … prefix-(n-1).
func pocEvents(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"timestamp":"2021-07-12 12:01:58.%06d","user_id":"%d","pixel_id":"px","click_id":"%s-%d","event_name":"Search","user_ip":"","additional_data":{"time_on_data":1,"percent_viewed":50,"product_id":7,"price":1.5}}`,
			i%1000000, i%37, prefix, i)
	}
	return out
}

func labEvent(user, click string) string {
	return fmt.Sprintf(`{"user_id":%q,"event_timestamp":"1626091318000","event_name":"checkout","event_type":"click","device_type":"desktop","click_id":%q}`, user, click)
}

// readClickIDs reads the stream until every id in ids has been seen (or 30 s pass) and counts click ids.
func readClickIDs(t testing.TB, kin streamtail.API, stream string, ids []string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]int{}
	missing := map[string]bool{}
	for _, id := range ids {
		missing[id] = true
	}
	errDone := errors.New("done")
	err := streamtail.Tail(ctx, kin, stream, streamtail.Options{PollInterval: 50 * time.Millisecond}, func(r streamtail.Record) error {
		ev, err := messages.Decode(r.Data)
		if err != nil {
			return fmt.Errorf("record on %s does not decode: %w", stream, err)
		}
		mu.Lock()
		defer mu.Unlock()
		seen[ev.ClickID]++
		delete(missing, ev.ClickID)
		if len(missing) == 0 {
			return errDone
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		t.Fatalf("reading %s: %v", stream, err)
	}
	return seen
}

// checkStoredOnce fails unless every id is on the stream, and exactly once unless the ingest retried a
// PutRecords call: a call that timed out may have been stored, so a retry can store a record twice
// (delivery is at least once; click_id is there to de-duplicate).
func checkStoredOnce(t testing.TB, h *harness, seen map[string]int, ids []string) {
	t.Helper()
	retried := h.metric("clickfleet_ingest_putrecords_retried_records_total", "stream", "events")
	for _, id := range ids {
		switch n := seen[id]; {
		case n == 0:
			t.Errorf("click %s was acknowledged but is not on the stream", id)
		case n > 1 && retried == 0:
			t.Errorf("click %s is on the stream %d times with no retried call, want once", id, n)
		case n > 1:
			t.Logf("click %s is on the stream %d times after %g retried records (at least once)", id, n, retried)
		}
	}
}

// Every accepted shape lands on the stream, keyed by user_id, and the answer lists each event.
func TestStoredEventsAreOnTheStream(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 2)
	h := start(t, testConfig(t, stream), kin)

	evs := pocEvents("ok", 30)
	var want []string
	post := func(body, ct string, ids ...string) {
		t.Helper()
		a := h.post(body, ct, testKey)
		if a.status != http.StatusOK {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
		var r ingest.Response
		a.decode(t, &r)
		if r.Accepted != len(ids) || len(r.Results) != len(ids) {
			t.Fatalf("answer %s; want %d accepted", a.body, len(ids))
		}
		for i, res := range r.Results {
			if res.Status != ingest.StatusStored || res.SequenceNumber == "" || res.ShardID == "" || res.Index != i {
				t.Fatalf("result %d: %+v", i, res)
			}
		}
		want = append(want, ids...)
	}
	post(evs[0], "application/json", "ok-0")
	post("["+strings.Join(evs[1:15], ",")+"]", "application/json; charset=utf-8", idsOf("ok", 1, 15)...)
	post(strings.Join(evs[15:], "\n")+"\n", "application/x-ndjson", idsOf("ok", 15, 30)...)
	post(labEvent("user1", "lab-1")+"\r\n"+labEvent("user2", "lab-2"), "application/x-ndjson", "lab-1", "lab-2")

	checkStoredOnce(t, h, readClickIDs(t, kin, stream, want), want)
	if got := h.metric("clickfleet_ingest_events_total", "outcome", "accepted"); got != float64(len(want)) {
		t.Errorf("accepted metric %g, want %d", got, len(want))
	}
	if got := h.metric("clickfleet_ingest_requests_total", "code", "200"); got != 4 {
		t.Errorf("requests{code=200} = %g, want 4", got)
	}
}

func idsOf(prefix string, from, to int) []string {
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("%s-%d", prefix, i))
	}
	return ids
}

// Each refusal has its status and a JSON body saying why; nothing refused reaches the stream.
func TestStatuses(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 1)
	cfg := testConfig(t, stream)
	cfg.MaxEventsPerRequest = 5
	cfg.MaxEventBytes = 2048
	cfg.MaxRequestBytes = 8192
	cfg.RateLimit, cfg.RateBurst = 0.5, 8 // the "other" key runs dry after 8 events
	cfg.CORSOrigins = []string{"https://shop.example.com"}
	h := start(t, cfg, kin)
	ev := pocEvents("st", 1)[0]
	big := `{"user_id":"u","event_timestamp":1626091318000,"event_name":"x","pad":"` + strings.Repeat("p", 3000) + `"}`

	for _, tc := range []struct {
		name        string
		body, ct    string
		key         string
		headers     []string
		status      int
		errContains string
		field       string
	}{
		{name: "missing key", body: ev, ct: "application/json", status: 401, errContains: "missing x-api-key"},
		{name: "unknown key", body: ev, ct: "application/json", key: "not-a-key-123", status: 403, errContains: "unknown API key"},
		{name: "text/plain", body: ev, ct: "text/plain", key: testKey, status: 415, errContains: "application/x-ndjson"},
		{name: "no content type", body: ev, key: testKey, status: 415, errContains: "missing Content-Type"},
		{name: "gzip", body: ev, ct: "application/json", key: testKey, headers: []string{"Content-Encoding", "gzip"}, status: 415, errContains: "uncompressed"},
		{name: "invalid event", body: `[` + ev + `,{"user_id":"u","event_timestamp":"soon","event_name":"x"}]`, ct: "application/json", key: testKey,
			status: 400, errContains: "1 of 2 events are invalid", field: "event_timestamp"},
		{name: "too many events", body: strings.Repeat(labEvent("u", "c")+"\n", 6), ct: "application/x-ndjson", key: testKey, status: 413, errContains: "too many events"},
		{name: "event too large", body: big, ct: "application/json", key: testKey, status: 413, errContains: "over the size limit"},
		{name: "body too large", body: "[" + strings.Repeat(" ", 9000) + "]", ct: "application/json", key: testKey, status: 413, errContains: "over the limit of 8192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := h.post(tc.body, tc.ct, tc.key, tc.headers...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			var e struct {
				Error  string              `json:"error"`
				Errors []ingest.FieldError `json:"errors"`
			}
			a.decode(t, &e)
			if !strings.Contains(e.Error, tc.errContains) {
				t.Fatalf("error %q does not contain %q", e.Error, tc.errContains)
			}
			if tc.field != "" && (len(e.Errors) != 1 || e.Errors[0].Field != tc.field || e.Errors[0].Index != 1 || e.Errors[0].Reason == "") {
				t.Fatalf("field errors %+v; want one on index 1 field %s", e.Errors, tc.field)
			}
		})
	}

	t.Run("body too large without content length", func(t *testing.T) {
		// A chunked body has no Content-Length: the limit is enforced while reading.
		req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/events", io.MultiReader(strings.NewReader("["), strings.NewReader(strings.Repeat(" ", 9000)), strings.NewReader("]")))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", testKey)
		req.ContentLength = -1
		if a := h.do(req); a.status != 413 {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	})

	t.Run("rate limited", func(t *testing.T) {
		body := strings.Join(pocEvents("rl", 5), "\n")
		// 5 events a request against a bucket of 8 refilled at 0.5/s: the third request is refused unless the
		// machine is so slow that the bucket refills between requests, so allow a few more before failing.
		var a answer
		for i := 0; i < 8; i++ {
			a = h.post(body, "application/x-ndjson", "other-key-0002")
			if a.status != 200 {
				break
			}
		}
		if a.status != 429 {
			t.Fatalf("status %d, want 429 within 8 requests: %s", a.status, a.body)
		}
		if ra := a.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Fatalf("Retry-After %q", ra)
		}
		if a := h.post(ev, "application/json", testKey); a.status != 200 {
			t.Fatalf("another key is limited too: %d", a.status)
		}
	})

	t.Run("method", func(t *testing.T) {
		if a := h.get("/v1/events"); a.status != 405 || a.header.Get("Allow") != "POST, OPTIONS" {
			t.Fatalf("GET: %d %v", a.status, a.header)
		}
		if a := h.get("/v2/nothing"); a.status != 404 {
			t.Fatalf("unknown path: %d", a.status)
		}
	})

	t.Run("CORS", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, h.url+"/v1/events", nil)
		req.Header.Set("Origin", "https://shop.example.com")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, x-api-key")
		a := h.do(req)
		if a.status != 204 || a.header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
			!strings.Contains(a.header.Get("Access-Control-Allow-Headers"), "X-Api-Key") {
			t.Fatalf("preflight: %d %v", a.status, a.header)
		}
		a = h.post(ev, "application/json", testKey, "Origin", "https://shop.example.com")
		if a.status != 200 || a.header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" {
			t.Fatalf("POST with origin: %d %v", a.status, a.header)
		}
		a = h.post(ev, "application/json", testKey, "Origin", "https://evil.example.com")
		if a.header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("other origin allowed: %v", a.header)
		}
	})

	t.Run("health", func(t *testing.T) {
		if a := h.get("/healthz"); a.status != 200 {
			t.Fatalf("/healthz: %d %s", a.status, a.body)
		}
		// /readyz probes Kinesis; on a loaded machine one probe may time out, so ask for a while.
		testenv.WaitForState(t, "/readyz to answer 200", 20*time.Second, func() (bool, string) {
			a := h.get("/readyz")
			return a.status == 200, fmt.Sprintf("%d %s", a.status, a.body)
		})
		a := h.get("/metrics")
		for _, series := range []string{`clickfleet_ingest_requests_total{code="401"} 1`, `clickfleet_ingest_requests_total{code="429"} 1`,
			"clickfleet_ingest_putrecords_duration_seconds_bucket", `clickfleet_ingest_events_total{outcome="rejected"} 2`} {
			if !bytes.Contains(a.body, []byte(series)) {
				t.Errorf("/metrics lacks %s", series)
			}
		}
	})
}

// With InvalidToErrors the valid events go to the stream and the invalid ones to the error stream, as
// error records holding the original bytes; the answer is 202 and says which went where.
func TestInvalidToErrorStream(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 1)
	errStream := testenv.Stream(t, kin, 1)
	cfg := testConfig(t, stream)
	cfg.InvalidToErrors, cfg.ErrorStream = true, errStream
	h := start(t, cfg, kin)
	bad := `{"user_id":"u9","event_timestamp":1626091318000,"event_name":"x","click_id":"bad-1","user_ip":"not-an-ip"}`
	a := h.post(labEvent("u1", "good-1")+"\n"+bad+"\n"+labEvent("u2", "good-2"), "application/x-ndjson", testKey)
	if a.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var r ingest.Response
	a.decode(t, &r)
	if r.Accepted != 2 || r.ErrorStream != 1 || r.Results[1].Status != ingest.StatusErrorStream || r.Results[1].Errors[0].Field != "user_ip" {
		t.Fatalf("answer %s", a.body)
	}
	seen := readClickIDs(t, kin, stream, []string{"good-1", "good-2"})
	if len(seen) != 2 {
		t.Fatalf("events stream holds %v", seen)
	}
	checkStoredOnce(t, h, seen, []string{"good-1", "good-2"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rec messages.ErrorRecord
	errDone := errors.New("done")
	err := streamtail.Tail(ctx, kin, errStream, streamtail.Options{PollInterval: 50 * time.Millisecond}, func(r streamtail.Record) error {
		if err := json.Unmarshal(r.Data, &rec); err != nil {
			return err
		}
		return errDone
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("error stream: %v", err)
	}
	if string(rec.Data) != bad || !strings.Contains(rec.Reason, "user_ip") {
		t.Fatalf("error record %+v", rec)
	}
}

// Malformed requests get clear errors and leave the server healthy and serving.
func TestMalformedRequestsLeaveTheServerHealthy(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 1)
	cfg := testConfig(t, stream)
	cfg.ReadTimeout = 500 * time.Millisecond
	cfg.PutTimeout = 100 * time.Millisecond // keeps WriteTimeout ≥ attempts × put timeout valid
	cfg.WriteTimeout = 2 * time.Second
	h := start(t, cfg, kin)

	for _, tc := range []struct {
		name, body, ct string
		status         int
		reason         string
	}{
		{"truncated", `[{"user_id":"u","event_na`, "application/json", 400, "unexpected end of input"},
		{"deep nesting", strings.Repeat("[", 100000), "application/json", 400, "nested deeper than 32"},
		{"huge string", `{"user_id":"` + strings.Repeat("x", 2<<20) + `"}`, "application/json", 413, "over the size limit"},
		{"huge string in an event", `{"user_id":"u","event_timestamp":1626091318000,"event_name":"` + strings.Repeat("x", 1000) + `"}`, "application/json", 400, "too long"},
		{"wrong types", `{"user_id":true,"event_timestamp":[],"event_name":{}}`, "application/json", 400, "not a string"},
		{"invalid UTF-8", "{\"user_id\":\"\xc3\x28\",\"event_timestamp\":1626091318000,\"event_name\":\"x\"}", "application/json", 400, "UTF-8"},
		{"duplicate keys", `{"user_id":"a","event_timestamp":1626091318000,"event_name":"x","event_name":"y"}`, "application/json", 400, "duplicate key"},
		{"binary", "\x00\x01\x02\xff", "application/x-ndjson", 400, "must be a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := h.post(tc.body, tc.ct, testKey)
			if a.status != tc.status || !bytes.Contains(a.body, []byte(tc.reason)) {
				t.Fatalf("status %d, body %.300s; want %d with %q", a.status, a.body, tc.status, tc.reason)
			}
		})
	}

	t.Run("a body that never ends", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Api-Key: %s\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[{\"a\"\r\n", testKey)
		// Send nothing more: the read timeout ends the request with 408 and closes the connection.
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a body that never ends: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("status %d, want 408", resp.StatusCode)
		}
	})

	if a := h.get("/healthz"); a.status != 200 {
		t.Fatalf("healthz %d after malformed requests", a.status)
	}
	if a := h.post(labEvent("u", "after"), "application/json", testKey); a.status != 200 {
		t.Fatalf("valid request after malformed ones: %d %s", a.status, a.body)
	}
}

// With Kinesis unreachable, requests get 503 with every event reported failed, and /readyz says so.
func TestKinesisUnreachable(t *testing.T) {
	testenv.Kinesis(t) // the stack is configured; this test uses a port where nothing listens
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	kin := kinesis.NewFromConfig(testenv.AWSConfig(t), func(o *kinesis.Options) {
		o.BaseEndpoint = &dead
		o.RetryMaxAttempts = 1
	})
	cfg := testConfig(t, "clickstream")
	cfg.PutAttempts, cfg.PutBackoff = 2, time.Millisecond
	h := start(t, cfg, kin)

	a := h.post(strings.Join(pocEvents("dead", 3), "\n"), "application/x-ndjson", testKey)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Fatalf("status %d %v: %s", a.status, a.header, a.body)
	}
	var r ingest.Response
	a.decode(t, &r)
	if r.Failed != 3 || r.Accepted != 0 {
		t.Fatalf("answer %s", a.body)
	}
	for _, res := range r.Results {
		if res.Status != ingest.StatusFailed || res.Reason != "kinesis unreachable" {
			t.Fatalf("result %+v", res)
		}
	}
	if a := h.get("/readyz"); a.status != 503 {
		t.Fatalf("readyz %d: %s", a.status, a.body)
	}
	if a := h.get("/healthz"); a.status != 200 {
		t.Fatalf("healthz %d", a.status)
	}
	if got := h.metric("clickfleet_ingest_putrecords_retried_records_total", "stream", "events"); got != 3 {
		t.Errorf("retried records %g, want 3", got)
	}
}

// Shutdown drains: a request whose body is still arriving when shutdown begins is served and stored,
// and Serve returns nil after it.
func TestShutdownDrainsRequestsInFlight(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 1)
	h := start(t, testConfig(t, stream), kin)

	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() }) // a failed test must not leave Serve waiting for the body
	req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/events", pr)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("X-Api-Key", testKey)
	got := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- answer{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- answer{status: resp.StatusCode, body: b}
	}()
	fmt.Fprintln(pw, labEvent("u1", "drain-1"))
	testenv.WaitFor(t, "the request in flight (clickfleet_ingest_inflight_requests ≥ 1)", 10*time.Second, func() bool {
		return h.metric("clickfleet_ingest_inflight_requests") >= 1
	})
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	testenv.WaitFor(t, "/readyz to answer 503 once shutdown has begun", 10*time.Second, func() bool { return h.get2("/readyz") == 503 })
	fmt.Fprintln(pw, labEvent("u2", "drain-2"))
	pw.Close()
	select {
	case a := <-got:
		if a.status != 200 {
			t.Fatalf("in-flight request: %d %s", a.status, a.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to the in-flight request 30 s after its body ended")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve still running 30 s after shutdown began and the in-flight request was answered")
	}
	checkStoredOnce(t, h, readClickIDs(t, kin, stream, []string{"drain-1", "drain-2"}), []string{"drain-1", "drain-2"})
}

// get2 is get that tolerates a closed listener (during shutdown), returning the status or 0.
func (h *harness) get2(path string) int {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(h.url + path)
	if err != nil {
		return 503 // the listener is closed: shutdown has begun
	}
	resp.Body.Close()
	return resp.StatusCode
}

// recordingSink remembers every event it was given.
type recordingSink struct {
	inner  clickgen.Sink
	mu     sync.Mutex
	events map[string]bool
}

func (r *recordingSink) Put(ctx context.Context, b []clickgen.Event) ([]clickgen.Event, error) {
	r.mu.Lock()
	if r.events == nil {
		r.events = map[string]bool{}
	}
	for _, ev := range b {
		r.events[string(ev.Data)] = true
	}
	r.mu.Unlock()
	return r.inner.Put(ctx, b)
}

func (r *recordingSink) clickIDs(t testing.TB) []string {
	t.Helper()
	var ids []string
	for data := range r.events {
		ev, err := messages.Decode([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ClickID)
	}
	return ids
}

// The generator drives the ingest through HTTPSink: every generated event ends on the stream once.
func TestGeneratorThroughIngest(t *testing.T) {
	kin := testenv.Kinesis(t)
	stream := testenv.Stream(t, kin, 2)
	h := start(t, testConfig(t, stream), kin)
	cfg := clickgen.DefaultConfig(clickgen.ProfilePOC)
	cfg.Count, cfg.TimeScale, cfg.Users, cfg.BatchSize = 400, 0, 20, 100
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := &recordingSink{inner: &clickgen.HTTPSink{URL: h.url + "/v1/events", APIKey: testKey, MaxEvents: 30}}
	st, err := clickgen.Run(ctx, cfg, rec, nil)
	if err != nil || st.Sent != 400 {
		t.Fatalf("sent %d: %v", st.Sent, err)
	}
	ids := rec.clickIDs(t)
	seen := readClickIDs(t, kin, stream, ids)
	if len(seen) != 400 {
		t.Fatalf("%d distinct click ids on the stream, want 400", len(seen))
	}
	checkStoredOnce(t, h, seen, ids)

	// A wrong key is a rejection the sink reports, not something to retry forever.
	var rejected error
	sink := &clickgen.HTTPSink{URL: h.url + "/v1/events", APIKey: "wrong-key-0003", OnRejected: func(err error) { rejected = err }}
	if _, err := sink.Put(ctx, []clickgen.Event{{UserID: "1", Data: []byte(labEvent("1", "x"))}}); !errors.Is(err, clickgen.ErrRejected) || rejected == nil {
		t.Fatalf("Put with a wrong key: %v", err)
	}
}
