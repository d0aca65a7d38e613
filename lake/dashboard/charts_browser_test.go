package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/lakegen"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/dashboard"
)

// coordinates places the cities of lakegen.Addresses (the trace's locator gives none).
var coordinates = map[string][2]float64{
	"Riverside": {33.98, -117.37}, "San Jose": {37.34, -121.89}, "Austin": {30.27, -97.74}, "New York": {40.71, -74.01},
	"Seattle": {47.61, -122.33}, "Amsterdam": {52.37, 4.90}, "Berlin": {52.52, 13.40}, "Munich": {48.14, 11.58},
}

// placedLocator is lakegen's locator with each city's coordinates, as the DB-IP file gives them.
type placedLocator struct{}

func (placedLocator) LookupAll(ctx context.Context, ips []string) map[string]geo.Location {
	out := lakegen.Locator{}.LookupAll(ctx, ips)
	for ip, loc := range out {
		if c, ok := coordinates[loc.City]; ok {
			loc.Latitude, loc.Longitude, loc.HasCoordinates = c[0], c[1], true
			out[ip] = loc
		}
	}
	return out
}

// chartLake archives a generated trace (3 hours from 2026-12-01T10:00Z, names from Redis) into a test
// bucket under lake/ and returns the lake's URL and the trace.
func chartLake(t *testing.T) (string, lakegen.Trace) {
	t.Helper()
	ctx := context.Background()
	s3c := testenv.S3(t)
	bucket := testenv.Bucket(t, s3c)
	rdb := testenv.Redis(t)
	prefix := testenv.Name(t, "cf") + ":"
	trace := lakegen.Trace{Records: 1500, Users: 12, Span: 3 * time.Hour, BadEvery: 60, Seed: 5}
	for i := 1; i <= trace.Users; i++ {
		key := fmt.Sprintf("%suser:%d", prefix, i)
		if err := rdb.HSet(ctx, key, "name", fmt.Sprintf("Customer %02d", i)).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Del(context.Background(), key) })
	}
	loc := func(p string) archive.Location { return archive.Location{Bucket: bucket, Prefix: "lake/" + p} }
	if err := lakegen.Archive(ctx, s3c, bucket, trace.Generate(), archive.Config{Raw: loc("raw/"), Events: loc("events/"), Errors: loc("errors/"),
		BufferBytes: 32 << 10, Names: rdb, Prefix: prefix, Geo: placedLocator{}}); err != nil {
		t.Fatal(err)
	}
	return "s3://" + bucket + "/lake/", trace
}

// reportRows runs `clickfleet report NAME --format json` over the lake for the range: the rows the
// dashboard must show.
func reportRows(t *testing.T, bin, lakeURL, cacheDir, name, from, to string) []any {
	t.Helper()
	args := []string{"report", name, "--format", "json", "--lake-url", lakeURL, "--cache-dir", cacheDir}
	if from != "" {
		args = append(args, "--from", from)
	}
	if to != "" {
		args = append(args, "--to", to)
	}
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("clickfleet %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	var rows []any
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("report %s: %v\n%s", name, err, out.String())
	}
	return rows
}

// expectedStates counts the trace's valid records per US state whose arrival hour is in [from, to).
func expectedStates(t *testing.T, trace lakegen.Trace, from, to time.Time) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, recs := range trace.Generate() {
		for _, r := range recs {
			var ev struct {
				UserIP    string `json:"user_ip"`
				Timestamp string `json:"timestamp"`
			}
			if json.Unmarshal(r.Data, &ev) != nil || ev.Timestamp == "" {
				continue // malformed: not in events
			}
			h := r.ArrivedAt.UTC().Truncate(time.Hour)
			if h.Before(from) || !h.Before(to) {
				continue
			}
			if l := lakegen.Lookup(ev.UserIP); l.Country == "US" && l.Region != "" {
				out[l.Region]++
			}
		}
	}
	return out
}

// expectedSessionsByHour sessionizes the trace's valid records as the lab does — per user in arrival
// order, a new session where the event time is more than 10 s after the user's previous event's — and
// counts the sessions per UTC hour of their start, for the starts in [from, to): what sessions_by_hour
// must answer, computed without the lake.
func expectedSessionsByHour(t *testing.T, trace lakegen.Trace, from, to time.Time) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, recs := range trace.Generate() { // each user's records are on one shard, in arrival order
		prev := map[string]int64{}
		for _, r := range recs {
			var ev struct {
				UserID    string `json:"user_id"`
				Timestamp string `json:"timestamp"`
			}
			if json.Unmarshal(r.Data, &ev) != nil || ev.Timestamp == "" {
				continue // malformed: not in events
			}
			at, err := time.Parse("2006-01-02 15:04:05.000000", ev.Timestamp)
			if err != nil {
				t.Fatal(err)
			}
			ms := at.UnixMilli()
			p, seen := prev[ev.UserID]
			prev[ev.UserID] = ms
			if seen && ms-p <= 10_000 {
				continue
			}
			if h := at.UTC().Truncate(time.Hour); !h.Before(from) && h.Before(to) {
				out[h.Format("2006-01-02T15:04Z")]++
			}
		}
	}
	return out
}

