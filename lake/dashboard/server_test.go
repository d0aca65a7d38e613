package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/dashboard"
)

// fakeDatasets answers every chart from a fixed table, or with err; it counts the queries and records
// their ranges. Pure logic: the real datasets (DuckDB over the lake) are tested in the browser tests.
type fakeDatasets struct {
	mu     sync.Mutex
	err    error
	calls  atomic.Int64
	ranges []dashboard.Range
	block  chan struct{}
}

func (f *fakeDatasets) Query(_ context.Context, name string, r dashboard.Range) (*dashboard.Table, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.ranges = append(f.ranges, r)
	err := f.err
	f.mu.Unlock()
	if f.block != nil {
		<-f.block
	}
	if err != nil {
		return nil, err
	}
	return &dashboard.Table{Columns: []string{"event_name", "events"}, Rows: [][]any{{"Search", int64(4)}, {name, int64(1)}}}, nil
}

func newServer(t *testing.T, cfg dashboard.Config) *httptest.Server {
	t.Helper()
	s, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	resp, body, err := request(url, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// request is get for any goroutine: it returns its failure instead of ending the test.
func request(url string, hdr map[string]string) (*http.Response, map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return nil, nil, fmt.Errorf("GET %s: %w", url, err)
		}
	}
	return resp, body, nil
}

func TestChartRanges(t *testing.T) {
	ds := &fakeDatasets{}
	ts := newServer(t, dashboard.Config{Datasets: ds})
	for _, tc := range []struct {
		name, query string
		code        int
		field       string
	}{
		{"open range", "", 200, ""},
		{"hours", "from=2026-12-01T10&to=2026-12-01T13", 200, ""},
		{"RFC 3339 and a day", "from=2026-12-01T10:30:00Z&to=2026-12-02", 200, ""},
		{"from is not a time", "from=yesterday", 400, "from"},
		{"to is not a time", "from=2026-12-01&to=2026-13-01", 400, "to"},
		{"to before from", "from=2026-12-01T13&to=2026-12-01T10", 400, "to"},
		{"to within from's hour", "from=2026-12-01T10:30&to=2026-12-01T10:00", 400, "to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, ts.URL+"/api/event_ratio?"+tc.query, nil)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.code, body)
			}
			if tc.code == 400 {
				if body["field"] != tc.field || !strings.HasPrefix(body["error"].(string), tc.field+":") {
					t.Fatalf("body %v, want field %q named", body, tc.field)
				}
				return
			}
			rows := body["rows"].([]any)
			if len(rows) != 2 || rows[0].(map[string]any)["event_name"] != "Search" || rows[0].(map[string]any)["events"] != float64(4) ||
				rows[1].(map[string]any)["event_name"] != "event_ratio" {
				t.Fatalf("rows %v", rows)
			}
		})
	}
	// The range reaches the datasets rounded down to whole hours, as the report reads it.
	ds.mu.Lock()
	defer ds.mu.Unlock()
	last := ds.ranges[len(ds.ranges)-1]
	if want := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC); !last.From.Equal(want) || !last.To.Equal(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("range %v, want from %v to 2026-12-02", last, want)
	}
}

