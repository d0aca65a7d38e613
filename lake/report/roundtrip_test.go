//go:build cgo

package report_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/lakegen"
	"github.com/clickfleet/clickfleet/internal/testenv"
	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/lake/archive"
	"github.com/clickfleet/clickfleet/lake/report"
	"github.com/clickfleet/clickfleet/messages"
)

// rtPlaces are the round trip's client addresses and what its locator answers for each.
var rtPlaces = map[string]geo.Location{
	"203.0.113.7":  {Country: "US", Region: "Texas", City: "Austin", Latitude: 30.2672, Longitude: -97.7431, HasCoordinates: true, Status: geo.StatusFound},
	"198.51.100.9": {Country: "DE", Region: "Bavaria", City: "München", Status: geo.StatusFound}, // no coordinates
	"2001:db8::1":  {Country: "JP", Region: "Tokyo", City: "Tokyo", Latitude: 35.6895, Longitude: 139.69171, HasCoordinates: true, Status: geo.StatusFound},
	"192.0.2.99":   {Status: geo.StatusNotFound},
}

type rtLocator struct{}

func (rtLocator) LookupAll(_ context.Context, ips []string) map[string]geo.Location {
	out := map[string]geo.Location{}
	for _, ip := range ips {
		out[ip] = rtPlaces[ip]
	}
	return out
}

// rtEvent is one event of the round trip: the record the archive reads and every column the lake must
// give back for it (nil: null).
type rtEvent struct {
	rec  consumer.Record
	want map[string]any
}

// poc describes a POC event; the record's JSON and the expected row are both made from it.
type poc struct {
	at                  time.Time // timestamp, to the microsecond
	user, click, pixel  string    // pixel "" leaves pixel_id out
	eventName, ip       string    // ip "" leaves user_ip out
	insertion           string    // insertion_timestamp text; "" leaves it out
	insertionAt         time.Time // what insertion_time must read; zero: null
	timeOnData, percent float64
	product             int64
	price               float64
}

