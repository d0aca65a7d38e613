package geo_test

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

func newResolver(t testing.TB, cfg geo.Config) *geo.Resolver {
	t.Helper()
	r, err := geo.NewResolver(cfg)
	if err != nil {
		t.Fatalf("NewResolver: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func cleanupKeys(t testing.TB, rdb *redis.Client, prefix string) {
	t.Cleanup(func() {
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			_ = rdb.Del(ctx, keys...).Err()
		}
	})
}

// The second lookup of an address is served from the in-process cache, a new process (resolver) is served
// from Redis, and neither asks the provider again; not-found answers are cached for the shorter TTL; private,
// reserved and malformed addresses never reach a cache or the provider.
func TestResolverCachesLookups(t *testing.T) {
	rdb := testenv.Redis(t)
	prefix := testenv.Name(t, "cf") + ":"
	cleanupKeys(t, rdb, prefix)
	ctx := context.Background()
	prov := &counting{Provider: openTestMMDB(t, geo.SchemaGeoIP2)}
	reg := prometheus.NewRegistry()
	r := newResolver(t, geo.Config{Provider: prov, Redis: rdb, Prefix: prefix, Registerer: reg})

	london := geo.Location{Country: "GB", Region: "England", City: "London", Latitude: 51.5, Longitude: -0.125, HasCoordinates: true, Status: geo.StatusFound}
	if _, ok := r.Cached("81.2.69.142"); ok {
		t.Fatal("Cached answered before any lookup")
	}
	for i, want := range []int64{1, 1, 1} {
		got, err := r.Lookup(ctx, "81.2.69.142")
		if err != nil || got != london {
			t.Fatalf("lookup %d = %+v, %v; want %+v", i+1, got, err, london)
		}
		if n := prov.calls.Load(); n != want {
			t.Fatalf("after lookup %d the provider was called %d times, want %d", i+1, n, want)
		}
	}
	if got, ok := r.Cached("81.2.69.142"); !ok || got != london {
		t.Fatalf("Cached = %+v, %v; want %+v", got, ok, london)
	}
	if got := lookupCount(t, reg, "memory"); got != 3 {
		t.Fatalf("memory hits = %v, want 3 (two Lookups and one Cached)", got)
	}

	key := prefix + "geo:81.2.69.142"
	h, err := rdb.HGetAll(ctx, key).Result()
	if err != nil || h["country"] != "GB" || h["region"] != "England" || h["city"] != "London" {
		t.Fatalf("Redis %s = %v, %v", key, h, err)
	}
	if ttl := rdb.TTL(ctx, key).Val(); ttl < 7*24*time.Hour-time.Minute || ttl > 7*24*time.Hour {
		t.Fatalf("TTL of %s = %s, want 7 days", key, ttl)
	}

	// Not found: cached too, for an hour.
	for range 2 {
		if got, err := r.Lookup(ctx, "9.9.9.9"); err != nil || got.Status != geo.StatusNotFound {
			t.Fatalf("Lookup(9.9.9.9) = %+v, %v; want not found", got, err)
		}
	}
	if n := prov.calls.Load(); n != 2 {
		t.Fatalf("provider calls = %d after a repeated not-found lookup, want 2", n)
	}
	nf := prefix + "geo:9.9.9.9"
	if ttl := rdb.TTL(ctx, nf).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL of %s = %s, want at most 1h", nf, ttl)
	}

	// Another process (a fresh in-process cache) finds both in Redis.
	prov2 := &counting{Provider: prov.Provider}
	r2 := newResolver(t, geo.Config{Provider: prov2, Redis: rdb, Prefix: prefix})
	if got, err := r2.Lookup(ctx, "81.2.69.142"); err != nil || got != london {
		t.Fatalf("second resolver: %+v, %v", got, err)
	}
	if got, err := r2.Lookup(ctx, "::ffff:9.9.9.9"); err != nil || got.Status != geo.StatusNotFound {
		t.Fatalf("second resolver, mapped address: %+v, %v", got, err)
	}
	if n := prov2.calls.Load(); n != 0 {
		t.Fatalf("second resolver asked the provider %d times; Redis should have answered", n)
	}

	// Unknown addresses: no provider call, no key.
	for _, ip := range []string{"10.0.0.1", "", "garbage", "192.0.2.1", "::1"} {
		got, err := r.Lookup(ctx, ip)
		if err != nil || got != (geo.Location{Status: geo.StatusUnknown}) {
			t.Fatalf("Lookup(%q) = %+v, %v; want unknown", ip, got, err)
		}
		if got, ok := r.Cached(ip); !ok || got.Status != geo.StatusUnknown {
			t.Fatalf("Cached(%q) = %+v, %v; want unknown", ip, got, ok)
		}
	}
	if n := prov.calls.Load(); n != 2 {
		t.Fatalf("provider calls = %d after unknown addresses, want still 2", n)
	}
}

