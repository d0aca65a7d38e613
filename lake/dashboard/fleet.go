package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/lease"
)

// LeaseTable is a KCL application's lease table the fleet panel shows.
type LeaseTable struct {
	// App names the application: "consume" or "archive".
	App string
	// Name is the DynamoDB table.
	Name string
}

// FleetConfig configures a Fleet. Zero values take the documented defaults.
type FleetConfig struct {
	// Tables are the lease tables to read. At least one, or Workers.
	Tables []LeaseTable
	// Workers are the base URLs of the workers' ops servers (http://host:port); <url>/metrics is
	// scraped. A URL dns+http://name:port stands for every address name resolves to (a DNS registry:
	// a compose service's replicas, an ECS service's Cloud Map name), looked up at every collection.
	// Default: none.
	Workers []string
	// Interval is how often the tables are read and the workers scraped. Default: 5s.
	Interval time.Duration
	// FailoverTime is the workers' failover time: a lease whose counter has not changed for this long (as
	// this process observes it) is shown as moving. Default: 10s.
	FailoverTime time.Duration
	// Timeout bounds one scrape or one table read. Default: Interval, at most 5s.
	Timeout time.Duration
	// HTTP is the client for scrapes. Default: a client with Timeout.
	HTTP *http.Client
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives structured logs. Default: zap.NewNop().
	Logger *zap.Logger
}

// Shard states in a snapshot.
const (
	StateHeld   = "held"   // an owner holds it and renews it
	StateMoving = "moving" // changing hands: unowned, in a handoff, owner down, or not renewed in time
	StateEnded  = "ended"  // closed and processed to its end (SHARD_END)
)

// Shard is one lease as the panel shows it.
type Shard struct {
	ID         string   `json:"shard_id"`
	Owner      string   `json:"owner"`
	State      string   `json:"state"`
	Reason     string   `json:"reason,omitempty"`
	Checkpoint string   `json:"checkpoint"`
	Counter    int64    `json:"counter"`
	LagSeconds *float64 `json:"lag_seconds"`       // from the owner's /metrics; null when unknown
	BehindMS   *float64 `json:"millis_behind"`     // MillisBehindLatest from the owner's /metrics
	Parents    []string `json:"parents,omitempty"` // parent shards (resharding)
}

// App is one lease table and its shards.
type App struct {
	App    string  `json:"app"`
	Table  string  `json:"table"`
	Error  string  `json:"error,omitempty"` // the table could not be read: its shards are unknown
	Shards []Shard `json:"shards"`
	// Leases counts the leases each owner holds in the table ("" for unowned).
	Leases map[string]int `json:"leases"`
}

// Worker is one scraped worker.
type Worker struct {
	URL        string `json:"url"`
	ID         string `json:"worker_id,omitempty"`
	LeaseTable string `json:"lease_table,omitempty"`
	App        string `json:"app,omitempty"`
	Up         bool   `json:"up"`
	Error      string `json:"error,omitempty"`
	// LeasesHeld is clickfleet_lease_held.
	LeasesHeld *float64 `json:"leases_held"`
	// RecordsPerSecond is the rate of clickfleet_consumer_records_total between the last two scrapes;
	// null after the first.
	RecordsPerSecond *float64 `json:"records_per_second"`
	// LagSeconds and BehindMS are the worker's maxima over its shards.
	LagSeconds *float64 `json:"lag_seconds"`
	BehindMS   *float64 `json:"millis_behind"`
	// LiveUsers is clickfleet_actors_users_live: users with an actor in memory (an actor outlives its
	// user's session until it is passivated).
	LiveUsers *float64 `json:"live_users"`
	// OpenSessions is clickfleet_actors_sessions_open: sessions open in the worker's shards as of their
	// users' last flush (a consume worker's; null for others).
	OpenSessions *float64 `json:"open_sessions"`
	// ArchiveObjects is clickfleet_archive_objects_total by kind (raw, events, errors).
	ArchiveObjects map[string]float64 `json:"archive_objects,omitempty"`
}

