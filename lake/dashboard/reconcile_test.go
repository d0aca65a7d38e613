package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/clickfleet/clickfleet/lake/dashboard"
	"github.com/clickfleet/clickfleet/lake/reconcile"
	"github.com/clickfleet/clickfleet/messages"
)

// fakeReconciliations answers Latest with res or err.
type fakeReconciliations struct {
	mu  sync.Mutex
	res *reconcile.Result
	err error
}

func (f *fakeReconciliations) Latest(context.Context) (*reconcile.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.res, f.err
}

func (f *fakeReconciliations) Location() string { return "s3://lake/x/reconcile/latest.json" }

func (f *fakeReconciliations) set(res *reconcile.Result, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.res, f.err = res, err
}

// /api/reconcile answers the last result, null with a message when none has run, 503 naming the source
// when its store is down, and says when it is not configured.
func TestReconcileEndpoint(t *testing.T) {
	rec := &fakeReconciliations{}
	ts := newServer(t, dashboard.Config{Datasets: &fakeDatasets{}, Reconciliations: rec})

	rec.set(nil, fmt.Errorf("%w at s3://lake/x/reconcile/latest.json", reconcile.ErrNoResult))
	resp, body := get(t, ts.URL+"/api/reconcile", nil)
	if resp.StatusCode != 200 || body["result"] != nil || !strings.Contains(body["message"].(string), "no reconciliation has run") ||
		body["location"] != "s3://lake/x/reconcile/latest.json" {
		t.Fatalf("none yet: %d %v", resp.StatusCode, body)
	}

	s := messages.NewSession("user1", "mobile", 1_796_119_200_000)
	s.EventCount = 3
	res := reconcile.Compare(reconcile.Range{}, reconcile.Lake{Sessions: []messages.Session{s}}, nil)
	res.Table = "sessions"
	rec.set(res, nil)
	resp, body = get(t, ts.URL+"/api/reconcile", nil)
	got, _ := body["result"].(map[string]any)
	if resp.StatusCode != 200 || got == nil || got["equal"] != false || got["table"] != "sessions" {
		t.Fatalf("a result: %d %v", resp.StatusCode, body)
	}
	diffs := got["differences"].([]any)
	if len(diffs) != 1 || diffs[0].(map[string]any)["session_id"] != s.SessionID || diffs[0].(map[string]any)["kind"] != "missing" {
		t.Fatalf("differences %v", diffs)
	}

	rec.set(nil, &dashboard.SourceError{Source: "lake (S3)", Setting: "--lake-url (CLICKFLEET_LAKE_URL)", Err: errors.New("connection refused")})
	resp, body = get(t, ts.URL+"/api/reconcile", nil)
	if resp.StatusCode != 503 || body["source"] != "lake (S3)" || body["setting"] != "--lake-url (CLICKFLEET_LAKE_URL)" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("store down: %d %v", resp.StatusCode, body)
	}

	bare := newServer(t, dashboard.Config{Datasets: &fakeDatasets{}})
	if resp, body := get(t, bare.URL+"/api/reconcile", nil); resp.StatusCode != 200 || body["result"] != nil || body["message"] != "not configured" {
		t.Fatalf("not configured: %d %v", resp.StatusCode, body)
	}
	if _, body := get(t, bare.URL+"/api/config", nil); body["reconcile_configured"] != false {
		t.Fatalf("config %v", body)
	}
}