func lookupCount(t testing.TB, reg *prometheus.Registry, source string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "clickfleet_geo_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == source {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// blocking is a provider that holds every lookup until released, counting them.
type blocking struct {
	counting
	release chan struct{}
}

func (b *blocking) Lookup(ctx context.Context, ip netip.Addr) (geo.Location, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return geo.Location{}, ctx.Err()
	}
	return b.counting.Lookup(ctx, ip)
}

// Concurrent Resolves of one address share one provider call, and every caller gets exactly one answer,
// on another goroutine; Resolve itself returns while the provider is still blocked.
func TestResolveCoalescesAndAnswersEveryCaller(t *testing.T) {
	prov := &blocking{counting: counting{Provider: openTestMMDB(t, geo.SchemaFlat)}, release: make(chan struct{})}
	r := newResolver(t, geo.Config{Provider: prov})
	const callers = 200
	answers := make(chan geo.Location, callers*2)
	for range callers { // returns although the provider blocks: Resolve never waits
		r.Resolve("8.8.8.8", func(l geo.Location) { answers <- l })
	}
	r.Resolve("10.1.1.1", func(l geo.Location) { answers <- l }) // unknown: answered without the provider
	if got := receive(t, answers); got.Status != geo.StatusUnknown {
		t.Fatalf("private address: %+v", got)
	}
	close(prov.release)
	for i := range callers {
		if got := receive(t, answers); got.City != "Mountain View" {
			t.Fatalf("answer %d = %+v", i, got)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if len(answers) != 0 {
		t.Fatalf("%d extra answers", len(answers))
	}
	if n := prov.calls.Load(); n != 1 {
		t.Fatalf("provider calls = %d, want 1", n)
	}
	// After Close, Resolve still answers (unavailable), on the caller's goroutine.
	var got geo.Location
	r.Resolve("81.2.69.142", func(l geo.Location) { got = l })
	if got.Status != geo.StatusUnavailable {
		t.Fatalf("after Close: %+v", got)
	}
}

// Close cancels lookups in flight and waits for their callbacks.
func TestCloseAnswersPendingResolves(t *testing.T) {
	prov := &blocking{counting: counting{Provider: openTestMMDB(t, geo.SchemaFlat)}, release: make(chan struct{})}
	r := newResolver(t, geo.Config{Provider: prov})
	var mu sync.Mutex
	var got []geo.Location
	for _, ip := range []string{"8.8.8.8", "81.2.69.142", "1.1.1.1"} {
		r.Resolve(ip, func(l geo.Location) { mu.Lock(); got = append(got, l); mu.Unlock() })
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d answers after Close, want 3", len(got))
	}
	for _, l := range got {
		if l.Status != geo.StatusUnavailable {
			t.Fatalf("answer after Close: %+v", l)
		}
	}
}

func receive(t testing.TB, ch <-chan geo.Location) geo.Location {
	t.Helper()
	select {
	case l := <-ch:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
		return geo.Location{}
	}
}
