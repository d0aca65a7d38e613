package dashboard_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/reconcile"
	"github.com/clickfleet/clickfleet/lease"
	"github.com/clickfleet/clickfleet/messages"
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
// until the survivor holds them all. The same run checks the sessions end to end: the lab's clicks
// through consume and archive reconcile equal (a clean run); POC clicks during which a consume worker is
// killed with kill -9 reconcile equal too; a deleted row, an altered event count and an extra row are
// each named (exit 1); the page shows the workers' open sessions while clicks flow, and each stored
// reconciliation.
func testFleetInBrowser(t *testing.T, bin string) {
	kin := testenv.Kinesis(t)
	ddb := testenv.DynamoDB(t)
	s3c := testenv.S3(t)
	stream := testenv.Stream(t, kin, 4)
	offers, errs := testenv.Stream(t, kin, 1), testenv.Stream(t, kin, 1)
	consumeTable := testenv.LeaseTable(t, ddb)
	archiveTable := testenv.LeaseTable(t, ddb)
	sessions := sessionsTable(t, ddb)
	bucket := testenv.Bucket(t, s3c)
	lakeURL := "s3://" + bucket + "/"
	testenv.Redis(t)
	redisURL := os.Getenv("CLICKFLEET_REDIS_URL")
	prefix := testenv.Name(t, "cf") + ":"

	common := []string{"--stream", stream, "--failover-time", "4s", "--take-interval", "500ms", "--idle-time", "200ms", "--shard-sync-interval", "5s", "--emf-interval", "0"}
	addrs := map[string]string{}
	procs := map[string]*proc{}
	for _, w := range []string{"w1", "w2"} {
		addrs[w] = freeAddr(t)
		procs[w] = start(t, bin, w, append([]string{"consume", "--lease-table", consumeTable, "--worker-id", w, "--sessions-table", sessions,
			"--offers-stream", offers, "--errors-stream", errs, "--redis-url", redisURL, "--key-prefix", prefix, "--geo-mmdb", "",
			"--session-close-delay", "500ms", "--http-listen", addrs[w]}, common...)...)
	}
	addrs["a1"] = freeAddr(t)
	procs["a1"] = start(t, bin, "a1", append([]string{"archive", "--lease-table", archiveTable, "--worker-id", "a1", "--lake-url", lakeURL,
		"--buffer-interval", "1s", "--buffer-interval-unchecked", "--redis-url", "", "--geo-mmdb", "", "--http-listen", addrs["a1"]}, common...)...)
	for _, w := range []string{"w1", "w2", "a1"} {
		waitHTTP(t, "worker "+w, "http://"+addrs[w]+"/readyz", procs[w])
	}
	// A clean run: the lab's clicks (6 users, a click a second and a 15 s pause every 60, in event time,
	// 100 times faster) through consume and archive (the shards are read from their start), sent while
	// the dashboard starts.
	const labClicks, pocClicks = 300, 500
	labGen := start(t, bin, "gen-lab", "gen", "--stream", stream, "--profile", "lab", "--users", "6", "--click-interval", "1s",
		"--count", fmt.Sprint(labClicks), "--time-scale", "0.01")
	addr := freeAddr(t)
	dash := start(t, bin, "dashboard", "dashboard", "--listen", addr, "--lake-url", lakeURL, "--cache-dir", filepath.Join(t.TempDir(), "cache"),
		"--workers", "http://"+addrs["w1"]+",http://"+addrs["w2"]+","+addrs["a1"], "--lease-table", consumeTable, "--archive-lease-table", archiveTable,
		"--fleet-refresh-interval", "1s", "--failover-time", "4s")
	base := "http://" + addr
	waitHTTP(t, "the dashboard", base+"/healthz", dash)

	ctx := browser(t, nil)
	do(t, ctx, navigate(base+"/?range=all"))
	consume := lease.NewTable(ddb, consumeTable)
	archive := lease.NewTable(ddb, archiveTable)
	reconcileCache := filepath.Join(t.TempDir(), "reconcile-cache")
	waitAllOwners(t, ctx, consume, archive)

	// Once the archive holds the lab's clicks and every session is closed, the lake's sessions and the
	// table's rows are equal.
	waitExit0(t, "the lab's clicks all sent", labGen)
	waitSettled(t, ddb, sessions, addrs, []string{"w1", "w2"}, labClicks)
	clean := mustEqual(t, "after a clean run of the lab's clicks", bin, lakeURL, sessions, reconcileCache)
	waitReconcilePanel(t, ctx, clean)
	screenshot(t, ctx, "dashboard-reconcile-clean")

	// Lag per held shard comes from the owner's /metrics; the archive's objects and the records rate show.
	gen := start(t, bin, "gen", "gen", "--profile", "poc", "--stream", stream, "--count", fmt.Sprint(pocClicks), "--rate", "5", "--users", "40", "--time-scale", "0.1")
	w1Records, _ := metric("http://"+addrs["w1"], "clickfleet_actors_records_total", "")
	testenv.WaitForState(t, "per-shard lag, records/s, archive objects and open sessions on the page, and w1 processing POC clicks", 120*time.Second, func() (bool, string) {
		var s struct {
			Lags    []any   `json:"lags"`
			Rate    float64 `json:"rate"`
			Objects float64 `json:"objects"`
			Open    float64 `json:"open"`
			Shown   string  `json:"shown"`
		}
		eval(t, ctx, `(() => { const f = window.dashboard.fleet; if (!f) return {lags: [], rate: 0, objects: 0, open: 0, shown: ""};
			return {lags: f.apps.flatMap(a => a.shards.filter(s => s.state === "held").map(s => s.lag_seconds)),
				rate: f.totals.records_per_second, objects: Object.values(f.totals.archive_objects).reduce((a, b) => a + b, 0),
				open: f.totals.open_sessions, shown: document.querySelector("#sessions-open").textContent}; })()`, &s)
		for _, l := range s.Lags {
			if l == nil {
				return false, fmt.Sprintf("a held shard without lag: %v", s.Lags)
			}
		}
		n, _ := metric("http://"+addrs["w1"], "clickfleet_actors_records_total", "")
		// At most one open session per user: 40 POC users (the lab's are closed).
		return len(s.Lags) == 8 && s.Rate > 0 && s.Objects > 0 && s.Open > 0 && s.Open <= 40 && s.Shown == fmt.Sprint(s.Open) && n > w1Records,
			fmt.Sprintf("%+v, w1 records %v (before the POC clicks %v)", s, n, w1Records)
	})
	screenshot(t, ctx, "dashboard-fleet-running")

	// kill -9 w1 while the clicks flow: its shards are shown as moving (its /metrics is gone, its leases
	// not renewed) …
	if gen.exited() {
		t.Fatal("the POC clicks were all sent before w1 was killed: the kill is not mid-run (the machine is slower than this test assumes)")
	}
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
		// Once w2 has taken a shard it is held again; until then each of w1's is moving. A takeover quicker
		// than the page's refresh shows w1's shards held by w2 already (the "moving" state was never on screen).
		takenOver := len(w1Shards) > 0
		for _, r := range pageShards(t, ctx) {
			if r.App == "consume" && slices.Contains(w1Shards, r.Shard) && !(r.Owner == "w2" && r.State == "held") {
				takenOver = false
			}
		}
		return w1Up == "false" && (moving > 0 || takenOver), fmt.Sprintf("w1 up %q, %s (w1 had %v)", w1Up, strings.Join(seen, " "), w1Shards)
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

	// The run with the kill -9 reconciles equal too, once every click is archived and w2 has closed every
	// session (and each click is counted once in the table).
	waitExit0(t, "the POC clicks all sent", gen)
	waitSettled(t, ddb, sessions, addrs, []string{"w2"}, labClicks+pocClicks)
	killed := mustEqual(t, "after a run with a consume worker killed (kill -9)", bin, lakeURL, sessions, reconcileCache)
	waitReconcilePanel(t, ctx, killed)
	tamper(t, ctx, ddb, bin, lakeURL, sessions, reconcileCache, killed)
}