// checkSessionCharts checks the sessions section: every chart draws its /api rows (bars in the rows'
// order, the device donut), and the sessions per hour are the trace's own.
func checkSessionCharts(t *testing.T, ctx context.Context, api map[string][]any, wantHours map[string]float64) {
	t.Helper()
	row := func(v any) map[string]any { return v.(map[string]any) }
	for _, c := range []struct{ name, label string }{{"sessions_by_hour", "hour"}, {"session_length", "bucket"}, {"events_per_session", "bucket"}} {
		var bars struct {
			Labels []any `json:"labels"`
			Values []any `json:"values"`
		}
		eval(t, ctx, fmt.Sprintf(`(() => { const o = window.dashboard.charts[%q].getOption(); return {labels: o.xAxis[0].data, values: o.series[0].data}; })()`, c.name), &bars)
		var labels, values []any
		for _, r := range api[c.name] {
			labels = append(labels, row(r)[c.label])
			values = append(values, row(r)["sessions"])
		}
		sameJSON(t, c.name+" labels", bars.Labels, labels)
		sameJSON(t, c.name+" values", bars.Values, values)
	}
	var donut []any
	eval(t, ctx, "window.dashboard.charts.sessions_by_device.getOption().series[0].data", &donut)
	var want []any
	for _, r := range api["sessions_by_device"] {
		want = append(want, map[string]any{"name": row(r)["device_type"], "value": row(r)["sessions"]})
	}
	sameJSON(t, "sessions by device donut", donut, want)
	got := map[string]float64{}
	for _, r := range api["sessions_by_hour"] {
		got[row(r)["hour"].(string)] = row(r)["sessions"].(float64)
	}
	if len(wantHours) == 0 {
		t.Fatal("the trace has no session in the range")
	}
	sameJSON(t, "sessions per hour against the trace", got, wantHours)
}

