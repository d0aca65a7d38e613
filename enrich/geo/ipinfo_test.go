package geo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// fakeIPInfo speaks ipinfo's format for the addresses of testNetworks' first /24s (x.y.z.1..n), and can be
// switched to hang (until the client gives up) or to answer 503.
type fakeIPInfo struct {
	mode     atomic.Value // "ok", "hang", "5xx"
	requests atomic.Int64
	token    string
}

func (f *fakeIPInfo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if got := r.Header.Get("Authorization"); got != "Bearer "+f.token {
		http.Error(w, `{"error":"bad token"}`, http.StatusForbidden)
		return
	}
	switch f.mode.Load().(string) {
	case "hang":
		<-r.Context().Done()
		return
	case "5xx":
		http.Error(w, "upstream down", http.StatusServiceUnavailable)
		return
	}
	ipStr, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/json")
	ip, err := netip.ParseAddr(ipStr)
	if !ok || err != nil {
		http.Error(w, `{"error":"Wrong ip"}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	for _, n := range testNetworks {
		if netip.MustParsePrefix(n.prefix).Contains(ip) {
			answer := map[string]any{"ip": ipStr, "hostname": "h.example", "city": n.loc.City,
				"region": n.loc.Region, "country": n.loc.Country, "org": "AS1 x", "timezone": "UTC"}
			if n.loc.HasCoordinates {
				answer["loc"] = fmt.Sprintf("%g,%g", n.loc.Latitude, n.loc.Longitude)
			}
			_ = json.NewEncoder(w).Encode(answer)
			return
		}
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		_ = json.NewEncoder(w).Encode(map[string]any{"ip": ipStr, "bogon": true})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ip": ipStr}) // known nowhere: no country
}

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func TestIPInfoAnswers(t *testing.T) {
	f := &fakeIPInfo{token: "secret"}
	f.mode.Store("ok")
	srv := httptest.NewServer(f)
	defer srv.Close()
	p, err := geo.NewIPInfo(geo.IPInfoConfig{BaseURL: srv.URL + "/", Token: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ip   string
		want geo.Location
	}{
		{"81.2.69.142", testNetworks[0].loc},
		{"1.1.1.1", testNetworks[3].loc},
		{"2a02:ff40::7", testNetworks[4].loc},
		{"9.9.9.9", geo.Location{Status: geo.StatusNotFound}},
	}
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			got, err := p.Lookup(context.Background(), netip.MustParseAddr(tc.ip))
			if err != nil || got != tc.want {
				t.Fatalf("Lookup(%s) = %+v, %v; want %+v", tc.ip, got, err, tc.want)
			}
		})
	}
	bad, err := geo.NewIPInfo(geo.IPInfoConfig{BaseURL: srv.URL, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Lookup(context.Background(), netip.MustParseAddr("8.8.8.8")); !errors.Is(err, geo.ErrProvider) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("wrong token: %v, want ErrProvider naming HTTP 403", err)
	}
	if _, err := geo.NewIPInfo(geo.IPInfoConfig{BaseURL: "ftp://x"}); !errors.Is(err, geo.ErrInvalidConfig) {
		t.Fatalf("ftp URL: %v", err)
	}
}

// An ipinfo outage (requests that hang, then 5xx) stalls nothing: every Resolve is answered, promptly and
// exactly once, as unavailable, with nothing cached; the circuit opens so later lookups do not even try.
// When the service recovers (after the open period, on the breaker's clock) the same addresses resolve.
func TestIPInfoOutageStallsNothingAndRecovers(t *testing.T) {
	rdb := testenv.Redis(t)
	prefix := testenv.Name(t, "cf") + ":"
	cleanupKeys(t, rdb, prefix)
	f := &fakeIPInfo{token: "tok"}
	f.mode.Store("hang")
	srv := httptest.NewServer(f)
	defer srv.Close()
	clock := newFakeClock()
	p, err := geo.NewIPInfo(geo.IPInfoConfig{BaseURL: srv.URL, Token: "tok", Timeout: 100 * time.Millisecond,
		MaxConcurrent: 4, FailureThreshold: 3, OpenFor: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r := newResolver(t, geo.Config{Provider: p, Redis: rdb, Prefix: prefix})

	// 40 distinct addresses in the test networks, each asked for twice.
	var ips []string
	for _, n := range testNetworks[:4] {
		base := netip.MustParsePrefix(n.prefix).Addr()
		for i := range 10 {
			a := base.As4()
			a[3] += byte(i + 1)
			ips = append(ips, netip.AddrFrom4(a).String())
		}
	}
	resolveAll := func(t *testing.T) map[string]geo.Location {
		t.Helper()
		type answer struct {
			id  int
			loc geo.Location
		}
		ch := make(chan answer, 2*len(ips)+1)
		for i := range 2 * len(ips) {
			r.Resolve(ips[i%len(ips)], func(l geo.Location) { ch <- answer{i, l} })
		}
		got := map[string]geo.Location{}
		seen := map[int]bool{}
		deadline := time.After(15 * time.Second) // generous for -race on 2 cores; the hang itself never ends
		for len(seen) < 2*len(ips) {
			select {
			case a := <-ch:
				if seen[a.id] {
					t.Fatalf("Resolve %d answered twice", a.id)
				}
				seen[a.id] = true
				got[ips[a.id%len(ips)]] = a.loc
			case <-deadline:
				t.Fatalf("only %d of %d Resolves answered: lookups stall", len(seen), 2*len(ips))
			}
		}
		return got
	}

	t.Run("hanging service", func(t *testing.T) {
		for ip, l := range resolveAll(t) {
			if l.Status != geo.StatusUnavailable {
				t.Fatalf("%s during the outage: %+v, want unavailable", ip, l)
			}
		}
		if !p.CircuitOpen() {
			t.Fatal("circuit still closed after the outage")
		}
		// At most the threshold plus the lookups already holding a slot reached the server.
		if n := f.requests.Load(); n > 3+4 {
			t.Fatalf("%d requests reached the hanging service, want at most 7 (the circuit should open)", n)
		}
		if _, err := p.Lookup(context.Background(), netip.MustParseAddr("8.8.8.8")); !errors.Is(err, geo.ErrCircuitOpen) {
			t.Fatalf("lookup with the circuit open: %v, want ErrCircuitOpen", err)
		}
	})
	t.Run("5xx while half-open", func(t *testing.T) {
		f.mode.Store("5xx")
		clock.Advance(time.Minute)
		before := f.requests.Load()
		for ip, l := range resolveAll(t) {
			if l.Status != geo.StatusUnavailable {
				t.Fatalf("%s during 5xx: %+v", ip, l)
			}
		}
		if n := f.requests.Load() - before; n != 1 {
			t.Fatalf("%d requests while half-open, want 1 trial", n)
		}
	})
	t.Run("nothing cached while failing", func(t *testing.T) {
		for _, ip := range ips {
			if _, ok := r.Cached(ip); ok {
				t.Fatalf("%s cached in process during the outage", ip)
			}
			if n, err := rdb.Exists(context.Background(), prefix+"geo:"+ip).Result(); err != nil || n != 0 {
				t.Fatalf("%s cached in Redis during the outage (%d, %v)", ip, n, err)
			}
		}
	})
	t.Run("recovered", func(t *testing.T) {
		f.mode.Store("ok")
		clock.Advance(time.Minute)
		// The first lookup after the open period is the trial; lookups racing it still fail fast. Events
		// keep coming, so ask again (as the next events of these users would) until the trial has closed
		// the circuit.
		got := resolveAll(t)
		for round := 1; p.CircuitOpen() && round < 5; round++ {
			got = resolveAll(t)
		}
		if p.CircuitOpen() {
			t.Fatal("circuit still open after five rounds against a healthy service")
		}
		got = resolveAll(t)
		for ip, l := range got {
			want := geo.Location{}
			for _, n := range testNetworks {
				if netip.MustParsePrefix(n.prefix).Contains(netip.MustParseAddr(ip)) {
					want = n.loc
				}
			}
			if l != want {
				t.Fatalf("%s after recovery: %+v, want %+v", ip, l, want)
			}
		}
		if p.CircuitOpen() {
			t.Fatal("circuit still open after recovery")
		}
		if h := rdb.HGetAll(context.Background(), prefix+"geo:"+ips[0]).Val(); h["country"] != "GB" {
			t.Fatalf("Redis after recovery: %v", h)
		}
	})
}