func TestChartSourceDownIs503NamingIt(t *testing.T) {
	ds := &fakeDatasets{err: &dashboard.SourceError{Source: "lake (S3)", Setting: "--lake-url (CLICKFLEET_LAKE_URL)", Err: errors.New("connection refused")}}
	ts := newServer(t, dashboard.Config{Datasets: ds})
	for _, chart := range dashboard.Charts {
		resp, body := get(t, ts.URL+"/api/"+chart, nil)
		if resp.StatusCode != 503 || body["source"] != "lake (S3)" || !strings.Contains(body["error"].(string), "connection refused") ||
			body["setting"] != "--lake-url (CLICKFLEET_LAKE_URL)" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s: %d %v, want 503 naming the lake and its setting", chart, resp.StatusCode, body)
		}
		if _, ok := body["rows"]; ok {
			t.Fatalf("%s: a down source must not answer rows: %v", chart, body)
		}
	}
	// An empty range is not an outage: 200, no rows, marked empty.
	ds.mu.Lock()
	ds.err = errors.Join(dashboard.ErrNoData, errors.New("no objects"))
	ds.mu.Unlock()
	resp, body := get(t, ts.URL+"/api/top_regions?from=2020-01-01", nil)
	if resp.StatusCode != 200 || body["empty"] != true || len(body["rows"].([]any)) != 0 {
		t.Fatalf("empty range: %d %v", resp.StatusCode, body)
	}
	// Any other failure is a 500, and an unknown chart a 404 listing the charts.
	ds.mu.Lock()
	ds.err = errors.New("duckdb: boom")
	ds.mu.Unlock()
	if resp, body := get(t, ts.URL+"/api/event_ratio?from=2021-01-01", nil); resp.StatusCode != 500 || !strings.Contains(body["error"].(string), "boom") {
		t.Fatalf("failure: %d %v", resp.StatusCode, body)
	}
	if resp, body := get(t, ts.URL+"/api/nope", nil); resp.StatusCode != 404 || !strings.Contains(body["error"].(string), "requests_by_state") {
		t.Fatalf("unknown chart: %d %v", resp.StatusCode, body)
	}
	// Without a fleet the panel's endpoint says it is not configured, naming the flags.
	if resp, body := get(t, ts.URL+"/api/fleet", nil); resp.StatusCode != 503 || !strings.Contains(body["error"].(string), "--workers") {
		t.Fatalf("fleet: %d %v", resp.StatusCode, body)
	}
}

func TestChartRowsAreReusedWithinTheRefreshInterval(t *testing.T) {
	ds := &fakeDatasets{block: make(chan struct{})}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := newServer(t, dashboard.Config{Datasets: ds, RefreshInterval: 10 * time.Second, Now: clock})
	release := sync.OnceFunc(func() { close(ds.block) })
	t.Cleanup(release) // before the server's Close, which waits for the blocked handlers
	var g errgroup.Group
	for range 4 { // concurrent identical requests share one query
		g.Go(func() error {
			resp, body, err := request(ts.URL+"/api/event_ratio?from=2026-12-01", nil)
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d: %v", resp.StatusCode, body)
			}
			return err
		})
	}
	// Whether the others arrive while the first runs or after it, none of them queries again.
	testenv.WaitFor(t, "the first query", 10*time.Second, func() bool { return ds.calls.Load() > 0 })
	release()
	if err := g.Wait(); err != nil {
		t.Fatalf("concurrent identical requests: %v", err)
	}
	if n := ds.calls.Load(); n != 1 {
		t.Fatalf("%d queries for 4 identical requests, want 1", n)
	}
	get(t, ts.URL+"/api/event_ratio?from=2026-12-01", nil)
	if n := ds.calls.Load(); n != 1 {
		t.Fatalf("%d queries within the interval, want 1", n)
	}
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	get(t, ts.URL+"/api/event_ratio?from=2026-12-01", nil)
	if n := ds.calls.Load(); n != 2 {
		t.Fatalf("%d queries after the interval, want 2", n)
	}
}

func TestToken(t *testing.T) {
	const token = "s3cret-token-0123456789"
	ts := newServer(t, dashboard.Config{Datasets: &fakeDatasets{}, Token: token})
	for _, tc := range []struct {
		name string
		path string
		hdr  map[string]string
		code int
	}{
		{"healthz is open", "/healthz", nil, 200},
		{"no token", "/api/event_ratio", nil, 401},
		{"no token for the page", "/", nil, 401},
		{"no token for an asset", "/static/app.js", nil, 401},
		{"wrong bearer", "/api/event_ratio", map[string]string{"Authorization": "Bearer wrong"}, 401},
		{"a prefix of the token", "/api/event_ratio", map[string]string{"Authorization": "Bearer " + token[:10]}, 401},
		{"right bearer", "/api/event_ratio", map[string]string{"Authorization": "Bearer " + token}, 200},
		{"right cookie", "/api/event_ratio", map[string]string{"Cookie": dashboard.TokenCookie + "=" + token}, 200},
		{"wrong cookie", "/api/event_ratio", map[string]string{"Cookie": dashboard.TokenCookie + "=x"}, 401},
		{"proxy header without proxy auth", "/api/event_ratio", map[string]string{dashboard.ProxyIdentityHeader: "alice"}, 401},
		{"wrong query token", "/?token=nope", nil, 401},
		{"right query token", "/?token=" + token + "&range=6h", nil, 303},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, ts.URL+tc.path, tc.hdr)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.code, body)
			}
			if tc.code == 303 {
				loc := resp.Header.Get("Location")
				var cookie *http.Cookie
				for _, c := range resp.Cookies() {
					if c.Name == dashboard.TokenCookie {
						cookie = c
					}
				}
				if strings.Contains(loc, "token") || loc != "/?range=6h" || cookie == nil || cookie.Value != token || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
					t.Fatalf("redirect to %q with cookie %+v; want the URL without the token and an HttpOnly, SameSite=Strict cookie", loc, cookie)
				}
			}
			if tc.code == 401 && body != nil && strings.Contains(body["error"].(string), token) {
				t.Fatal("the answer repeats the token")
			}
		})
	}
}

