package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/ingest/clickgen"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// demoMMDB builds, with mmdbwriter, a database in the flat layout of the local stack's DB-IP file that
// places clickgen.DemoNetworks where that file does.
func demoMMDB(t testing.TB) *geo.MMDB {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "city ipv6", RecordSize: 28, IPVersion: 6})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range clickgen.DemoNetworks {
		_, ipnet, err := net.ParseCIDR(n.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{"country_code": mmdbtype.String(n.Country), "state1": mmdbtype.String(n.Region),
			"state2": mmdbtype.String(""), "city": mmdbtype.String(n.City)}
		if err := tree.Insert(ipnet, rec); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	db, err := geo.OpenMMDBBytes(buf.Bytes(), geo.SchemaAuto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// demoLocation is where clickgen.DemoNetworks place ip.
func demoLocation(ip string) (clickgen.DemoNetwork, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return clickgen.DemoNetwork{}, false
	}
	for _, n := range clickgen.DemoNetworks {
		if netip.MustParsePrefix(n.Prefix).Contains(a) {
			return n, true
		}
	}
	return clickgen.DemoNetwork{}, false
}

// demoIP returns host h of the i-th demo network.
func demoIP(i, h int) string {
	b := netip.MustParsePrefix(clickgen.DemoNetworks[i%len(clickgen.DemoNetworks)].Prefix).Addr().As4()
	b[3] = byte(h)
	return netip.AddrFrom4(b).String()
}

func newResolver(t testing.TB, cfg geo.Config) *geo.Resolver {
	t.Helper()
	r, err := geo.NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// enriched is what the tests read back from an offer.
type enriched struct {
	UserID    string `json:"user_id"`
	ClickID   string `json:"click_id"`
	UserIP    string `json:"user_ip"`
	Name      string `json:"name"`
	Country   string `json:"country"`
	Region    string `json:"region"`
	City      string `json:"city"`
	GeoStatus string `json:"geo_status"`
}

// jsonObject decodes a JSON object with encoding/json (numbers as float64).
func jsonObject(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return m
}

func readOffers(t *testing.T, s *sinks) []enriched {
	t.Helper()
	var out []enriched
	for _, r := range readStream(t, s.kin, s.offers) {
		var e enriched
		if err := json.Unmarshal(r.Data, &e); err != nil {
			t.Fatalf("offer %s: %v", r.Data, err)
		}
		out = append(out, e)
	}
	return out
}

// Generated clicks through a real worker, with the geo resolver on a DB-IP-shaped database and the shared
// Redis geo cache, and names where the names sync puts them: every offer is its input event plus the
// seed's name, country, region and city, and every user's hash holds the location beside last_access_ms.
func TestEnrichedEndToEnd(t *testing.T) {
	s := newSinks(t)
	stream := testenv.Stream(t, s.kin, 2)
	const users = 30
	gcfg := clickgen.DefaultConfig(clickgen.ProfilePOC)
	gcfg.Users, gcfg.Count, gcfg.TimeScale, gcfg.Rate = users, 900, 0, 50
	gcfg.Start = time.Date(2021, 7, 12, 20, 24, 49, 0, time.UTC)
	var evs []putEvent
	sink := sinkFunc(func(_ context.Context, b []clickgen.Event) ([]clickgen.Event, error) {
		for _, e := range b {
			evs = append(evs, putEvent{user: e.UserID, data: e.Data})
		}
		return nil, nil
	})
	if _, err := clickgen.Run(context.Background(), gcfg, sink, nil); err != nil {
		t.Fatal(err)
	}
	last := putAll(t, s.kin, stream, evs)
	// What the names sync writes (enrich/names tests the sync itself); user 7 has no customer row.
	for u := 1; u <= users; u++ {
		if u != 7 {
			if err := s.rdb.HSet(context.Background(), session.UserKey(s.prefix, fmt.Sprint(u)), "name", fmt.Sprintf("Customer %d", u), "price_per_click", "0.25").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}

	cfg := s.config(stream)
	cfg.FlushInterval, cfg.FlushMaxRecords = 100*time.Millisecond, 200
	cfg.Geo = newResolver(t, geo.Config{Provider: demoMMDB(t), Redis: s.rdb, Prefix: s.prefix})
	f := newFactory(t, cfg)
	table := leaseTable(t, s.ddb)
	defer runWorker(t, s, stream, table, "enrich", f)()
	testenv.WaitFor(t, "every shard checkpointed at its last record", 60*time.Second, func() bool { return checkpointedTo(t, s.ddb, table, last) })

	// The offers: exactly the ViewContent > 60 events, each once, each its input's fields plus the
	// enrichment. Expected values come from the input as encoding/json reads it, not from package messages.
	want := map[string]map[string]any{} // by click_id
	ipOf := map[string]string{}
	for _, e := range evs {
		in := jsonObject(t, e.data)
		user, ip := in["user_id"].(string), in["user_ip"].(string)
		ipOf[user] = ip
		ad, _ := in["additional_data"].(map[string]any)
		if pv, ok := ad["percent_viewed"].(float64); in["event_name"] != "ViewContent" || !ok || pv <= 60 {
			continue
		}
		loc, ok := demoLocation(ip)
		if !ok {
			t.Fatalf("generated address %s is in no demo network", ip)
		}
		if user != "7" {
			in["name"] = "Customer " + user
		}
		in["country"], in["region"], in["city"] = loc.Country, loc.Region, loc.City
		want[in["click_id"].(string)] = in
	}
	got := readStream(t, s.kin, s.offers)
	if len(want) < 50 {
		t.Fatalf("only %d offers among %d events: the workload does not test much", len(want), len(evs))
	}
	seen := map[string]int{}
	for _, r := range got {
		o := jsonObject(t, r.Data)
		click, _ := o["click_id"].(string)
		if seen[click]++; seen[click] > 1 {
			t.Fatalf("offer %s emitted twice", click)
		}
		w, ok := want[click]
		if !ok {
			t.Fatalf("offer %s is not an input event with percent_viewed above 60: %s", click, r.Data)
		}
		if !reflect.DeepEqual(o, w) {
			t.Fatalf("offer %s:\n got %v\nwant %v", click, o, w)
		}
	}
	for click := range want {
		if seen[click] != 1 {
			t.Fatalf("offer %s missing (%d offers on the stream, %d expected)", click, len(got), len(want))
		}
	}
	t.Logf("example offer: %s", got[0].Data)

	// The users' hashes: the location of their address beside last_access_ms, and the name kept.
	hashes := userHashes(t, s.rdb, s.prefix)
	if len(hashes) != users {
		t.Fatalf("%d user hashes, want %d", len(hashes), users)
	}
	for u, h := range hashes {
		loc, _ := demoLocation(ipOf[u])
		if h["last_access_ms"] == "" || h["country"] != loc.Country || h["region"] != loc.Region || h["city"] != loc.City {
			t.Errorf("user %s: %v, want the location %+v beside last_access_ms", u, h, loc)
		}
		if u != "7" && h["name"] != "Customer "+u {
			t.Errorf("user %s: name %q", u, h["name"])
		}
	}
	// The shared geo cache holds what the provider answered.
	if n, err := s.rdb.Exists(context.Background(), s.prefix+"geo:"+ipOf["1"]).Result(); err != nil || n != 1 {
		t.Errorf("no Redis geo cache entry for %s (%v)", ipOf["1"], err)
	}
}

type sinkFunc func(context.Context, []clickgen.Event) ([]clickgen.Event, error)

func (f sinkFunc) Put(ctx context.Context, b []clickgen.Event) ([]clickgen.Event, error) {
	return f(ctx, b)
}

// fakeIPInfo speaks ipinfo's JSON for clickgen.DemoNetworks; it can answer 503 or hang until the client
// gives up.
type fakeIPInfo struct {
	mode     atomic.Value // "ok", "5xx", "hang"
	requests atomic.Int64
}

func (f *fakeIPInfo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	switch f.mode.Load().(string) {
	case "hang":
		<-r.Context().Done()
		return
	case "5xx":
		http.Error(w, "upstream down", http.StatusServiceUnavailable)
		return
	}
	ip, _ := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/json")
	w.Header().Set("Content-Type", "application/json")
	if n, ok := demoLocation(ip); ok {
		_ = json.NewEncoder(w).Encode(map[string]any{"ip": ip, "city": n.City, "region": n.Region, "country": n.Country, "loc": "1.0,2.0"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ip": ip})
}

// An ipinfo outage — 503s, then requests that hang past the timeout — stalls nothing and loses nothing:
// every offer is emitted, those whose address could not be located at once marked
// "geo_status":"unavailable" without location; once the service recovers, offers are enriched again and
// the users' hashes gain their location.
func TestEnrichmentThroughAnIPInfoOutage(t *testing.T) {
	s := newSinks(t)
	fake := &fakeIPInfo{}
	fake.mode.Store("5xx")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	provider, err := geo.NewIPInfo(geo.IPInfoConfig{BaseURL: srv.URL, Timeout: 150 * time.Millisecond, FailureThreshold: 3, OpenFor: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := newResolver(t, geo.Config{Provider: provider, Redis: s.rdb, Prefix: s.prefix, LookupTimeout: time.Second})
	cfg := s.config("in")
	cfg.Geo = r
	f := newFactory(t, cfg)

	ctx := context.Background()
	cp := &fakeCheckpointer{}
	p := f.NewProcessor(testShard)
	if err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	base := int64(1_626_091_318_000)
	i := 0
	phase := func(mode string) (clicks []string) {
		fake.mode.Store(mode)
		for range 3 { // three batches of 8 users, two events each
			var b []consumer.Record
			for u := range 8 {
				for range 2 {
					i++
					user := fmt.Sprintf("user-%d", u)
					click := fmt.Sprintf("%032x", i)
					clicks = append(clicks, click)
					data := strings.Replace(string(pocJSON(user, "ViewContent", base+int64(i)*100, 90, click)), `"user_ip":""`, `"user_ip":"`+demoIP(u, 10+i%3)+`"`, 1)
					b = append(b, rec(testShard, i, user, []byte(data)))
				}
			}
			if err := p.ProcessRecords(ctx, batch(b, cp)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.(*processor).final(ctx, cp); err != nil {
			t.Fatal(err)
		}
		if cp.position() != fmt.Sprintf("%s:0", seqNo(i)) {
			t.Fatalf("%s: checkpoint at %s, want the last record", mode, cp.position())
		}
		return clicks
	}
	down := phase("5xx")
	slow := phase("hang")
	fake.mode.Store("ok")
	testenv.WaitFor(t, "the geo provider answering again", 20*time.Second, func() bool {
		loc, _ := r.Lookup(ctx, demoIP(30, 1))
		return loc.Status == geo.StatusFound
	})
	up := phase("ok")
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}

	offers := readOffers(t, s)
	byClick := map[string]enriched{}
	lastSeen := map[string]string{}
	for _, o := range offers {
		if _, dup := byClick[o.ClickID]; dup {
			t.Fatalf("offer %s emitted twice", o.ClickID)
		}
		byClick[o.ClickID] = o
		if o.ClickID < lastSeen[o.UserID] {
			t.Fatalf("user %s: offer %s after %s: the user's order is lost", o.UserID, o.ClickID, lastSeen[o.UserID])
		}
		lastSeen[o.UserID] = o.ClickID
	}
	if len(offers) != len(down)+len(slow)+len(up) {
		t.Fatalf("%d offers, want %d: outputs were lost", len(offers), len(down)+len(slow)+len(up))
	}
	for _, c := range append(append([]string{}, down...), slow...) {
		if o := byClick[c]; o.GeoStatus != "unavailable" || o.Country != "" {
			t.Fatalf("offer during the outage: %+v, want geo_status unavailable and no location", o)
		}
	}
	for _, c := range up {
		o := byClick[c]
		loc, _ := demoLocation(o.UserIP)
		if o.GeoStatus != "" || o.Country != loc.Country || o.City != loc.City {
			t.Fatalf("offer after recovery: %+v, want %+v", o, loc)
		}
	}
	for u, h := range userHashes(t, s.rdb, s.prefix) {
		if h["country"] == "" || h["last_access_ms"] == "" {
			t.Errorf("user %s after recovery: %v", u, h)
		}
	}
	t.Logf("%d offers: %d and %d during the outage (503, hang) marked unavailable, %d enriched after; %d requests to ipinfo",
		len(offers), len(down), len(slow), len(up), fake.requests.Load())
}

// gated is a provider whose lookups of one address wait until the gate opens.
type gated struct {
	geo.Provider
	ip   netip.Addr
	gate chan struct{}
}

func (g *gated) Lookup(ctx context.Context, ip netip.Addr) (geo.Location, error) {
	if ip == g.ip {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return geo.Location{}, ctx.Err()
		}
	}
	return g.Provider.Lookup(ctx, ip)
}

// A user's outputs keep their order behind a pending lookup, the flush that covers it carries its answer
// (the barrier held that user's reply), and the user's location is its latest record's although the
// earlier record's answer came last.
func TestEnrichmentKeepsOrderBehindAPendingLookup(t *testing.T) {
	s := newSinks(t)
	slowIP, cachedIP, latestIP := demoIP(0, 9), demoIP(1, 9), demoIP(2, 9)
	g := &gated{Provider: demoMMDB(t), ip: netip.MustParseAddr(slowIP), gate: make(chan struct{})}
	r := newResolver(t, geo.Config{Provider: g, LookupTimeout: time.Minute})
	ctx := context.Background()
	for _, ip := range []string{cachedIP, latestIP} {
		if loc, err := r.Lookup(ctx, ip); err != nil || loc.Status != geo.StatusFound {
			t.Fatalf("warm the cache with %s: %+v %v", ip, loc, err)
		}
	}
	cfg := s.config("in")
	cfg.Geo = r
	f := newFactory(t, cfg)
	if err := s.rdb.HSet(ctx, session.UserKey(s.prefix, "u1"), "name", "Semyon Ryan").Err(); err != nil {
		t.Fatal(err)
	}
	base := int64(1_626_091_318_000)
	withIP := func(i int, name string, percent float64, ip string) consumer.Record {
		data := strings.Replace(string(pocJSON("u1", name, base+int64(i)*1000, percent, fmt.Sprintf("click-%d", i))), `"user_ip":""`, `"user_ip":"`+ip+`"`, 1)
		return rec(testShard, i, "u1", []byte(data))
	}
	recs := []consumer.Record{
		withIP(1, "ViewContent", 90, slowIP),   // an offer whose lookup waits at the gate
		withIP(2, "ViewContent", 80, cachedIP), // an offer answered from memory: must wait behind it
		withIP(3, "Search", 0, latestIP),       // no offer, the user's latest address
	}
	cp := &fakeCheckpointer{}
	p := f.NewProcessor(testShard)
	if err := p.Initialize(ctx, consumer.InitInput{ShardID: testShard, Start: lease.TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	if err := p.ProcessRecords(ctx, batch(recs, cp)); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- p.(*processor).final(ctx, cp) }()
	// The first record's lookup cannot answer before the gate opens, so the user must hold its reply.
	testenv.WaitFor(t, "the user holding its flush reply", 10*time.Second, func() bool { return testutil.ToFloat64(f.m.heldReplies) == 1 })
	select {
	case err := <-flushed:
		t.Fatalf("the flush ended (%v) while a lookup it covers was pending", err)
	default:
	}
	close(g.gate)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := p.ShutdownRequested(ctx, cp); err != nil {
		t.Fatal(err)
	}
	offers := readOffers(t, s)
	slowLoc, _ := demoLocation(slowIP)
	cachedLoc, _ := demoLocation(cachedIP)
	latestLoc, _ := demoLocation(latestIP)
	if len(offers) != 2 || offers[0].ClickID != "click-1" || offers[1].ClickID != "click-2" {
		t.Fatalf("offers %+v, want click-1 then click-2", offers)
	}
	if o := offers[0]; o.Name != "Semyon Ryan" || o.City != slowLoc.City || o.Country != slowLoc.Country {
		t.Fatalf("first offer %+v, want the name and %+v", o, slowLoc)
	}
	if o := offers[1]; o.Name != "Semyon Ryan" || o.City != cachedLoc.City {
		t.Fatalf("second offer %+v, want the name and %+v", o, cachedLoc)
	}
	h := userHashes(t, s.rdb, s.prefix)["u1"]
	if h["country"] != latestLoc.Country || h["region"] != latestLoc.Region || h["city"] != latestLoc.City || h["name"] != "Semyon Ryan" {
		t.Fatalf("user hash %v, want the latest record's location %+v and the name", h, latestLoc)
	}
}
