package clickgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ErrRejected is wrapped by the error HTTPSink.Put returns for an answer that sending the same events
// again cannot fix (400, 401, 403, 404, 405, 413, 415).
var ErrRejected = errors.New("clickgen: ingest rejected the request")

// HTTPSink posts events to the clickfleet ingest API (POST /v1/events) instead of putting them on Kinesis
// directly. It sends up to MaxEvents events and MaxBytes bytes per request, and maps the ingest's per-event
// results back to the events, so the generator sends again exactly those the ingest did not store. A 429 or
// 503 answer's Retry-After is honoured (waited for, at most MaxRetryAfter) before Put returns.
// Safe for concurrent use once its fields are set.
type HTTPSink struct {
	// URL is the endpoint, e.g. http://127.0.0.1:8080/v1/events. Required.
	URL string
	// APIKey is sent in the x-api-key header when not empty.
	APIKey string
	// Array sends a JSON array (application/json) instead of NDJSON (application/x-ndjson). Default: false.
	Array bool
	// Client sends the requests. Default: an http.Client with a 2-minute timeout.
	Client *http.Client
	// MaxEvents is the most events per request (the ingest's --max-events). Default: 500.
	MaxEvents int
	// MaxBytes is the most body bytes per request (the ingest's --max-request-bytes). Default: 5 MiB.
	MaxBytes int
	// MaxRetryAfter caps how long a Retry-After answer makes Put wait. Default: 30s.
	MaxRetryAfter time.Duration
	// OnRejected, if set, is called with every ErrRejected error, so a caller can stop a run that cannot
	// succeed (a wrong key, say) instead of retrying it forever.
	OnRejected func(error)
}

var defaultHTTPClient = &http.Client{Timeout: 2 * time.Minute}

// ingestAnswer is the part of the ingest's answer the sink reads.
type ingestAnswer struct {
	Error   string `json:"error"`
	Results []struct {
		Index  int    `json:"index"`
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"results"`
}

// Put posts the batch in as few requests as the limits allow and returns the events the ingest did not
// store, in order. It returns an error only when nothing of the batch is known to be stored: the first
// request failed as a whole (connection refused, 429, a 503 without per-event results, a rejection).
func (s *HTTPSink) Put(ctx context.Context, batch []Event) ([]Event, error) {
	maxEvents, maxBytes := s.MaxEvents, s.MaxBytes
	if maxEvents <= 0 {
		maxEvents = 500
	}
	if maxBytes <= 0 {
		maxBytes = 5 << 20
	}
	var failed []Event
	stored := false
	for start := 0; start < len(batch); {
		end, size := start, 2
		for end < len(batch) && end-start < maxEvents && (end == start || size+len(batch[end].Data)+1 <= maxBytes) {
			size += len(batch[end].Data) + 1
			end++
		}
		chunk := batch[start:end]
		f, err := s.post(ctx, chunk)
		if err != nil {
			if !stored {
				return nil, err
			}
			return append(failed, batch[start:]...), nil
		}
		if len(f) < len(chunk) {
			stored = true
		}
		failed = append(failed, f...)
		start = end
	}
	return failed, nil
}

// post sends one request and returns the events of chunk the ingest did not store.
func (s *HTTPSink) post(ctx context.Context, chunk []Event) ([]Event, error) {
	var body bytes.Buffer
	contentType := "application/x-ndjson"
	if s.Array {
		contentType = "application/json"
		body.WriteByte('[')
	}
	for i, ev := range chunk {
		if s.Array && i > 0 {
			body.WriteByte(',')
		}
		body.Write(ev.Data)
		if !s.Array {
			body.WriteByte('\n')
		}
	}
	if s.Array {
		body.WriteByte(']')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, &body)
	if err != nil {
		return nil, fmt.Errorf("ingest request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	if s.APIKey != "" {
		req.Header.Set("X-Api-Key", s.APIKey)
	}
	client := s.Client
	if client == nil {
		client = defaultHTTPClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post %d events to %s: %w", len(chunk), s.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil && resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("post %d events to %s: reading the %s answer: %w", len(chunk), s.URL, resp.Status, err)
	}
	var ans ingestAnswer
	_ = json.Unmarshal(raw, &ans) // a body that is not the ingest's JSON leaves ans empty, handled below
	switch code := resp.StatusCode; {
	case code == http.StatusOK || code == http.StatusAccepted:
		// 2xx means every event is stored (invalid ones, with 202, on the error stream).
		return s.failedOf(chunk, &ans), nil
	case code == http.StatusServiceUnavailable && len(ans.Results) == len(chunk):
		s.wait(ctx, resp)
		return s.failedOf(chunk, &ans), nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		s.wait(ctx, resp)
		return nil, fmt.Errorf("post %d events to %s: %s: %s", len(chunk), s.URL, resp.Status, ans.Error)
	case code == http.StatusRequestTimeout || code >= 500:
		return nil, fmt.Errorf("post %d events to %s: %s: %s", len(chunk), s.URL, resp.Status, ans.Error)
	default:
		err := fmt.Errorf("%w: %s: %s", ErrRejected, resp.Status, string(bytes.TrimSpace(raw[:min(len(raw), 1024)])))
		if s.OnRejected != nil {
			s.OnRejected(err)
		}
		return nil, err
	}
}

func (s *HTTPSink) failedOf(chunk []Event, ans *ingestAnswer) []Event {
	var failed []Event
	for _, r := range ans.Results {
		if r.Status == "failed" && r.Index >= 0 && r.Index < len(chunk) {
			failed = append(failed, chunk[r.Index])
		}
	}
	return failed
}

// wait sleeps for the answer's Retry-After (seconds or an HTTP date), at most MaxRetryAfter, or until ctx
// ends.
func (s *HTTPSink) wait(ctx context.Context, resp *http.Response) {
	limit := s.MaxRetryAfter
	if limit <= 0 {
		limit = 30 * time.Second
	}
	v := resp.Header.Get("Retry-After")
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	d = min(d, limit)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
