package dashboard_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/dashboard"
)

// With the lake's S3 unreachable, a lease table missing and a worker down, the page says which source is
// down on every chart and in the fleet panel, and draws nothing — never zeros.
func testSourcesDownInBrowser(t *testing.T, bin string) {
	testenv.DynamoDB(t)
	deadS3, deadWorker := "http://"+freeAddr(t), "http://"+freeAddr(t)
	addr := freeAddr(t)
	dash := startEnv(t, bin, "dashboard", []string{"AWS_ENDPOINT_URL_S3=" + deadS3}, "dashboard", "--listen", addr,
		"--lake-url", "s3://clickfleet-lake/", "--cache-dir", filepath.Join(t.TempDir(), "cache"), "--query-timeout", "5s",
		"--workers", deadWorker, "--lease-table", testenv.Name(t, "missing"), "--archive-lease-table", "", "--fleet-refresh-interval", "1s")
	base := "http://" + addr
	waitHTTP(t, "the dashboard", base+"/healthz", dash)
	// The browser logs each 503 answer as a failed request: those are the point of this test.
	ctx := browser(t, func(m chromedp.ConsoleMessage) bool {
		return m.Source == "network" && strings.Contains(m.Text, "503")
	})
	do(t, ctx, navigate(base+"/?range=24h"))
	// The charts, and the last reconciliation (an object in the same lake).
	testenv.WaitForState(t, "every chart and the reconciliation marked down, naming the lake", 120*time.Second, func() (bool, string) {
		var st map[string][2]string
		eval(t, ctx, `Object.fromEntries([...document.querySelectorAll("[data-status]")].map(e => [e.dataset.status, [e.dataset.kind || "", e.textContent]]))`, &st)
		for _, c := range append(slices.Clone(dashboard.Charts), "reconcile") {
			if st[c][0] != "down" || !strings.Contains(st[c][1], "source down: lake (S3)") || !strings.Contains(st[c][1], "--lake-url") {
				return false, fmt.Sprint(st)
			}
		}
		return true, ""
	})
	// Nothing is drawn: no chart has data, the customer table is empty.
	var drawn struct {
		Series int `json:"series"`
		Rows   int `json:"rows"`
	}
	eval(t, ctx, `({series: Object.values(window.dashboard.charts).reduce((n, c) => n + ((c.getOption() || {}).series || []).reduce((m, s) => m + (s.data || []).length, 0), 0),
		rows: document.querySelectorAll("#table-actions_per_customer tr").length})`, &drawn)
	if drawn.Series != 0 || drawn.Rows != 0 {
		t.Fatalf("a down source drew %d data points and %d table rows; want none", drawn.Series, drawn.Rows)
	}
	// The fleet panel: the missing table is an error of its own, the worker is down.
	testenv.WaitForState(t, "the fleet panel naming the missing table and the down worker", 60*time.Second, func() (bool, string) {
		var f struct {
			AppError string `json:"appError"`
			Worker   string `json:"worker"`
		}
		eval(t, ctx, `({appError: (document.querySelector("#fleet [data-app-error]") || {}).textContent || "",
			worker: (document.querySelector("#fleet tr[data-worker]") || {dataset: {}}).dataset.up || ""})`, &f)
		return strings.Contains(f.AppError, "source down: lease table") && f.Worker == "false", fmt.Sprintf("%+v", f)
	})
	// The open sessions come from the workers: with the only one down, no count (not a zero).
	var open struct {
		Kind  string `json:"kind"`
		Shown string `json:"shown"`
	}
	eval(t, ctx, `({kind: document.querySelector('[data-status="sessions_open"]').dataset.kind, shown: document.querySelector("#sessions-open").textContent})`, &open)
	if open.Kind != "down" || open.Shown != "–" {
		t.Fatalf("open sessions with the only worker down: %+v, want marked down and no number", open)
	}
	screenshot(t, ctx, "dashboard-sources-down")
}
