package lakegen

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"time"

	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lease"
)

// Address is one of the trace's client addresses and where Locator says it is.
type Address struct {
	IP       string
	Location geo.Location
}

// Addresses are the trace's client addresses: US states and cities, two other countries, one address the
// provider does not know and the empty address (not looked up).
var Addresses = []Address{
	{"203.0.113.10", geo.Location{Country: "US", Region: "California", City: "Riverside", Status: geo.StatusFound}},
	{"203.0.113.11", geo.Location{Country: "US", Region: "California", City: "San Jose", Status: geo.StatusFound}},
	{"203.0.113.12", geo.Location{Country: "US", Region: "Texas", City: "Austin", Status: geo.StatusFound}},
	{"203.0.113.13", geo.Location{Country: "US", Region: "New York", City: "New York", Status: geo.StatusFound}},
	{"203.0.113.14", geo.Location{Country: "US", Region: "Washington", City: "Seattle", Status: geo.StatusFound}},
	{"198.51.100.20", geo.Location{Country: "NL", Region: "North Holland", City: "Amsterdam", Status: geo.StatusFound}},
	{"198.51.100.21", geo.Location{Country: "DE", Region: "Land Berlin", City: "Berlin", Status: geo.StatusFound}},
	{"198.51.100.22", geo.Location{Country: "DE", Region: "Bavaria", City: "Munich", Status: geo.StatusFound}},
	{"192.0.2.30", geo.Location{Status: geo.StatusNotFound}},
	{"", geo.Location{}},
}

// Locator answers every address of Addresses (others: not found). It implements archive.Locator.
type Locator struct{}

// LookupAll returns the fixed location of each address.
func (Locator) LookupAll(_ context.Context, ips []string) map[string]geo.Location {
	out := make(map[string]geo.Location, len(ips))
	for _, ip := range ips {
		out[ip] = Lookup(ip)
	}
	return out
}

// Lookup returns ip's location in Addresses (StatusNotFound for others).
func Lookup(ip string) geo.Location {
	for _, a := range Addresses {
		if a.IP == ip {
			return a.Location
		}
	}
	return geo.Location{Status: geo.StatusNotFound}
}

// EventNames are the POC's event names, in the trace's proportions 4:3:2:1.
var EventNames = []string{"Search", "Search", "Search", "Search", "ViewContent", "ViewContent", "ViewContent", "AddToCart", "AddToCart", "Purchase"}

// Trace configures a generated trace. Zero values take the defaults.
type Trace struct {
	// Records is the number of records. Default: 1000.
	Records int
	// Users are user ids 1..Users (the demo customers' ids) plus three guests without a customer row.
	// Default: 40.
	Users int
	// Shards the records are spread over by user. Default: 2.
	Shards int
	// Start is the first record's arrival; records arrive evenly over Span. Default: 2026-12-01T10:00Z.
	Start time.Time
	// Span is the time the trace's arrivals cover. Default: 3h.
	Span time.Duration
	// BadEvery makes every BadEvery-th record malformed; 0: none.
	BadEvery int
	// Seed seeds the generator. Default: 1.
	Seed uint64
}

// UserID returns the id of the trace's user i (0-based): "1".."Users", then guest-1..guest-3.
func (t Trace) UserID(i int) string {
	if i < t.Users {
		return fmt.Sprint(i + 1)
	}
	return fmt.Sprintf("guest-%d", i-t.Users+1)
}

func (t *Trace) defaults() {
	if t.Records == 0 {
		t.Records = 1000
	}
	if t.Users == 0 {
		t.Users = 40
	}
	if t.Shards == 0 {
		t.Shards = 2
	}
	if t.Start.IsZero() {
		t.Start = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	}
	if t.Span == 0 {
		t.Span = 3 * time.Hour
	}
	if t.Seed == 0 {
		t.Seed = 1
	}
}

// ShardID returns the shard of user id among n shards.
func ShardID(userID string, n int) string {
	h := fnv.New32a()
	h.Write([]byte(userID))
	return fmt.Sprintf("shardId-%012d", int(h.Sum32())%n)
}

