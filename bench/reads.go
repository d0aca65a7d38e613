package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/clickfleet/clickfleet/internal/faults"
)

// ReadFigures are how a run's applications read the stream over its measured window (from LoadConfig's
// Warmup into the load until the load's end): their GetRecords and SubscribeToShard calls, and the calls
// Kinesis' limits refused.
type ReadFigures struct {
	Seconds float64 `json:"seconds"` // the window
	// ConsumeCalls and ArchiveCalls are each application's GetRecords calls per shard per second
	// (clickfleet_consumer_kinesis_calls_total{call="get_records"}, every outcome); Calls is their sum,
	// which Kinesis allows to be 5.
	ConsumeCalls float64 `json:"consume_get_records_per_shard_s"`
	ArchiveCalls float64 `json:"archive_get_records_per_shard_s"`
	Calls        float64 `json:"get_records_per_shard_s"`
	// Subscribes are both applications' SubscribeToShard calls per shard per minute (efo).
	Subscribes float64 `json:"subscribes_per_shard_min"`
	// WorkerThrottled are the GetRecords calls the workers saw refused (clickfleet_consumer_throttled_total).
	WorkerThrottled float64 `json:"worker_throttled"`
	// Limited is whether the stack's limits layer was measured (LoadConfig.LimitsURL); then Throttled are
	// the read calls it refused on the run's stream by operation (GetRecords, GetShardIterator) and
	// ThrottledPerMinute their sum per minute, and LayerCalls the GetRecords calls per shard per second it
	// saw from every reader.
	Limited            bool           `json:"limited"`
	Throttled          map[string]int `json:"throttled,omitempty"`
	ThrottledPerMinute float64        `json:"throttled_per_min"`
	LayerCalls         float64        `json:"layer_get_records_per_shard_s"`
}

// readCounts are the counters a read window is computed from, at one moment.
type readCounts struct {
	at                    time.Time
	consume, archive      float64 // GetRecords calls
	subscribes, throttled float64 // both applications
	layer                 map[string]faults.LimitStats
}

// The metric prefixes a read window sums (every outcome of the calls).
var readMetrics = []string{`clickfleet_consumer_kinesis_calls_total{call="get_records"`,
	`clickfleet_consumer_kinesis_calls_total{call="subscribe_to_shard"`, "clickfleet_consumer_throttled_total"}

// readCountsNow reads the counters of the consume fleet's first worker, the archive fleet's (nil: none)
// and the limits layer (limitsURL "": none).
func readCountsNow(ctx context.Context, consume, archive *Fleet, limitsURL, stream string) (readCounts, error) {
	c := readCounts{at: time.Now()}
	for _, app := range []struct {
		fleet *Fleet
		calls *float64
	}{{consume, &c.consume}, {archive, &c.archive}} {
		if app.fleet == nil {
			continue
		}
		for _, id := range app.fleet.IDs() {
			v, err := app.fleet.Sums(ctx, id, readMetrics...)
			if err != nil {
				return c, fmt.Errorf("read counts: %w", err)
			}
			*app.calls += v[0]
			c.subscribes += v[1]
			c.throttled += v[2]
		}
	}
	if limitsURL == "" {
		return c, nil
	}
	var err error
	c.layer, err = limitsStats(ctx, limitsURL, stream)
	return c, err
}

// figures are the window's rates between from and c, over shards.
func (c readCounts) figures(from readCounts, shards int32) ReadFigures {
	secs := c.at.Sub(from.at).Seconds()
	perShard := func(d float64) float64 { return d / secs / float64(shards) }
	f := ReadFigures{Seconds: secs, ConsumeCalls: perShard(c.consume - from.consume), ArchiveCalls: perShard(c.archive - from.archive),
		Subscribes: 60 * perShard(c.subscribes-from.subscribes), WorkerThrottled: c.throttled - from.throttled}
	f.Calls = f.ConsumeCalls + f.ArchiveCalls
	if c.layer == nil {
		return f
	}
	f.Limited, f.Throttled = true, map[string]int{}
	for _, op := range []string{"GetRecords", "GetShardIterator"} {
		n := c.layer[op].Throttled - from.layer[op].Throttled
		f.Throttled[op] = n
		f.ThrottledPerMinute += 60 * float64(n) / secs
	}
	f.LayerCalls = perShard(float64(c.layer["GetRecords"].Calls - from.layer["GetRecords"].Calls))
	return f
}

// limitsStats asks the stack's limits layer what it counted on stream, summed over the shards by
// operation.
func limitsStats(ctx context.Context, limitsURL, stream string) (map[string]faults.LimitStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, limitsURL+"/-/stats?"+url.Values{"stream": {stream}}.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("limits layer %s: %w", limitsURL, err)
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("limits layer %s: %w", limitsURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("limits layer %s: GET /-/stats answered %s: is it the stack's limits layer (deploy/local/stack up --aws-limits)?", limitsURL, resp.Status)
	}
	var stats []faults.LimitStats
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		return nil, fmt.Errorf("limits layer %s: /-/stats: %w", limitsURL, err)
	}
	out := map[string]faults.LimitStats{}
	for _, s := range stats {
		sum := out[s.Operation]
		sum.Operation, sum.Stream = s.Operation, s.Stream
		sum.Calls, sum.Throttled, sum.Bytes = sum.Calls+s.Calls, sum.Throttled+s.Throttled, sum.Bytes+s.Bytes
		out[s.Operation] = sum
	}
	return out, nil
}

// readWindow takes the window's first counts once Warmup has passed and its last at the load's end.
type readWindow struct {
	from, to readCounts
	started  bool
}

// observe takes the first counts when the warm-up is over.
func (w *readWindow) observe(ctx context.Context, r *loadRun) error {
	if w.started || time.Since(r.start) < r.cfg.Warmup {
		return nil
	}
	c, err := readCountsNow(ctx, r.fleet, r.archive, r.cfg.LimitsURL, r.id)
	if err != nil {
		return err
	}
	w.from, w.started = c, true
	return nil
}

// end takes the last counts and returns the window's figures (nil when it never started).
func (w *readWindow) end(ctx context.Context, r *loadRun) (*ReadFigures, error) {
	if !w.started {
		return nil, nil
	}
	c, err := readCountsNow(ctx, r.fleet, r.archive, r.cfg.LimitsURL, r.id)
	if err != nil {
		return nil, err
	}
	f := c.figures(w.from, r.cfg.Shards)
	return &f, nil
}

// throttledOps are the operations of f.Throttled in order, for reports.
func (f ReadFigures) throttledOps() []string { return slices.Sorted(keysOf(f.Throttled)) }
