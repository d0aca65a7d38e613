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

// The events table has the contract's columns (docs/contracts.md, "The lake"), flat and lowercase, and a row written through Row reads back
// with parquet-go's generic reader, nulls included.
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
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, Events.ParquetSchema())
	r := Events.NewRow()
	r.SetMillis(ColEventTime, 1626091318000)
	r.SetString(ColUserID, "u1")
	r.SetString(ColClickID, "c1")
	r.SetString(ColEventName, "Search")
	r.SetString(ColDeviceType, "unknown")
	r.SetDouble(ColPrice, 9.5)
	r.SetString(ColShardID, "shardId-000000000000")
	r.SetString(ColSequenceNumber, "1")
	r.SetTime(ColArrivalTime, time.UnixMilli(1700000000000))
	if _, err := w.WriteRows([]parquet.Row{r.Parquet()}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]parquet.Row, 2)
	n, err := parquet.NewReader(bytes.NewReader(buf.Bytes())).ReadRows(rows)
	if n != 1 || (err != nil && err != io.EOF) {
		t.Fatalf("read %d rows: %v", n, err)
	}
	vals := map[string]parquet.Value{}
	for i, path := range f.Schema().Columns() {
		vals[path[0]] = rows[0][i]
	}
	if vals["price"].Double() != 9.5 || !vals["name"].IsNull() || vals["user_id"].String() != "u1" || vals["arrival_time"].Int64() != 1700000000000 {
		t.Fatalf("row read back as %v", vals)
	}
	for _, name := range []string{"event_time", "insertion_time", "arrival_time"} {
		c, _ := f.Schema().Lookup(name)
		if got := c.Node.Type().LogicalType().String(); got != "TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)" {
			t.Errorf("%s is %s, want TIMESTAMP(isAdjustedToUTC=true,unit=MILLIS)", name, got)
		}
	}
}