// Generate returns the trace's records grouped by shard (in arrival order within each shard). Record i
// arrives at Start + i·Span/Records; its event time is a few milliseconds earlier.
func (t Trace) Generate() map[string][]consumer.Record {
	return t.GenerateRange(0, t.withDefaults().Records)
}

// GenerateRange returns records [from, from+n) of the trace, grouped by shard: each record depends only on
// the seed and its index, so a large trace can be generated and archived in chunks.
func (t Trace) GenerateRange(from, n int) map[string][]consumer.Record {
	t.defaults()
	out := map[string][]consumer.Record{}
	step := t.Span / time.Duration(t.Records)
	for i := from; i < from+n && i < t.Records; i++ {
		r := rand.New(rand.NewPCG(t.Seed, uint64(i)))
		user := t.UserID(r.IntN(t.Users + 3))
		shard := ShardID(user, t.Shards)
		at := t.Start.Add(time.Duration(i) * step)
		var data string
		if t.BadEvery > 0 && i%t.BadEvery == t.BadEvery-1 {
			data = fmt.Sprintf(`{"user_id":%q,"event_name":"Search","broken":%d`, user, i)
		} else {
			ev := at.Add(-time.Duration(1+r.IntN(50)) * time.Millisecond)
			data = fmt.Sprintf(`{"timestamp":%q,"user_id":%q,"pixel_id":"px%d","click_id":"c%08d","insertion_timestamp":%q,"event_name":%q,"user_ip":%q,"additional_data":{"time_on_data":%d,"percent_viewed":%.1f,"product_id":%d,"price":%.2f}}`,
				ev.Format("2006-01-02 15:04:05.000000"), user, r.IntN(1000), i, ev.Add(time.Microsecond).Format("2006-01-02 15:04:05.000000"),
				EventNames[r.IntN(len(EventNames))], Addresses[r.IntN(len(Addresses))].IP, r.IntN(120), r.Float64()*100, 100000+r.IntN(900000), r.Float64()*1000)
		}
		out[shard] = append(out[shard], consumer.Record{ShardID: shard, SequenceNumber: fmt.Sprintf("4960%052d", i+1),
			PartitionKey: user, Data: []byte(data), ArrivedAt: at})
	}
	return out
}

func (t Trace) withDefaults() Trace {
	t.defaults()
	return t
}

type checkpointer struct{}

func (checkpointer) Checkpoint(context.Context, string, int64) error { return nil }
func (checkpointer) CheckpointShardEnd(context.Context) error        { return nil }

// Archive runs each shard's records through one processor of an archive.Archiver made from api and cfg
// (cfg.Stream defaults to "clickstream", cfg.Geo to Locator, and Raw, Events and Errors to raw/, events/
// and errors/ in bucket), in batches of 500, then asks it to shut down (its final flush).
func Archive(ctx context.Context, api archive.S3API, bucket string, shards map[string][]consumer.Record, cfg archive.Config) error {
	if cfg.Stream == "" {
		cfg.Stream = "clickstream"
	}
	if cfg.Geo == nil {
		cfg.Geo = Locator{}
	}
	if cfg.Raw.Bucket == "" {
		cfg.Raw, cfg.Events, cfg.Errors = archive.Location{Bucket: bucket, Prefix: "raw/"},
			archive.Location{Bucket: bucket, Prefix: "events/"}, archive.Location{Bucket: bucket, Prefix: "errors/"}
	}
	a, err := archive.New(api, cfg)
	if err != nil {
		return err
	}
	for shard, recs := range shards {
		p := a.NewProcessor(shard)
		if err := p.Initialize(ctx, consumer.InitInput{ShardID: shard, Start: lease.TrimHorizon, ValidFor: func() time.Duration { return time.Hour }}); err != nil {
			return err
		}
		for i := 0; i < len(recs); i += 500 {
			if err := p.ProcessRecords(ctx, consumer.Batch{Records: recs[i:min(i+500, len(recs))], Checkpointer: checkpointer{}}); err != nil {
				return fmt.Errorf("archive %s: %w", shard, err)
			}
		}
		if err := p.ShutdownRequested(ctx, checkpointer{}); err != nil {
			return fmt.Errorf("archive %s: %w", shard, err)
		}
	}
	return nil
}