// Totals sums the workers that answered.
type Totals struct {
	RecordsPerSecond float64            `json:"records_per_second"`
	LiveUsers        float64            `json:"live_users"`
	OpenSessions     float64            `json:"open_sessions"`
	ArchiveObjects   map[string]float64 `json:"archive_objects"`
	WorkersUp        int                `json:"workers_up"`
	WorkersDown      int                `json:"workers_down"`
}

// Snapshot is what the fleet looked like at Time.
type Snapshot struct {
	Time    time.Time `json:"time"`
	Apps    []App     `json:"apps"`
	Workers []Worker  `json:"workers"`
	Totals  Totals    `json:"totals"`
}

// Fleet keeps the latest Snapshot, collected every Interval while Run runs. Create it with NewFleet.
// Safe for concurrent use.
type Fleet struct {
	cfg    FleetConfig
	tables []*lease.Table
	log    *zap.Logger

	mu      sync.Mutex
	last    *Snapshot
	seen    map[string]observed      // table/shard → when its counter last changed
	prev    map[string]recordsSample // worker URL → the last records_total seen
	collect sync.Mutex               // one collection at a time
}

type observed struct {
	counter int64
	since   time.Time
}

type recordsSample struct {
	at    time.Time
	total float64
}

// NewFleet checks cfg. It does no I/O.
func NewFleet(db lease.DynamoDBAPI, cfg FleetConfig) (*Fleet, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.FailoverTime == 0 {
		cfg.FailoverTime = 10 * time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = min(cfg.Interval, 5*time.Second)
	}
	switch {
	case cfg.Interval < 0:
		return nil, fmt.Errorf("Interval must be positive, got %s", cfg.Interval)
	case cfg.FailoverTime < 0:
		return nil, fmt.Errorf("FailoverTime must be positive, got %s", cfg.FailoverTime)
	case len(cfg.Tables) > 0 && db == nil:
		return nil, errors.New("a DynamoDB client is required to read the lease tables")
	}
	for _, u := range cfg.Workers {
		ok := false
		for _, p := range []string{"http://", "https://", "dns+http://", "dns+https://"} {
			ok = ok || strings.HasPrefix(u, p)
		}
		if !ok {
			return nil, fmt.Errorf("Workers: %q is not an http://, https://, dns+http:// or dns+https:// URL", u)
		}
		if strings.HasPrefix(u, "dns+") {
			pu, err := url.Parse(strings.TrimPrefix(u, "dns+"))
			if err != nil || pu.Hostname() == "" || pu.Port() == "" {
				return nil, fmt.Errorf("Workers: %q: a dns+ URL needs a host name and a port", u)
			}
		}
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger.Named("fleet"), seen: map[string]observed{}, prev: map[string]recordsSample{}}
	for _, t := range cfg.Tables {
		f.tables = append(f.tables, lease.NewTable(db, t.Name))
	}
	return f, nil
}

