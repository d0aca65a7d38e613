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
// written through NewEventsWriter read back with parquet-go's generic reader, nulls and zero values included.
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
	price, zero := 9.5, 0.0
	rows := []EventRow{
		{EventTime: 1626091318000, UserID: "u1", ClickID: "c1", EventName: "Search", DeviceType: "unknown", Price: &price,
			ShardID: "shardId-000000000000", SequenceNumber: "1", ArrivalTime: 1700000000000},
		{TimeOnData: &zero, Name: "Zoë"}, // only what a row must have: the required columns' zero values
	}
	var buf bytes.Buffer
	w := NewEventsWriter(&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	read := make([]parquet.Row, 3)
	n, err := parquet.NewReader(bytes.NewReader(buf.Bytes())).ReadRows(read)
	if n != 2 || (err != nil && err != io.EOF) {
		t.Fatalf("read %d rows: %v", n, err)
	}
	first, second := map[string]parquet.Value{}, map[string]parquet.Value{}
	for i, path := range f.Schema().Columns() {
		first[path[0]], second[path[0]] = read[0][i], read[1][i]
	}
	if first["price"].Double() != 9.5 || !first["name"].IsNull() || !first["pixel_id"].IsNull() || first["user_id"].String() != "u1" ||
		first["arrival_time"].Int64() != 1700000000000 || first["sequence_number"].String() != "1" || !first["time_on_data"].IsNull() {
		t.Fatalf("row read back as %v", first)
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

// EventRow's Parquet schema is the events table's, field for field (names, types, optionality), so that
// NewEventsWriter takes parquet-go's typed path; and the writer writes the table's encodings and codec.
func TestEventRowIsTheEventsSchema(t *testing.T) {
	got, want := parquet.SchemaOf(EventRow{}), Events.ParquetSchema()
	if !parquet.EqualNodes(got, want) {
		t.Fatalf("EventRow's schema differs from the events table's:\nEventRow: %s\nevents:   %s", got, want)
	}
	var buf bytes.Buffer
	w := NewEventsWriter(&buf)
	if _, err := w.Write([]EventRow{{UserID: "u", UserIP: "203.0.113.1", SequenceNumber: "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, cc := range f.Metadata().RowGroups[0].Columns {
		name := cc.MetaData.PathInSchema[0]
		leaf, _ := want.Lookup(name)
		if got := cc.MetaData.Codec.String(); got != "ZSTD" {
			t.Errorf("column %s compressed with %s, want ZSTD", name, got)
		}
		enc := leaf.Node.Encoding()
		if enc == nil {
			continue
		}
		found := false
		for _, e := range cc.MetaData.Encoding {
			found = found || e == enc.Encoding() || (enc.Encoding().String() == "RLE_DICTIONARY" && e.String() == "RLE_DICTIONARY")
		}
		if !found {
			t.Errorf("column %s written with encodings %v, the schema says %s", name, cc.MetaData.Encoding, enc)
		}
	}
}
