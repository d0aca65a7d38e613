package geo_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

type down struct{}

func (down) Lookup(context.Context, netip.Addr) (geo.Location, error) {
	return geo.Location{}, errors.New("provider down")
}

// LookupAll answers as Lookup does, in bulk: found, not found and unknown addresses, duplicates once,
// both caches filled (a second resolver is answered by Redis without the provider), and a failing
// provider's addresses StatusUnavailable and not cached.
func TestLookupAll(t *testing.T) {
	rdb := testenv.Redis(t)
	prefix := testenv.Name(t, "cf") + ":"
	cleanupKeys(t, rdb, prefix)
	ctx := context.Background()
	prov := &counting{Provider: openTestMMDB(t, geo.SchemaGeoIP2)}
	r := newResolver(t, geo.Config{Provider: prov, Redis: rdb, Prefix: prefix})
	ips := []string{"81.2.69.142", "9.9.9.9", "10.0.0.1", "81.2.69.142", "", "::ffff:81.2.69.142"}
	got := r.LookupAll(ctx, ips)
	london := geo.Location{Country: "GB", Region: "England", City: "London", Latitude: 51.5, Longitude: -0.125, HasCoordinates: true, Status: geo.StatusFound}
	want := map[string]geo.Location{"81.2.69.142": london, "::ffff:81.2.69.142": london, "9.9.9.9": {Status: geo.StatusNotFound},
		"10.0.0.1": {Status: geo.StatusUnknown}, "": {Status: geo.StatusUnknown}}
	for ip, w := range want {
		if got[ip] != w {
			t.Errorf("LookupAll[%q] = %+v, want %+v", ip, got[ip], w)
		}
		if l, err := r.Lookup(ctx, ip); err != nil || l != w {
			t.Errorf("Lookup(%q) = %+v, %v after LookupAll, want %+v", ip, l, err, w)
		}
	}
	if n := prov.calls.Load(); n != 2 {
		t.Fatalf("provider asked %d times, want 2 (one per distinct public address)", n)
	}
	prov2 := &counting{Provider: prov.Provider}
	r2 := newResolver(t, geo.Config{Provider: prov2, Redis: rdb, Prefix: prefix})
	if got := r2.LookupAll(ctx, []string{"81.2.69.142", "9.9.9.9"}); got["81.2.69.142"] != london || got["9.9.9.9"].Status != geo.StatusNotFound {
		t.Fatalf("second resolver: %+v", got)
	}
	if n := prov2.calls.Load(); n != 0 {
		t.Fatalf("second resolver asked the provider %d times; Redis should have answered", n)
	}
	r3 := newResolver(t, geo.Config{Provider: down{}, Redis: rdb, Prefix: prefix + "x:"})
	if got := r3.LookupAll(ctx, []string{"81.2.69.142"}); got["81.2.69.142"].Status != geo.StatusUnavailable {
		t.Fatalf("failing provider: %+v, want unavailable", got)
	}
	if _, ok := r3.Cached("81.2.69.142"); ok {
		t.Fatal("an unavailable answer was cached")
	}
}