// Run collects a snapshot every Interval until ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	for {
		f.Collect(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Latest returns the last snapshot, collecting one first when there is none yet.
func (f *Fleet) Latest(ctx context.Context) *Snapshot {
	f.mu.Lock()
	s := f.last
	f.mu.Unlock()
	if s != nil {
		return s
	}
	return f.Collect(ctx)
}

// Collect reads the lease tables and scrapes the workers now, keeps the result as the latest snapshot
// and returns it. A table or worker that cannot be read is marked in the snapshot, never left out.
func (f *Fleet) Collect(ctx context.Context) *Snapshot {
	f.collect.Lock()
	defer f.collect.Unlock()
	now := f.cfg.Now()
	snap := &Snapshot{Time: now.UTC(), Totals: Totals{ArchiveObjects: map[string]float64{}}}

	var wg sync.WaitGroup
	targets, failed := f.targets(ctx)
	workers := make([]Worker, len(targets))
	scrapes := make([]map[string]*dto.MetricFamily, len(targets))
	for i, u := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workers[i], scrapes[i] = f.scrape(ctx, u)
		}()
	}
	apps := make([]App, len(f.tables))
	leases := make([][]lease.Lease, len(f.tables))
	for i, t := range f.tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			apps[i] = App{App: f.cfg.Tables[i].App, Table: t.Name(), Shards: []Shard{}, Leases: map[string]int{}}
			rctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
			defer cancel()
			ls, err := t.List(rctx)
			if err != nil {
				apps[i].Error = fmt.Sprintf("lease table %s: %v", t.Name(), err)
				return
			}
			leases[i] = ls
		}()
	}
	wg.Wait()

	// Per-worker figures, and which worker (by id) reports which shard's lag.
	byID := map[string]int{}
	f.mu.Lock()
	for i := range workers {
		w := &workers[i]
		for _, t := range f.cfg.Tables {
			if t.Name == w.LeaseTable {
				w.App = t.App
			}
		}
		if !w.Up {
			snap.Totals.WorkersDown++
			delete(f.prev, w.URL)
			continue
		}
		snap.Totals.WorkersUp++
		if w.ID != "" {
			byID[w.LeaseTable+"\x00"+w.ID] = i
		}
		if total, ok := sum(scrapes[i], "clickfleet_consumer_records_total"); ok {
			if p, ok := f.prev[w.URL]; ok && now.After(p.at) && total >= p.total {
				r := (total - p.total) / now.Sub(p.at).Seconds()
				w.RecordsPerSecond = &r
				snap.Totals.RecordsPerSecond += r
			}
			f.prev[w.URL] = recordsSample{at: now, total: total}
		}
		if w.LiveUsers != nil {
			snap.Totals.LiveUsers += *w.LiveUsers
		}
		if w.OpenSessions != nil {
			snap.Totals.OpenSessions += *w.OpenSessions
		}
		for k, v := range w.ArchiveObjects {
			snap.Totals.ArchiveObjects[k] += v
		}
	}

	for i := range apps {
		a := &apps[i]
		if a.Error != "" {
			continue
		}
		for _, l := range leases[i] {
			s := Shard{ID: l.Key, Owner: l.Owner, Counter: l.Counter, Checkpoint: l.Checkpoint.String(), State: StateHeld, Parents: l.ParentShardIDs}
			key := a.Table + "\x00" + l.Key
			o, ok := f.seen[key]
			if !ok || o.counter != l.Counter {
				o = observed{counter: l.Counter, since: now}
				f.seen[key] = o
			}
			wi, scraped := byID[a.Table+"\x00"+l.Owner]
			switch {
			case l.Checkpoint.IsShardEnd():
				s.State = StateEnded
			case l.Owner == "":
				s.State, s.Reason = StateMoving, "unowned: the next worker to scan takes it"
			case l.InHandoff():
				s.State, s.Reason = StateMoving, "handoff from "+l.CheckpointOwner
			case f.ownerDown(a.Table, l.Owner, workers):
				s.State, s.Reason = StateMoving, "owner "+l.Owner+" is down (its /metrics does not answer): the lease expires after the failover time"
			case now.Sub(o.since) >= f.cfg.FailoverTime:
				s.State, s.Reason = StateMoving, fmt.Sprintf("not renewed for %s: expired, another worker may take it", now.Sub(o.since).Round(time.Second))
			}
			if s.State != StateEnded {
				a.Leases[l.Owner]++
			}
			if scraped && s.State != StateEnded {
				s.LagSeconds = labelled(scrapes[wi], "clickfleet_consumer_shard_lag_seconds", "shard_id", l.Key)
				s.BehindMS = labelled(scrapes[wi], "clickfleet_consumer_shard_millis_behind_latest", "shard_id", l.Key)
			}
			a.Shards = append(a.Shards, s)
		}
		sort.Slice(a.Shards, func(x, y int) bool { return a.Shards[x].ID < a.Shards[y].ID })
	}
	snap.Apps, snap.Workers = apps, append(workers, failed...)
	snap.Totals.WorkersDown += len(failed)
	f.last = snap
	f.mu.Unlock()
	return snap
}

