package lake

import (
	"bytes"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

func TestHourPrefixAndNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"UTC", time.Date(2021, 7, 12, 20, 24, 49, 0, time.UTC), "year=2021/month=07/day=12/hour=20/"},
		{"another zone is converted", time.Date(2021, 1, 2, 1, 0, 0, 0, time.FixedZone("X", 3*3600)), "year=2021/month=01/day=01/hour=22/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HourPrefix(tc.at); got != tc.want {
				t.Fatalf("HourPrefix = %q, want %q", got, tc.want)
			}
		})
	}
	if got := ObjectName("clickstream", "shardId-000000000001", "4960", 3); got != "clickstream-shardId-000000000001-4960-3" {
		t.Fatalf("ObjectName = %q", got)
	}
}

// The events table has the contract's columns (docs/contracts.md, "The lake"), flat and lowercase, and rows
// written through a Batch read back with parquet-go's generic reader, nulls and zero values included, also
// after the batch was reset and reused.
func TestEventsSchemaRoundTrip(t *testing.T) {
	want := []string{"event_time", "user_id", "click_id", "event_name", "event_type", "device_type", "pixel_id", "user_ip",
		"insertion_time", "time_on_data", "percent_viewed", "product_id", "price", "name", "country", "region", "city",
		"latitude", "longitude", "geo_status", "shard_id", "sequence_number", "sub_sequence", "arrival_time"}
	var got []string
	for _, c := range Events.Columns {
		got = append(got, c.Name)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("columns %v, want %v", got, want)
	}
	b := Events.NewBatch()
	b.AddRow() // a row of the wrong values, reset below
	b.SetString(ColUserID, "stale")
	b.Reset()
	b.AddRow()
	b.SetMillis(ColEventTime, 1626091318000)
	b.SetString(ColUserID, "u1")
	b.SetString(ColClickID, "c1")
	b.SetString(ColEventName, "Search")
	b.SetString(ColDeviceType, "unknown")
	b.SetDouble(ColPrice, 9.5)
	b.SetString(ColPixelID, "") // empty: null
	b.SetString(ColShardID, "shardId-000000000000")
	b.SetString(ColSequenceNumber, "1")
	b.SetMillis(ColArrivalTime, 1700000000000)
	b.AddRow() // only what a row must have: the required columns' zero values
	b.SetDouble(ColTimeOnData, 0)
	b.SetString(ColName, "Zoë")
	if b.Len() != 2 {
		t.Fatalf("Len = %d, want 2", b.Len())
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, Events.ParquetSchema())
	if err := b.WriteTo(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]parquet.Row, 3)
	n, err := parquet.NewReader(bytes.NewReader(buf.Bytes())).ReadRows(rows)
	if n != 2 || (err != nil && err != io.EOF) {
		t.Fatalf("read %d rows: %v", n, err)
	}
	vals, second := map[string]parquet.Value{}, map[string]parquet.Value{}
	for i, path := range f.Schema().Columns() {
		vals[path[0]], second[path[0]] = rows[0][i], rows[1][i]
	}
	if vals["price"].Double() != 9.5 || !vals["name"].IsNull() || !vals["pixel_id"].IsNull() || vals["user_id"].String() != "u1" ||
		vals["arrival_time"].Int64() != 1700000000000 || vals["sequence_number"].String() != "1" || !vals["time_on_data"].IsNull() {
		t.Fatalf("row read back as %v", vals)
	}
	if second["user_id"].IsNull() || second["user_id"].String() != "" || second["sub_sequence"].Int64() != 0 ||
		second["time_on_data"].IsNull() || second["time_on_data"].Double() != 0 || second["name"].String() != "Zoë" || !second["price"].IsNull() {
		t.Fatalf("second row read back as %v", second)
	}
	for _, name := range []string{"event_time", "insertion_time", "arrival_time"} {
		c, _ := f.Schema().Lookup(name)
		if got := c.Node.Type().LogicalType().String(); got != "TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)" {
			t.Errorf("%s is %s, want TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)", name, got)
		}
	}
}
