package lake

import (
	"io"

	"github.com/parquet-go/parquet-go"
)

// EventRow is one row of Events as a Go value, for parquet-go's typed writer (NewEventsWriter), which
// copies each column of a slice of rows straight into its column buffer. Its fields are Events.Columns in
// the name order parquet-go stores a group's columns; an optional column is null where its string is
// empty or its pointer nil. TestEventRowIsTheEventsSchema keeps it equal to the column list: were they to
// differ, the writer would fall back to converting each row through reflection (slower, same file).
type EventRow struct {
	ArrivalTime    int64    `parquet:"arrival_time,timestamp(millisecond)"`
	City           string   `parquet:"city,optional"`
	ClickID        string   `parquet:"click_id"`
	Country        string   `parquet:"country,optional"`
	DeviceType     string   `parquet:"device_type"`
	EventName      string   `parquet:"event_name"`
	EventTime      int64    `parquet:"event_time,timestamp(millisecond)"`
	EventType      string   `parquet:"event_type,optional"`
	GeoStatus      string   `parquet:"geo_status,optional"`
	InsertionTime  *int64   `parquet:"insertion_time,optional,timestamp(millisecond)"`
	Latitude       *float64 `parquet:"latitude,optional"`
	Longitude      *float64 `parquet:"longitude,optional"`
	Name           string   `parquet:"name,optional"`
	PercentViewed  *float64 `parquet:"percent_viewed,optional"`
	PixelID        string   `parquet:"pixel_id,optional"`
	Price          *float64 `parquet:"price,optional"`
	ProductID      *int64   `parquet:"product_id,optional"`
	Region         string   `parquet:"region,optional"`
	SequenceNumber string   `parquet:"sequence_number"`
	ShardID        string   `parquet:"shard_id"`
	SubSequence    int64    `parquet:"sub_sequence"`
	TimeOnData     *float64 `parquet:"time_on_data,optional"`
	UserID         string   `parquet:"user_id"`
	UserIP         string   `parquet:"user_ip,optional"`
}

// NewEventsWriter returns a writer of Events objects to w: the table's schema (its encodings, Codec),
// no statistics in the data page headers (the column chunks' statistics and the page index are written),
// one row group per object unless opts say otherwise. Reuse it with Reset after Close.
func NewEventsWriter(w io.Writer, opts ...parquet.WriterOption) *parquet.GenericWriter[EventRow] {
	opts = append([]parquet.WriterOption{Events.ParquetSchema(), parquet.Compression(Codec), parquet.DataPageStatistics(false)}, opts...)
	return parquet.NewGenericWriter[EventRow](w, opts...)
}