func TestTrustProxyAuth(t *testing.T) {
	ts := newServer(t, dashboard.Config{Datasets: &fakeDatasets{}, TrustProxyAuth: true})
	if resp, body := get(t, ts.URL+"/api/event_ratio", nil); resp.StatusCode != 401 || !strings.Contains(body["error"].(string), dashboard.ProxyIdentityHeader) {
		t.Fatalf("without the proxy's header: %d %v", resp.StatusCode, body)
	}
	if resp, _ := get(t, ts.URL+"/api/event_ratio", map[string]string{dashboard.ProxyIdentityHeader: "user-1"}); resp.StatusCode != 200 {
		t.Fatalf("with the proxy's header: %d", resp.StatusCode)
	}
	if resp, _ := get(t, ts.URL+"/healthz", nil); resp.StatusCode != 200 {
		t.Fatalf("healthz: %d", resp.StatusCode)
	}
	// Both: either suffices.
	ts = newServer(t, dashboard.Config{Datasets: &fakeDatasets{}, TrustProxyAuth: true, Token: "0123456789abcdef"})
	if resp, _ := get(t, ts.URL+"/api/event_ratio", map[string]string{"Authorization": "Bearer 0123456789abcdef"}); resp.StatusCode != 200 {
		t.Fatalf("token with proxy auth: %d", resp.StatusCode)
	}
	if resp, _ := get(t, ts.URL+"/api/event_ratio", map[string]string{dashboard.ProxyIdentityHeader: "user-1"}); resp.StatusCode != 200 {
		t.Fatalf("proxy header with a token configured: %d", resp.StatusCode)
	}
}

func TestOpenOnLoopbackServesThePage(t *testing.T) {
	ts := newServer(t, dashboard.Config{Datasets: &fakeDatasets{}})
	for _, p := range []string{"/", "/static/app.js", "/static/vendor/echarts.min.js", "/static/vendor/us-states.geo.json", "/static/vendor/world-countries.geo.json", "/api/config"} {
		resp, _ := get(t, ts.URL+p, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8088": true, "127.1.2.3:80": true, "[::1]:8088": true, "localhost:8088": true,
		":8088": false, "0.0.0.0:8088": false, "[::]:8088": false, "10.0.0.5:8088": false, "example.com:80": false, "nonsense": false,
	} {
		if got := dashboard.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// The embedded vendor assets are what the generate step makes from the pinned npm packages (installed by
// deploy/local/stack up): a change of the pins, or a hand edit, fails here until `make assets` is run.
func TestAssetsUpToDate(t *testing.T) {
	if _, err := os.Stat("../../deploy/local/node_modules/topojson-client/package.json"); err != nil {
		msg := "the dashboard's npm packages are not installed in deploy/local/node_modules; deploy/local/stack up installs them (npm ci)"
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out := t.TempDir()
	cmd := exec.Command("node", "generate/assets.mjs", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node generate/assets.mjs: %v\n%s", err, b)
	}
	names, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	checked, err := os.ReadDir("static/vendor")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(checked) || len(names) < 4 {
		t.Fatalf("the generator makes %d files, static/vendor holds %d", len(names), len(checked))
	}
	for _, n := range names {
		want, err := os.ReadFile(filepath.Join(out, n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("static/vendor", n.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("static/vendor/%s differs from what the generator makes (%v): run make assets", n.Name(), err)
		}
	}
}