// waitExit0 waits until p has exited, which must be with status 0.
func waitExit0(t *testing.T, what string, p *proc) {
	t.Helper()
	testenv.WaitFor(t, what, 120*time.Second, p.exited)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		b, _ := os.ReadFile(p.log)
		t.Fatalf("%s: exit status %d\n%s", what, code, b)
	}
}

// waitAllOwners waits until both consume workers hold shards, every shard is held, and the page shows
// the lease tables' owners.
func waitAllOwners(t *testing.T, ctx context.Context, consume, archive *lease.Table) {
	t.Helper()
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
}

// waitSettled waits until the archive has stored every one of the clicks sent so far as an events row,
// the table's rows count each of them (every session's final row written), and the consume workers still
// running report no open session. (At least: a producer's retry may store a click twice; both sides
// then see the copy, and the reconciliation says whether they agree on it.)
func waitSettled(t *testing.T, ddb *dynamodb.Client, table string, addrs map[string]string, workers []string, clicks int) {
	t.Helper()
	testenv.WaitForState(t, fmt.Sprintf("%d clicks archived, counted in the sessions table, every session closed", clicks), 180*time.Second, func() (bool, string) {
		archived, _ := metric("http://"+addrs["a1"], "clickfleet_archive_records_total", `kind="events"`)
		events, rows := eventsInTable(t, ddb, table)
		open := 0.0
		for _, w := range workers {
			n, ok := metric("http://"+addrs[w], "clickfleet_actors_sessions_open", "")
			if !ok {
				return false, "worker " + w + " does not report clickfleet_actors_sessions_open"
			}
			open += n
		}
		return int(archived) >= clicks && events >= int64(clicks) && open == 0,
			fmt.Sprintf("archived %v, the table counts %d events in %d rows, %v sessions open", archived, events, rows, open)
	})
}

