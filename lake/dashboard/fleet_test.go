package dashboard_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/dashboard"
	"github.com/clickfleet/clickfleet/lease"
)

// metricsServer serves a worker's /metrics as the consumer writes it, with records_total advanced by 50
// at every scrape.
func metricsServer(t *testing.T, worker, table string, down *atomic.Bool) *httptest.Server {
	t.Helper()
	var records atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		n := records.Add(50)
		fmt.Fprintf(w, `# TYPE clickfleet_consumer_worker_info gauge
clickfleet_consumer_worker_info{lease_table=%q,stream="clickstream",worker_id=%q} 1
# TYPE clickfleet_consumer_records_total counter
clickfleet_consumer_records_total %d
# TYPE clickfleet_lease_held gauge
clickfleet_lease_held 2
# TYPE clickfleet_consumer_shard_lag_seconds gauge
clickfleet_consumer_shard_lag_seconds{shard_id="shardId-000000000000"} 1.5
# TYPE clickfleet_actors_users_live gauge
clickfleet_actors_users_live 7
# TYPE clickfleet_actors_sessions_open gauge
clickfleet_actors_sessions_open 4
# TYPE clickfleet_archive_objects_total counter
clickfleet_archive_objects_total{kind="raw"} 3
clickfleet_archive_objects_total{kind="events"} 3
`, table, worker, n)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// The collector reads each worker's id, leases, live users, open sessions and archive objects from its /metrics, turns
// records_total into a rate between scrapes, finds workers through DNS (dns+http://), and marks a
// worker that stops answering as down, keeping its id.
func TestFleetScrapesWorkers(t *testing.T) {
	var down atomic.Bool
	a := metricsServer(t, "w-a", "leases", &down)
	b := metricsServer(t, "w-b", "leases", new(atomic.Bool))
	_, port, _ := net.SplitHostPort(b.Listener.Addr().String())
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f, err := dashboard.NewFleet(nil, dashboard.FleetConfig{Workers: []string{a.URL, "dns+http://localhost:" + port, "dns+http://no-such-host.invalid:1"},
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := f.Collect(ctx)
	byID := map[string]dashboard.Worker{}
	for _, w := range s.Workers {
		byID[w.ID] = w
	}
	if w := byID["w-a"]; !w.Up || w.RecordsPerSecond != nil || *w.LeasesHeld != 2 || *w.LiveUsers != 7 || *w.OpenSessions != 4 || w.ArchiveObjects["events"] != 3 {
		t.Fatalf("first scrape of w-a: %+v", w)
	}
	if w := byID["w-b"]; !w.Up || w.URL != "http://127.0.0.1:"+port {
		t.Fatalf("w-b through DNS: %+v (workers %+v)", w, s.Workers)
	}
	if w := byID[""]; w.Up || w.URL != "dns+http://no-such-host.invalid:1" || w.Error == "" {
		t.Fatalf("an unresolvable name: %+v", w)
	}
	now = now.Add(10 * time.Second)
	s = f.Collect(ctx)
	for _, w := range s.Workers {
		if w.Up && (w.RecordsPerSecond == nil || *w.RecordsPerSecond != 5) {
			t.Fatalf("%s: records/s %v, want 50 records in 10 s = 5", w.ID, w.RecordsPerSecond)
		}
	}
	if s.Totals.RecordsPerSecond != 10 || s.Totals.LiveUsers != 14 || s.Totals.OpenSessions != 8 || s.Totals.ArchiveObjects["raw"] != 6 || s.Totals.WorkersUp != 2 || s.Totals.WorkersDown != 1 {
		t.Fatalf("totals %+v", s.Totals)
	}
	down.Store(true)
	s = f.Collect(ctx)
	for _, w := range s.Workers {
		if w.URL == a.URL && (w.Up || w.ID != "w-a" || w.Error == "") {
			t.Fatalf("w-a after it stopped answering: %+v", w)
		}
	}
	if _, err := dashboard.NewFleet(nil, dashboard.FleetConfig{Workers: []string{"127.0.0.1:9090"}}); err == nil {
		t.Fatal("a worker URL without a scheme was accepted")
	}
	if _, err := dashboard.NewFleet(nil, dashboard.FleetConfig{Workers: []string{"dns+http://consume"}}); err == nil {
		t.Fatal("a dns+ URL without a port was accepted")
	}
}

// Each lease's state, from the lease table (real dynalite) and the workers' answers: held; moving when
// unowned, in a handoff, its owner's /metrics is down, or its counter unchanged for the failover time by
// the collector's own clock; ended at SHARD_END. Leases per worker count the owners; a held shard's lag
// comes from its owner's per-shard series.
func TestFleetShardStates(t *testing.T) {
	ddb := testenv.DynamoDB(t)
	table := testenv.LeaseTable(t, ddb)
	ctx := context.Background()
	tb := lease.NewTable(ddb, table)
	for _, l := range []lease.Lease{
		{Key: "shardId-000000000000", Owner: "w-a", Counter: 5, Checkpoint: lease.Checkpoint{SequenceNumber: "4960001"}},
		{Key: "shardId-000000000001", Owner: "", Counter: 2},
		{Key: "shardId-000000000002", Owner: "w-b", Counter: 9, CheckpointOwner: "w-a"},
		{Key: "shardId-000000000003", Owner: "w-gone", Counter: 3},
		{Key: "shardId-000000000004", Owner: "w-a", Counter: 7, Checkpoint: lease.ShardEnd},
		{Key: "shardId-000000000005", Owner: "w-down", Counter: 4},
	} {
		if err := tb.Create(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	var aDown, down atomic.Bool
	a := metricsServer(t, "w-a", table, &aDown)
	d := metricsServer(t, "w-down", table, &down)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f, err := dashboard.NewFleet(ddb, dashboard.FleetConfig{Tables: []dashboard.LeaseTable{{App: "consume", Name: table}},
		Workers: []string{a.URL, d.URL}, FailoverTime: 10 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	f.Collect(ctx)   // the workers' ids are learnt
	down.Store(true) // w-down stops answering
	now = now.Add(4 * time.Second)
	s := f.Collect(ctx)
	states := func(s *dashboard.Snapshot) map[string]string {
		out := map[string]string{}
		for _, sh := range s.Apps[0].Shards {
			out[sh.ID] = sh.State
		}
		return out
	}
	want := map[string]string{"shardId-000000000000": "held", "shardId-000000000001": "moving", "shardId-000000000002": "moving",
		"shardId-000000000003": "held", "shardId-000000000004": "ended", "shardId-000000000005": "moving"}
	if got := states(s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	sh := s.Apps[0].Shards[0]
	if sh.Owner != "w-a" || sh.LagSeconds == nil || *sh.LagSeconds != 1.5 || !strings.HasPrefix(sh.Checkpoint, "4960001") {
		t.Fatalf("shard 0: %+v", sh)
	}
	if l := s.Apps[0].Leases; l["w-a"] != 1 || l["w-b"] != 1 || l[""] != 1 || l["w-gone"] != 1 || l["w-down"] != 1 {
		t.Fatalf("leases per worker %v (an ended shard counts for no one)", l)
	}
	// Nobody renews: after the failover time every lease still owned is shown as moving (expired), w-a's
	// too: the table, not the worker's answer, decides.
	now = now.Add(10 * time.Second)
	s = f.Collect(ctx)
	want["shardId-000000000000"], want["shardId-000000000003"] = "moving", "moving"
	if got := states(s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the failover time: states %v, want %v", got, want)
	}
	// A table that cannot be read is an error in the snapshot, not an empty table.
	f2, err := dashboard.NewFleet(ddb, dashboard.FleetConfig{Tables: []dashboard.LeaseTable{{App: "archive", Name: "no-such-table-" + table}}})
	if err != nil {
		t.Fatal(err)
	}
	if s := f2.Collect(ctx); s.Apps[0].Error == "" || len(s.Apps[0].Shards) != 0 {
		t.Fatalf("a missing table: %+v", s.Apps[0])
	}
}
