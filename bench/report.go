package bench

import (
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteTable prints a load result as a table.
func WriteTable(w io.Writer, r LoadResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s (%s)\t%d shards\t%d workers\t%d CPUs\t%.0f events/s target\n", r.Scenario, r.Processor, r.Shards, r.Workers, r.CPUs, r.Rate)
	fmt.Fprintf(tw, "produced\t%d records\t%.0f/s\t\t\n", r.Produced, r.ProducedRate)
	fmt.Fprintf(tw, "consumed during load\t\t%.0f/s\t\t\n", r.ConsumedRate)
	lat := func(name string, l Percentiles) {
		fmt.Fprintf(tw, "%s\tp50 %.0f ms\tp95 %.0f ms\tp99 %.0f ms\tmax %.0f ms (n=%d)\n", name, l.P50, l.P95, l.P99, l.Max, l.N)
	}
	if r.Processor == "count" {
		lat("put → counted (probes)", r.Latency)
	} else {
		lat("put → last access (probes)", r.Latency)
		lat("put → session row (probes)", r.SessionLatency)
	}
	if r.ArchiveLatency.N > 0 {
		lat("put → archived (probes)", r.ArchiveLatency)
	}
	if f := r.Reads; f != nil {
		fmt.Fprintf(tw, "GetRecords calls/s per shard\t%.2f\tconsume %.2f\tarchive %.2f\tover %.0f s after the warm-up\n", f.Calls, f.ConsumeCalls, f.ArchiveCalls, f.Seconds)
		if f.Subscribes > 0 {
			fmt.Fprintf(tw, "SubscribeToShard calls/min per shard\t%.1f\t\t\t\n", f.Subscribes)
		}
		fmt.Fprintf(tw, "throttled GetRecords (workers)\t%.0f\t\t\t\n", f.WorkerThrottled)
		if f.Limited {
			var by []string
			for _, op := range f.throttledOps() {
				by = append(by, fmt.Sprintf("%s %d", op, f.Throttled[op]))
			}
			fmt.Fprintf(tw, "throttled by the limits layer\t%.1f/min\t%s\tall readers %.2f GetRecords/s per shard\t\n", f.ThrottledPerMinute, strings.Join(by, ", "), f.LayerCalls)
		}
	}
	if r.RecoverySeconds > 0 {
		fmt.Fprintf(tw, "recovery\t%.1f s\t\t\t\n", r.RecoverySeconds)
	}
	fmt.Fprintf(tw, "longest stall\t%.1f s\t\t\t\n", r.StallSeconds)
	fmt.Fprintf(tw, "drained after load\t%.1f s\tcounts verified: %v\t\t\n", r.DrainSeconds, r.Verified)
	fmt.Fprintf(tw, "worker resources\tCPU %.0f%% avg, %.0f%% max\tmax RSS %.0f MiB\t\t\n", r.AvgCPUPercent, r.MaxCPUPercent, r.MaxRSSMiB)
	for _, m := range r.Marks {
		fmt.Fprintf(tw, "  at %.1f s\t%s\t\t\t\n", m.Seconds, m.What)
	}
	return tw.Flush()
}

// WriteHTML writes a self-contained page with the run's throughput, lag, leases and resources over time.
func WriteHTML(w io.Writer, r LoadResult) error {
	p := newPlot(r.Points)
	charts := append(p.flowCharts(), p.workerCharts()...)
	var table strings.Builder
	if err := WriteTable(&table, r); err != nil {
		return err
	}
	return pageTmpl.Execute(w, map[string]any{"R": r, "Charts": charts, "Table": table.String(), "W": plotW, "H": plotH,
		"Marks": p.marks(r.Marks), "TMax": p.tMax})
}

// The size of a chart, and the colours of its series.
const plotW, plotH = 760.0, 180.0

var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"}

// plotChart is one chart of the page: its title, the value at its top, and its lines.
type plotChart struct {
	Title  string
	Max    float64
	Series []plotSeries
}

// plotSeries is one line of a chart, as an SVG path.
type plotSeries struct {
	Name, Color, Path string
}

// plotMark is a scenario's action at X on the charts.
type plotMark struct {
	X    float64
	What string
}

// plot draws a load result's points on charts plotW wide, the time axis from 0 to tMax seconds.
type plot struct {
	points []Point
	tMax   float64
}

func newPlot(points []Point) plot {
	p := plot{points: points, tMax: 1}
	if n := len(points); n > 0 {
		p.tMax = math.Max(1, points[n-1].Seconds)
	}
	return p
}

// path is the SVG path of vals, one per point, on a chart whose top is max.
func (p plot) path(vals []float64, max float64) string {
	var b strings.Builder
	for i, v := range vals {
		x := plotW * p.points[i].Seconds / p.tMax
		y := plotH - plotH*v/math.Max(max, 1e-9)
		if i == 0 {
			fmt.Fprintf(&b, "M%.1f,%.1f", x, y)
		} else {
			fmt.Fprintf(&b, " L%.1f,%.1f", x, y)
		}
	}
	return b.String()
}

// rate is the rate of a cumulative count between each point and the one before (0 at the first).
func (p plot) rate(get func(Point) float64) []float64 {
	out := make([]float64, len(p.points))
	for i := 1; i < len(p.points); i++ {
		dt := p.points[i].Seconds - p.points[i-1].Seconds
		out[i] = math.Max(0, (get(p.points[i])-get(p.points[i-1]))/dt)
	}
	return out
}

// flowCharts are the produced and consumed records per second, and the lag.
func (p plot) flowCharts() []plotChart {
	prod, cons := p.rate(func(p Point) float64 { return p.Produced }), p.rate(func(p Point) float64 { return p.Consumed })
	lag := make([]float64, len(p.points))
	for i, pt := range p.points {
		lag[i] = math.Max(0, pt.Produced-pt.Consumed)
	}
	m := math.Max(slices.Max(append(prod, 1)), slices.Max(append(cons, 1)))
	lm := slices.Max(append(lag, 1))
	return []plotChart{
		{Title: "records/s: produced (red), consumed (blue)", Max: m, Series: []plotSeries{
			{"produced", plotColors[1], p.path(prod, m)}, {"consumed", plotColors[0], p.path(cons, m)}}},
		{Title: "lag: records produced, not yet consumed", Max: lm, Series: []plotSeries{{"lag", plotColors[3], p.path(lag, lm)}}},
	}
}

// workerCharts are the leases held, the CPU and the RSS of each worker.
func (p plot) workerCharts() []plotChart {
	var charts []plotChart
	for _, pw := range []struct {
		title string
		get   func(Point) map[string]float64
	}{
		{"leases held per worker", func(p Point) map[string]float64 { return p.Held }},
		{"CPU % per worker", func(p Point) map[string]float64 { return p.CPU }},
		{"RSS MiB per worker", func(p Point) map[string]float64 { return p.RSSMiB }},
	} {
		ids, vals, max := p.perWorker(pw.get)
		c := plotChart{Title: pw.title + " (" + strings.Join(ids, ", ") + ")", Max: max}
		for i, id := range ids {
			c.Series = append(c.Series, plotSeries{id, plotColors[i%len(plotColors)], p.path(vals[id], max)})
		}
		charts = append(charts, c)
	}
	return charts
}

// perWorker returns the workers that appear in get's values, in order, each one's value per point, and
// the highest value.
func (p plot) perWorker(get func(Point) map[string]float64) ([]string, map[string][]float64, float64) {
	names := map[string]bool{}
	for _, pt := range p.points {
		for k := range get(pt) {
			names[k] = true
		}
	}
	ids := slices.Sorted(maps.Keys(names))
	vals, max := map[string][]float64{}, 0.0
	for _, id := range ids {
		v := make([]float64, len(p.points))
		for i, pt := range p.points {
			v[i] = get(pt)[id]
			max = math.Max(max, v[i])
		}
		vals[id] = v
	}
	return ids, vals, max
}

// marks places the scenario's actions on the time axis.
func (p plot) marks(ms []Mark) []plotMark {
	var out []plotMark
	for _, m := range ms {
		out = append(out, plotMark{plotW * m.Seconds / p.tMax, m.What})
	}
	return out
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>clickfleet bench {{.R.Scenario}}</title>
<style>body{font-family:sans-serif;margin:24px;color:#222}pre{background:#f6f6f6;padding:12px;overflow-x:auto}
svg{background:#fff;border:1px solid #ccc;margin-bottom:18px}h2{font-size:15px;margin:6px 0}</style></head><body>
<h1>clickfleet bench: {{.R.Scenario}}</h1>
<p>{{.R.When.Format "2006-01-02 15:04 UTC"}}, {{.R.CPUs}} CPUs. Time axis: 0–{{printf "%.0f" .TMax}} s; dashed lines mark the scenario's actions.</p>
<pre>{{.Table}}</pre>
{{range .Charts}}<h2>{{.Title}} — max {{printf "%.0f" .Max}}</h2>
<svg width="{{$.W}}" height="{{$.H}}" viewBox="0 0 {{$.W}} {{$.H}}">
{{range $.Marks}}<line x1="{{.X}}" x2="{{.X}}" y1="0" y2="{{$.H}}" stroke="#999" stroke-dasharray="4 3"><title>{{.What}}</title></line>{{end}}
{{range .Series}}<path d="{{.Path}}" fill="none" stroke="{{.Color}}" stroke-width="1.5"><title>{{.Name}}</title></path>{{end}}
</svg>{{end}}
</body></html>
`))