// tamper changes the table three ways at once — a deleted row, an altered event count, an extra row —
// and checks that reconcile exits 1 naming each (the session id and, for the count, the field and both
// values), and that the page shows them.
func tamper(t *testing.T, ctx context.Context, ddb *dynamodb.Client, bin, lakeURL, table, cacheDir string, res *reconcile.Result) {
	t.Helper()
	open := map[string]bool{}
	for _, o := range res.Open {
		open[o.Lake.SessionID] = true
	}
	var ids []string // rows of compared (closed) sessions
	p := dynamodb.NewScanPaginator(ddb, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() && len(ids) < 2 {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			if id := it["session_id"].(*dtypes.AttributeValueMemberS).Value; !open[id] && len(ids) < 2 {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) < 2 {
		t.Fatalf("fewer than 2 closed sessions' rows to change: %v", ids)
	}
	deleted := tableItem(t, ddb, table, ids[0])
	deleteItem(t, ddb, table, ids[0])
	altered := tableItem(t, ddb, table, ids[1])
	n, _ := strconv.ParseInt(altered["event_count"].(*dtypes.AttributeValueMemberN).Value, 10, 64)
	changed := maps.Clone(altered)
	changed["event_count"] = &dtypes.AttributeValueMemberN{Value: fmt.Sprint(n + 1)}
	putItem(t, ddb, table, changed)
	extra := maps.Clone(deleted)
	ghost := messages.NewSession("ghost", "tablet", res.At.UnixMilli()-3_600_000)
	extra["session_id"], extra["user_id"], extra["device_type"] = &dtypes.AttributeValueMemberS{Value: ghost.SessionID},
		&dtypes.AttributeValueMemberS{Value: "ghost"}, &dtypes.AttributeValueMemberS{Value: "tablet"}
	extra["start_ms"] = &dtypes.AttributeValueMemberN{Value: fmt.Sprint(ghost.StartMs)}
	putItem(t, ddb, table, extra)

	mustDiffer(t, "a deleted row, an altered count and an extra row", bin, lakeURL, table, cacheDir,
		"missing  "+ids[0]+": in the lake", fmt.Sprintf("differs  %s: event_count lake %d, table %d", ids[1], n, n+1),
		"extra    "+ghost.SessionID+": a row in the table", "missing from the table 1 · extra in the table 1 · differing 1")
	// The run stored its result in the lake, where the page reads it.
	u, _ := archive.ParseURL(lakeURL)
	stored, err := reconcile.Load(context.Background(), testenv.S3(t), u.Bucket, u.Prefix+reconcile.ResultKey)
	if err != nil || stored.Equal || len(stored.Differences) != 3 {
		t.Fatalf("the stored result: %v, %+v; want the 3 differences", err, stored)
	}
	page := waitReconcilePanel(t, ctx, stored)
	want := map[string][]string{"missing": {ids[0]}, "differs": {ids[1]}, "extra": {ghost.SessionID}}
	if fmt.Sprint(page.Diffs) != fmt.Sprint(want) {
		t.Fatalf("the page lists the differences %v, want %v", page.Diffs, want)
	}
	screenshot(t, ctx, "dashboard-reconcile-different")
}
