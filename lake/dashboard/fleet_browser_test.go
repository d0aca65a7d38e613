package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lease"
)

// pageShard is a row of the page's fleet table.
type pageShard struct {
	App   string `json:"app"`
	Shard string `json:"shard"`
	Owner string `json:"owner"`
	State string `json:"state"`
}

// pageShards reads the fleet tables the page shows.
func pageShards(t *testing.T, ctx context.Context) []pageShard {
	t.Helper()
	var out []pageShard
	eval(t, ctx, `[...document.querySelectorAll("#fleet .fleet-app")].flatMap(app => [...app.querySelectorAll("tr[data-shard]")].map(tr =>
		({app: app.dataset.app, shard: tr.dataset.shard, owner: tr.dataset.owner, state: tr.dataset.state})))`, &out)
	return out
}

// owners reads a lease table: shard → owner.
func owners(t *testing.T, tb *lease.Table) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ls, err := tb.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range ls {
		out[l.Key] = l.Owner
	}
	return out
}

// While real workers run, the fleet panel shows each shard's owner as the lease table has it (and each
// held shard's lag from its owner's /metrics); when a worker is killed its shards are shown as moving,
// until the survivor holds them all.
func testFleetInBrowser(t *testing.T, bin string) {
	kin := testenv.Kinesis(t)
	ddb := testenv.DynamoDB(t)
	s3c := testenv.S3(t)
	stream := testenv.Stream(t, kin, 4)
	consumeTable := testenv.LeaseTable(t, ddb)
	archiveTable := testenv.LeaseTable(t, ddb)
	bucket := testenv.Bucket(t, s3c)
	testenv.Redis(t)
	redisURL := os.Getenv("CLICKFLEET_REDIS_URL")
	prefix := testenv.Name(t, "cf") + ":"

	common := []string{"--stream", stream, "--failover-time", "4s", "--take-interval", "500ms", "--idle-time", "200ms", "--shard-sync-interval", "5s", "--emf-interval", "0"}
	addrs := map[string]string{}
	procs := map[string]*proc{}
	for _, w := range []string{"w1", "w2"} {
		addrs[w] = freeAddr(t)
		procs[w] = start(t, bin, w, append([]string{"consume", "--lease-table", consumeTable, "--worker-id", w, "--processor", "count",
			"--redis-url", redisURL, "--key-prefix", prefix, "--http-listen", addrs[w]}, common...)...)
	}
	addrs["a1"] = freeAddr(t)
	procs["a1"] = start(t, bin, "a1", append([]string{"archive", "--lease-table", archiveTable, "--worker-id", "a1", "--lake-url", "s3://" + bucket + "/",
		"--buffer-interval", "1s", "--buffer-interval-unchecked", "--redis-url", "", "--geo-mmdb", "", "--http-listen", addrs["a1"]}, common...)...)
	for _, w := range []string{"w1", "w2", "a1"} {
		waitHTTP(t, "worker "+w, "http://"+addrs[w]+"/readyz", procs[w])
	}
	addr := freeAddr(t)
	dash := start(t, bin, "dashboard", "dashboard", "--listen", addr, "--lake-url", "s3://"+bucket+"/", "--cache-dir", filepath.Join(t.TempDir(), "cache"),
		"--workers", "http://"+addrs["w1"]+",http://"+addrs["w2"]+","+addrs["a1"], "--lease-table", consumeTable, "--archive-lease-table", archiveTable,
		"--fleet-refresh-interval", "1s", "--failover-time", "4s", "--refresh-interval", "5s")
	base := "http://" + addr
	waitHTTP(t, "the dashboard", base+"/healthz", dash)
	gen := start(t, bin, "gen", "gen", "--profile", "poc", "--stream", stream, "--count", "3000", "--rate", "100", "--users", "50")

	ctx := browser(t, nil)
	do(t, ctx, navigate(base+"/?range=all"))
	consume := lease.NewTable(ddb, consumeTable)
	archive := lease.NewTable(ddb, archiveTable)

	// Both consume workers hold shards, every shard is held, and the page shows the table's owners.
	testenv.WaitForState(t, "the page to show the lease tables' owners, both consume workers holding shards", 120*time.Second, func() (bool, string) {
		rows := pageShards(t, ctx)
		want := map[string]map[string]string{"consume": owners(t, consume), "archive": owners(t, archive)}
		got := map[string]map[string]string{"consume": {}, "archive": {}}
		held := map[string]int{}
		for _, r := range rows {
			got[r.App][r.Shard] = r.Owner
			if r.State == "held" {
				held[r.Owner]++
			}
		}
		ok := fmt.Sprint(got) == fmt.Sprint(want) && len(want["consume"]) == 4 && len(want["archive"]) == 4 &&
			held["w1"] > 0 && held["w2"] > 0 && held["w1"]+held["w2"] == 4 && held["a1"] == 4
		return ok, fmt.Sprintf("page %v, tables %v, held %v", got, want, held)
	})
	// Lag per held shard comes from the owner's /metrics; the archive's objects and the records rate show.
	testenv.WaitForState(t, "per-shard lag, records/s and archive objects on the page", 120*time.Second, func() (bool, string) {
		var s struct {
			Lags    []any   `json:"lags"`
			Rate    float64 `json:"rate"`
			Objects float64 `json:"objects"`
		}
		eval(t, ctx, `(() => { const f = window.dashboard.fleet; if (!f) return {lags: [], rate: 0, objects: 0};
			return {lags: f.apps.flatMap(a => a.shards.filter(s => s.state === "held").map(s => s.lag_seconds)),
				rate: f.totals.records_per_second, objects: Object.values(f.totals.archive_objects).reduce((a, b) => a + b, 0)}; })()`, &s)
		for _, l := range s.Lags {
			if l == nil {
				return false, fmt.Sprintf("a held shard without lag: %v", s.Lags)
			}
		}
		return len(s.Lags) == 8 && s.Rate > 0 && s.Objects > 0, fmt.Sprintf("%+v", s)
	})
	screenshot(t, ctx, "dashboard-fleet-running")

	// kill -9 w1: its shards are shown as moving (its /metrics is gone, its leases not renewed) …
	var w1Shards []string
	for shard, owner := range owners(t, consume) {
		if owner == "w1" {
			w1Shards = append(w1Shards, shard)
		}
	}
	sort.Strings(w1Shards)
	if err := procs["w1"].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitForState(t, "w1's shards shown as moving and w1 as down", 60*time.Second, func() (bool, string) {
		var w1Up string
		eval(t, ctx, `(document.querySelector('#fleet tr[data-worker="w1"]') || {dataset: {}}).dataset.up || ""`, &w1Up)
		moving := 0
		var seen []string
		for _, r := range pageShards(t, ctx) {
			if r.App == "consume" {
				seen = append(seen, r.Shard+"="+r.Owner+"/"+r.State)
				if r.Owner == "w1" && r.State == "moving" {
					moving++
				}
				if r.Owner == "w2" && r.State != "held" {
					return false, "a w2 shard not held: " + strings.Join(seen, " ")
				}
			}
		}
		// Once w2 has taken a shard it is held again; until then each of w1's is moving.
		return w1Up == "false" && moving > 0, fmt.Sprintf("w1 up %q, %s (w1 had %v)", w1Up, strings.Join(seen, " "), w1Shards)
	})
	screenshot(t, ctx, "dashboard-fleet-worker-killed")

	// … until w2 holds them all, as the lease table says.
	testenv.WaitForState(t, "w2 to hold every consume shard on the page", 120*time.Second, func() (bool, string) {
		var seen []string
		all := true
		for _, r := range pageShards(t, ctx) {
			if r.App == "consume" {
				seen = append(seen, r.Shard+"="+r.Owner+"/"+r.State)
				all = all && r.Owner == "w2" && r.State == "held"
			}
		}
		tbl := owners(t, consume)
		for _, o := range tbl {
			all = all && o == "w2"
		}
		return all && len(seen) == 4, strings.Join(seen, " ") + fmt.Sprintf(" table %v", tbl)
	})
	screenshot(t, ctx, "dashboard-fleet-after-failover")
	_ = gen
}