func (p poc) event(t *testing.T, shard, seq string, sub int64, arrived time.Time, names map[string]string) rtEvent {
	t.Helper()
	m := map[string]any{"timestamp": p.at.UTC().Format("2006-01-02 15:04:05.000000"), "user_id": p.user, "click_id": p.click,
		"event_name": p.eventName, "additional_data": map[string]any{"time_on_data": p.timeOnData, "percent_viewed": p.percent,
			"product_id": p.product, "price": p.price}}
	if p.pixel != "" {
		m["pixel_id"] = p.pixel
	}
	if p.ip != "" {
		m["user_ip"] = p.ip
	}
	if p.insertion != "" {
		m["insertion_timestamp"] = p.insertion
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := rtBase(shard, seq, sub, arrived)
	want["event_time"] = p.at.UTC().Truncate(time.Millisecond)
	want["user_id"], want["click_id"], want["event_name"], want["device_type"] = p.user, p.click, p.eventName, "unknown"
	want["pixel_id"], want["user_ip"], want["name"] = orNull(p.pixel), orNull(p.ip), orNull(names[p.user])
	if !p.insertionAt.IsZero() {
		want["insertion_time"] = p.insertionAt.UTC()
	}
	want["time_on_data"], want["percent_viewed"], want["product_id"], want["price"] = p.timeOnData, p.percent, p.product, p.price
	rtPlace(want, p.ip)
	return rtEvent{rec: consumer.Record{ShardID: shard, SequenceNumber: seq, SubSequence: sub, Aggregated: sub > 0, Data: data,
		PartitionKey: p.user, ArrivedAt: arrived}, want: want}
}

// rtBase is an expected row with every column null but the record's position.
func rtBase(shard, seq string, sub int64, arrived time.Time) map[string]any {
	want := map[string]any{}
	for _, c := range lake.Events.Columns {
		want[c.Name] = nil
	}
	want["shard_id"], want["sequence_number"], want["sub_sequence"] = shard, seq, sub
	want["arrival_time"] = arrived.UTC().Truncate(time.Millisecond)
	return want
}

// rtPlace sets the location columns of an event from ip.
func rtPlace(want map[string]any, ip string) {
	if ip == "" {
		return
	}
	loc := rtPlaces[ip]
	want["geo_status"] = map[geo.Status]string{geo.StatusFound: "found", geo.StatusNotFound: "not_found"}[loc.Status]
	if loc.Status == geo.StatusFound {
		want["country"], want["region"], want["city"] = loc.Country, loc.Region, loc.City
		if loc.HasCoordinates {
			want["latitude"], want["longitude"] = loc.Latitude, loc.Longitude
		}
	}
}

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// rtSeq is a sequence number as kinesalite (like Kinesis) writes it: a 56-digit decimal whose leading
// digits the records of a shard share.
func rtSeq(shardIx int, counter int64, arrived time.Time) string {
	h := fmt.Sprintf("2%09x%x%016x00%09x%08x2", int64(1764579600), shardIx%16, counter, arrived.Unix(), shardIx)
	v, _ := new(big.Int).SetString(h, 16) // always valid hexadecimal
	return v.String()
}

// rtEdgeCases are the events whose values an encoding could lose: click ids that are UUIDs in either
// case, hexadecimal without dashes, or neither; the longest ids the decoder accepts; repeated and absent
// pixel ids; zeros that are not nulls; a product id a double cannot hold; an RFC 3339 insertion time;
// KPL sub-records sharing one sequence number; lab events (their own columns, POC columns null).
func rtEdgeCases(t *testing.T, names map[string]string) []rtEvent {
	shard := "shardId-000000000007"
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clicks := []string{"01890a5d-ac96-774b-bcce-b302099a8057", "01890A5D-AC96-774B-BCCE-B302099A8057",
		"0123456789abcdef0123456789ABCDEF", "click-000001", "00000000-0000-0000-0000-000000000000", "Ω-ünïcödé-🙂-click",
		strings.Repeat("z", messages.MaxIDBytes), "{01890a5d-ac96-774b-bcce-b302099a8057}", " padded ", "01890a5dac96774bbcceb302099a8057"}
	var out []rtEvent
	for i, click := range clicks {
		p := poc{at: at.Add(time.Duration(i) * 1234567 * time.Microsecond), user: strconv.Itoa(1 + i%3), click: click, pixel: "pxSAME",
			eventName: "Search", ip: []string{"203.0.113.7", "198.51.100.9", "2001:db8::1", "192.0.2.99", ""}[i%5],
			insertion: at.Format("2006-01-02 15:04:05.000000"), insertionAt: at,
			timeOnData: float64(i), percent: 11.1 * float64(i), product: int64(100000 + i), price: 0.01 * float64(i)}
		switch i {
		case 0: // zeros are values, not nulls
			p.timeOnData, p.percent, p.product, p.price = 0, 0, 0, 0
		case 1:
			p.pixel, p.product = "", 9007199254740993 // 2^53 + 1
		case 2:
			p.pixel = strings.Repeat("p", messages.MaxIDBytes)
			p.insertion, p.insertionAt = "2026-12-01T09:59:58.987654Z", time.Date(2026, 12, 1, 9, 59, 58, 987000000, time.UTC)
		case 3:
			p.insertion, p.insertionAt = "2026-12-01T11:59:58.5+02:00", time.Date(2026, 12, 1, 9, 59, 58, 500000000, time.UTC)
		case 4:
			p.insertion, p.insertionAt = "", time.Time{}
		}
		seq := rtSeq(7, int64(500+5*i), at)
		out = append(out, p.event(t, shard, seq, 0, at.Add(time.Duration(i)*time.Millisecond), names))
	}
	// A KPL aggregate: three sub-records under one sequence number.
	agg := rtSeq(7, 700, at)
	for sub := range int64(3) {
		p := poc{at: at, user: "2", click: "agg-" + strconv.FormatInt(sub, 10), pixel: "pxSAME", eventName: "AddToCart", ip: "203.0.113.7",
			timeOnData: 1, percent: 99.9, product: 1, price: 1e6}
		out = append(out, p.event(t, shard, agg, sub, at.Add(time.Second), names))
	}
	// Lab events: event_timestamp as text and as a number, event_type and device_type; one has no click id
	// (it gets the contract's derived one).
	for i, lab := range []string{
		`{"user_id":"user1","event_timestamp":"1764583200123","event_name":"checkout","event_type":"click","device_type":"mobile","click_id":"lab-1"}`,
		`{"user_id":"user2","event_timestamp":1764583201456,"event_name":"search","event_type":"view","device_type":"desktop"}`,
	} {
		seq := rtSeq(7, int64(900+5*i), at)
		arrived := at.Add(2 * time.Second)
		want := rtBase(shard, seq, 0, arrived)
		want["user_id"], want["event_name"], want["event_type"], want["device_type"] = []string{"user1", "user2"}[i],
			[]string{"checkout", "search"}[i], []string{"click", "view"}[i], []string{"mobile", "desktop"}[i]
		want["event_time"] = time.UnixMilli([]int64{1764583200123, 1764583201456}[i]).UTC()
		want["click_id"] = []string{"lab-1", messages.DerivedClickID(shard, seq, 0)}[i]
		want["name"] = orNull(names[want["user_id"].(string)])
		out = append(out, rtEvent{rec: consumer.Record{ShardID: shard, SequenceNumber: seq, Data: []byte(lab), ArrivedAt: arrived}, want: want})
	}
	return out
}

// rtGenerated are n POC events on two shards over two hours, with random ids: UUIDv7 text, 32 hex digits
// or short text for click_id; random, repeated or absent pixel ids; kinesalite's sequence numbers.
func rtGenerated(t *testing.T, n int, names map[string]string) []rtEvent {
	rng := rand.New(rand.NewPCG(31, 3))
	start := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	ips := []string{"203.0.113.7", "198.51.100.9", "2001:db8::1", "192.0.2.99", ""}
	var out []rtEvent
	for i := range n {
		b := make([]byte, 16)
		for j := range b {
			b[j] = byte(rng.UintN(256))
		}
		var click string
		switch i % 3 {
		case 0:
			b[6], b[8] = 0x70|b[6]&0x0f, 0x80|b[8]&0x3f
			h := hex.EncodeToString(b)
			click = h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
		case 1:
			click = hex.EncodeToString(b)
		default:
			click = "c" + strconv.Itoa(i)
		}
		pixel := ""
		switch i % 5 {
		case 1:
			pixel = "px" + strconv.Itoa(rng.IntN(20))
		case 2, 3, 4:
			const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
			p := make([]byte, 10)
			for j := range p {
				p[j] = alphabet[rng.IntN(len(alphabet))]
			}
			pixel = string(p)
		}
		arrived := start.Add(time.Duration(i) * 2400 * time.Millisecond)
		at := arrived.Add(-time.Duration(rng.IntN(5_000_000)) * time.Microsecond)
		p := poc{at: at, user: strconv.Itoa(1 + rng.IntN(50)), click: click, pixel: pixel, eventName: lakegen.EventNames[rng.IntN(10)],
			ip: ips[rng.IntN(len(ips))], insertion: at.Add(150 * time.Microsecond).Format("2006-01-02 15:04:05.000000"),
			insertionAt: at.Add(150 * time.Microsecond).Truncate(time.Millisecond),
			timeOnData:  float64(1 + rng.IntN(120)), percent: float64(rng.IntN(1001)) / 10, product: int64(100000 + rng.IntN(900000)),
			price: float64(100+rng.IntN(99900)) / 100}
		shardIx := i % 2
		out = append(out, p.event(t, fmt.Sprintf("shardId-%012d", shardIx), rtSeq(shardIx, int64(1000+5*i), arrived), 0, arrived, names))
	}
	return out
}

// Every column of every event the archive writes reads back equal through DuckDB, over the report
// runner's view of the lake (synced from S3): the values of rtEdgeCases and of 3,000 generated events in
// many objects, in the order of shard_id, sequence_number and sub_sequence. An encoding that loses,
// reorders or alters a value (a click id kept as a UUID, a sequence number as a number) fails it.
func TestEventsReadBackEqualThroughDuckDB(t *testing.T) {
	ctx := context.Background()
	c, rdb := testenv.S3(t), testenv.Redis(t)
	bucket, prefix := testenv.Bucket(t, c), testenv.Name(t, "cf")+":"
	names := map[string]string{"user1": "Ada Lovelace"}
	for i := 1; i <= 25; i++ {
		names[strconv.Itoa(i)] = "Customer Nº " + strconv.Itoa(i)
	}
	for id, name := range names {
		if err := rdb.HSet(ctx, session.UserKey(prefix, id), session.FieldName, name).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Del(context.Background(), session.UserKey(prefix, id)) })
	}
	events := append(rtEdgeCases(t, names), rtGenerated(t, 3000, names)...)
	shards := map[string][]consumer.Record{}
	for _, e := range events {
		shards[e.rec.ShardID] = append(shards[e.rec.ShardID], e.rec)
	}
	loc := func(p string) archive.Location { return archive.Location{Bucket: bucket, Prefix: "lake/" + p} }
	if err := lakegen.Archive(ctx, c, bucket, shards, archive.Config{Raw: loc("raw/"), Events: loc("events/"), Errors: loc("errors/"),
		BufferBytes: 64 << 10, Geo: rtLocator{}, Names: rdb, Prefix: prefix}); err != nil {
		t.Fatal(err)
	}
	r, err := report.New(c, report.Config{Bucket: bucket, Prefix: "lake/", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cols := make([]string, len(lake.Events.Columns))
	for i, col := range lake.Events.Columns {
		cols[i] = `"` + col.Name + `"`
	}
	got, err := r.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM events ORDER BY shard_id, sequence_number, sub_sequence")
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(events, func(i, j int) bool {
		a, b := events[i].rec, events[j].rec
		if a.ShardID != b.ShardID {
			return a.ShardID < b.ShardID
		}
		if a.SequenceNumber != b.SequenceNumber {
			return a.SequenceNumber < b.SequenceNumber
		}
		return a.SubSequence < b.SubSequence
	})
	if len(got.Rows) != len(events) {
		t.Fatalf("DuckDB read %d rows, the archive was given %d events", len(got.Rows), len(events))
	}
	bad := 0
	for i, row := range got.Rows {
		for j, col := range lake.Events.Columns {
			if w := events[i].want[col.Name]; !rtEqual(row[j], w) && bad < 20 {
				bad++
				t.Errorf("row %d (%s %s/%d) %s = %#v, want %#v", i, events[i].rec.ShardID, events[i].rec.SequenceNumber,
					events[i].rec.SubSequence, col.Name, row[j], w)
			}
		}
	}
}

func rtEqual(got, want any) bool {
	if w, ok := want.(time.Time); ok {
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	}
	return got == want
}