// targets returns the URLs to scrape: the configured ones, with each dns+ URL replaced by one URL per
// address its name resolves to (sorted); a name that does not resolve is returned as a down worker.
func (f *Fleet) targets(ctx context.Context) ([]string, []Worker) {
	var out []string
	var failed []Worker
	for _, u := range f.cfg.Workers {
		rest, ok := strings.CutPrefix(u, "dns+")
		if !ok {
			out = append(out, u)
			continue
		}
		pu, _ := url.Parse(rest)
		rctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		addrs, err := net.DefaultResolver.LookupHost(rctx, pu.Hostname())
		cancel()
		if err != nil {
			failed = append(failed, Worker{URL: u, Error: "resolve " + pu.Hostname() + ": " + err.Error()})
			continue
		}
		sort.Strings(addrs)
		for _, a := range addrs {
			v := *pu
			v.Host = net.JoinHostPort(a, pu.Port())
			out = append(out, strings.TrimRight(v.String(), "/"))
		}
	}
	return out, failed
}

// ownerDown reports whether owner is a worker of table that was scraped and did not answer. A worker
// that never answered has no known id: an owner is matched to it by its URL's position only when every
// other worker of the list is known, so a down worker's shards are found even after a restart of the
// dashboard.
func (f *Fleet) ownerDown(table, owner string, workers []Worker) bool {
	known := map[string]bool{}
	var down []int
	for i, w := range workers {
		if w.ID != "" && w.LeaseTable == table {
			if w.ID == owner {
				return !w.Up
			}
			known[w.ID] = true
		}
		if !w.Up && w.ID == "" {
			down = append(down, i)
		}
	}
	// The owner is none of the workers that answered, and some listed worker is down and unknown: the
	// owner is most likely that one (a worker not listed in Workers at all would also end here, which
	// is why the reason says what was seen).
	return len(down) > 0 && !known[owner]
}

// scrape fetches <url>/metrics. Worker ids are remembered across scrapes, so a worker that stops
// answering keeps its id in the snapshot.
func (f *Fleet) scrape(ctx context.Context, base string) (Worker, map[string]*dto.MetricFamily) {
	w := Worker{URL: base}
	f.mu.Lock()
	if old := f.last; old != nil {
		for _, ow := range old.Workers {
			if ow.URL == base {
				w.ID, w.LeaseTable = ow.ID, ow.LeaseTable
			}
		}
	}
	f.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
	if err != nil {
		w.Error = err.Error()
		return w, nil
	}
	resp, err := f.cfg.HTTP.Do(req)
	if err != nil {
		w.Error = err.Error()
		return w, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		w.Error = "GET /metrics: " + resp.Status
		return w, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		w.Error = "GET /metrics: " + err.Error()
		return w, nil
	}
	w.Up = true
	if mf := fams["clickfleet_consumer_worker_info"]; mf != nil && len(mf.Metric) > 0 {
		for _, lp := range mf.Metric[0].Label {
			switch lp.GetName() {
			case "worker_id":
				w.ID = lp.GetValue()
			case "lease_table":
				w.LeaseTable = lp.GetValue()
			}
		}
	}
	w.LeasesHeld = one(fams, "clickfleet_lease_held")
	w.LagSeconds = one(fams, "clickfleet_consumer_lag_seconds")
	w.BehindMS = one(fams, "clickfleet_consumer_millis_behind_latest")
	w.LiveUsers = one(fams, "clickfleet_actors_users_live")
	w.OpenSessions = one(fams, "clickfleet_actors_sessions_open")
	if mf := fams["clickfleet_archive_objects_total"]; mf != nil {
		w.ArchiveObjects = map[string]float64{}
		for _, m := range mf.Metric {
			kind := ""
			for _, lp := range m.Label {
				if lp.GetName() == "kind" {
					kind = lp.GetValue()
				}
			}
			w.ArchiveObjects[kind] += value(m)
		}
	}
	return w, fams
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// sum adds every series of a metric; ok is false when the metric is absent.
func sum(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
	var t float64
	for _, m := range mf.Metric {
		t += value(m)
	}
	return t, true
}

func one(fams map[string]*dto.MetricFamily, name string) *float64 {
	if v, ok := sum(fams, name); ok {
		return &v
	}
	return nil
}

// labelled returns the value of the series of name whose label is value; nil when there is none.
func labelled(fams map[string]*dto.MetricFamily, name, label, val string) *float64 {
	mf := fams[name]
	if mf == nil {
		return nil
	}
	for _, m := range mf.Metric {
		for _, lp := range m.Label {
			if lp.GetName() == label && lp.GetValue() == val {
				v := value(m)
				return &v
			}
		}
	}
	return nil
}