// The page draws every chart from its /api answer, which is the report's rows for the same range; the
// map colours the states with requests and only those; the range picker changes what every chart shows.
func testChartsInBrowser(t *testing.T, bin string) {
	lakeURL, trace := chartLake(t)
	addr := freeAddr(t)
	dash := start(t, bin, "dashboard", "dashboard", "--listen", addr, "--lake-url", lakeURL, "--cache-dir", filepath.Join(t.TempDir(), "cache"),
		"--lease-table", "", "--archive-lease-table", "", "--refresh-interval", "1h")
	base := "http://" + addr
	waitHTTP(t, "the dashboard", base+"/healthz", dash)
	ctx := browser(t, nil)
	reportCache := filepath.Join(t.TempDir(), "report-cache")

	check := func(t *testing.T, from, to string) {
		t0, _ := time.Parse("2006-01-02T15", from)
		t1, _ := time.Parse("2006-01-02T15", to)
		waitJS(t, ctx, "every chart drawn for "+from+".."+to, 120*time.Second,
			fmt.Sprintf(`window.dashboard.range.from === %q && window.dashboard.range.to === %q && %s`, from, to,
				strings.Join(func() []string {
					var c []string
					for _, n := range dashboard.Charts {
						c = append(c, fmt.Sprintf(`(window.dashboard.answers[%q]||{}).status === 200 && (window.dashboard.answers[%q].body.from||"").startsWith(%q)`, n, n, from))
					}
					return c
				}(), " && ")))
		api := map[string][]any{}
		for _, name := range dashboard.Charts {
			var body struct {
				Rows  []any `json:"rows"`
				Empty bool  `json:"empty"`
			}
			if code := getJSON(t, base+"/api/"+name+"?from="+from+"&to="+to, &body); code != 200 || body.Empty {
				t.Fatalf("/api/%s: %d, empty %v", name, code, body.Empty)
			}
			sameJSON(t, name+": /api rows and the report's rows", body.Rows, reportRows(t, bin, lakeURL, reportCache, name, from, to))
			var page []any
			eval(t, ctx, fmt.Sprintf("window.dashboard.answers[%q].body.rows", name), &page)
			sameJSON(t, name+": the page's answer and /api", page, body.Rows)
			api[name] = body.Rows
		}
		row := func(v any) map[string]any { return v.(map[string]any) }

		// The donut: one slice per event name, valued by its count.
		var donut []any
		eval(t, ctx, "window.dashboard.charts.event_ratio.getOption().series[0].data", &donut)
		var want []any
		for _, r := range api["event_ratio"] {
			want = append(want, map[string]any{"name": row(r)["event_name"], "value": row(r)["events"]})
		}
		sameJSON(t, "donut data", donut, want)

		// The US map: its data are the states' counts, which are the trace's own; exactly those states are
		// coloured by the visual map, the others keep the plain area colour.
		var mapData []any
		eval(t, ctx, "window.dashboard.charts.requests_by_state.getOption().series[0].data.filter(d => d.value !== undefined)", &mapData)
		want = nil
		got := map[string]float64{}
		for _, r := range api["requests_by_state"] {
			want = append(want, map[string]any{"name": row(r)["state"], "value": row(r)["requests"]})
			got[row(r)["state"].(string)] = row(r)["requests"].(float64)
		}
		sameJSON(t, "map data", mapData, want)
		sameJSON(t, "requests per state against the trace", got, expectedStates(t, trace, t0, t1))
		// What the canvas shows inside each state (a point on a horizontal line through the middle of its
		// largest polygon, between the first two edges it crosses).
		var colours map[string][]float64
		eval(t, ctx, `(() => { const c = window.dashboard.charts.requests_by_state, out = {};
			const geo = echarts.getMap("us-states").geoJSON, canvas = c.getDom().querySelector("canvas"), dpr = canvas.width / canvas.clientWidth;
			const ctx2 = canvas.getContext("2d");
			for (const f of geo.features) {
				const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
				let ring = polys[0][0];
				for (const p of polys) if (p[0].length > ring.length) ring = p[0];
				const ys = ring.map(p => p[1]), y = (Math.min(...ys) + Math.max(...ys)) / 2, xs = [];
				for (let i = 0; i + 1 < ring.length; i++) {
					const [x1, y1] = ring[i], [x2, y2] = ring[i + 1];
					if ((y1 <= y) !== (y2 <= y)) xs.push(x1 + (y - y1) * (x2 - x1) / (y2 - y1));
				}
				xs.sort((a, b) => a - b);
				let best = 0;
				for (let i = 2; i + 1 < xs.length; i += 2) if (xs[i + 1] - xs[i] > xs[best + 1] - xs[best]) best = i;
				const px = c.convertToPixel({seriesIndex: 0}, [(xs[best] + xs[best + 1]) / 2, y]);
				const width = c.convertToPixel({seriesIndex: 0}, [xs[best + 1], y])[0] - c.convertToPixel({seriesIndex: 0}, [xs[best], y])[0];
				if (width < 8) continue; // too small to sample (the District of Columbia)
				const d = ctx2.getImageData(Math.round(px[0] * dpr), Math.round(px[1] * dpr), 1, 1).data;
				out[f.properties.name] = [d[0], d[1], d[2]];
			}
			return out; })()`, &colours)
		plain := []float64{0xee, 0xf1, 0xf5} // the map's areaColor
		if len(colours) < 40 {
			t.Fatalf("%d states sampled on the map, want at least 40 of 51", len(colours))
		}
		dist := func(a, b []float64) float64 { return math.Abs(a[0]-b[0]) + math.Abs(a[1]-b[1]) + math.Abs(a[2]-b[2]) }
		for state, rgb := range colours {
			_, has := got[state]
			switch {
			case has && dist(rgb, plain) < 60:
				t.Errorf("state %s has requests but is drawn %v, the plain colour %v", state, rgb, plain)
			case !has && dist(rgb, plain) > 6:
				t.Errorf("state %s has no requests but is drawn %v, not the plain colour %v", state, rgb, plain)
			}
		}
		for state := range got {
			if _, ok := colours[state]; !ok {
				t.Errorf("state %s (with requests) was not sampled", state)
			}
		}
		// More requests, darker.
		darkest, lightest := "", ""
		for state := range got {
			if darkest == "" || got[state] > got[darkest] {
				darkest = state
			}
			if lightest == "" || got[state] < got[lightest] {
				lightest = state
			}
		}
		lum := func(c []float64) float64 { return c[0] + c[1] + c[2] }
		if got[darkest] > got[lightest] && lum(colours[darkest]) >= lum(colours[lightest]) {
			t.Errorf("%s (%v requests) is drawn %v, not darker than %s (%v) drawn %v", darkest, got[darkest], colours[darkest], lightest, got[lightest], colours[lightest])
		}
		if len(got) == 0 {
			t.Fatal("no state has requests")
		}

		// The city bubbles: at the cities' coordinates, sized by requests.
		var bubbles []any
		eval(t, ctx, "window.dashboard.charts.requests_by_city.getOption().series[0].data", &bubbles)
		want = nil
		for _, r := range api["requests_by_city"] {
			m := row(r)
			if m["latitude"] == nil {
				continue
			}
			want = append(want, map[string]any{"name": fmt.Sprintf("%s, %s, %s", m["city"], m["region"], m["country"]),
				"value": []any{m["longitude"], m["latitude"], m["requests"]}})
		}
		if len(want) < 5 {
			t.Fatalf("only %d placed cities", len(want))
		}
		sameJSON(t, "bubbles", bubbles, want)

		// The top regions: labels and values in the report's order.
		var bars struct {
			Labels []any `json:"labels"`
			Values []any `json:"values"`
		}
		eval(t, ctx, `(() => { const o = window.dashboard.charts.top_regions.getOption(); return {labels: o.yAxis[0].data, values: o.series[0].data}; })()`, &bars)
		var labels, values []any
		for _, r := range api["top_regions"] {
			labels = append(labels, fmt.Sprintf("%s (%s)", row(r)["region"], row(r)["country"]))
			values = append(values, row(r)["requests"])
		}
		sameJSON(t, "top regions labels", bars.Labels, labels)
		sameJSON(t, "top regions values", bars.Values, values)

		// The customer table: one cell per (customer, event) with its count, and the customer's name.
		var cells map[string]string
		eval(t, ctx, `(() => { const out = {};
			for (const tr of document.querySelectorAll("#table-actions_per_customer tbody tr")) {
				out[tr.dataset.user + "|name"] = tr.children[1].textContent;
				for (const td of tr.querySelectorAll("td[data-event]")) if (td.textContent !== "") out[tr.dataset.user + "|" + td.dataset.event] = td.textContent;
			}
			return out; })()`, &cells)
		wantCells := map[string]string{}
		for _, r := range api["actions_per_customer"] {
			m := row(r)
			wantCells[fmt.Sprintf("%s|%s", m["user_id"], m["event_name"])] = fmt.Sprint(m["events"])
			name, _ := m["name"].(string)
			wantCells[fmt.Sprintf("%s|name", m["user_id"])] = name
		}
		sameJSON(t, "customer table cells", cells, wantCells)
		if cells["3|name"] != "Customer 03" {
			t.Fatalf("customer 3's name is %q, want Customer 03 (from Redis at archive time)", cells["3|name"])
		}
		checkSessionCharts(t, ctx, api, expectedSessionsByHour(t, trace, t0, t1))

		// The map credits DB-IP, as its licence requires.
		var attribution []string
		eval(t, ctx, `[...document.querySelectorAll("#panel-requests_by_state .attribution a, #panel-requests_by_city .attribution a")].map(a => a.href + " " + a.textContent)`, &attribution)
		if !strings.Contains(strings.Join(attribution, "\n"), "https://db-ip.com/ IP Geolocation by DB-IP") || !strings.Contains(strings.Join(attribution, "\n"), "creativecommons.org/licenses/by/4.0") {
			t.Fatalf("attribution links %v", attribution)
		}
	}

	do(t, ctx, navigate(base+"/?from=2026-12-01T10&to=2026-12-01T13"))
	t.Run("whole trace", func(t *testing.T) {
		check(t, "2026-12-01T10", "2026-12-01T13")
		screenshot(t, ctx, "dashboard-charts-10-13")
	})
	var before float64
	eval(t, ctx, "window.dashboard.charts.event_ratio.getOption().series[0].data.reduce((a, d) => a + d.value, 0)", &before)

	// The picker: a custom range of one hour redraws every chart with that hour's rows.
	do(t, ctx,
		chromedp.SetValue(chromedp.CSS("#preset"), "custom"),
		chromedp.SetValue(chromedp.CSS("#from"), "2026-12-01T11:00"),
		chromedp.SetValue(chromedp.CSS("#to"), "2026-12-01T12:00"),
		chromedp.Click(chromedp.CSS("#apply")),
	)
	t.Run("one hour from the picker", func(t *testing.T) {
		check(t, "2026-12-01T11", "2026-12-01T12")
		var after float64
		eval(t, ctx, "window.dashboard.charts.event_ratio.getOption().series[0].data.reduce((a, d) => a + d.value, 0)", &after)
		if after <= 0 || after >= before {
			t.Fatalf("events in one hour %v, in three %v", after, before)
		}
		screenshot(t, ctx, "dashboard-charts-11-12")
	})
}
