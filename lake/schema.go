package lake

import (
	"fmt"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
)

// Kind is a column's logical type.
type Kind uint8

// The column kinds and how each is stored in Parquet.
const (
	// String is UTF-8 text (BYTE_ARRAY, STRING).
	String Kind = iota
	// Int64 is a signed 64-bit integer (INT64).
	Int64
	// Double is a 64-bit float (DOUBLE).
	Double
	// TimestampMillis is an instant in milliseconds since the Unix epoch, UTC (INT64, TIMESTAMP(MILLIS,
	// adjusted to UTC)).
	TimestampMillis
	// Struct is a JSON object with the named Fields (raw JSON tables only; never in Parquet).
	Struct
)

// String returns the kind's name as SQL engines spell it (string, bigint, double, timestamp).
func (k Kind) String() string {
	switch k {
	case String:
		return "string"
	case Int64:
		return "bigint"
	case Double:
		return "double"
	case TimestampMillis:
		return "timestamp"
	case Struct:
		return "struct"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Column is one column of a table: a lowercase flat name (Athena and Glue reject dots and upper case),
// its kind, whether every row has a value, and what it holds.
type Column struct {
	Name     string
	Kind     Kind
	Required bool
	Doc      string
	// Repeats marks a column with few distinct values per file (names, countries, user ids, percentages):
	// it is dictionary-encoded.
	Repeats bool
	// Fields are a Struct column's fields.
	Fields []Column
}

// Format is how a table's objects are stored.
type Format uint8

// The formats of the lake's tables.
const (
	// Parquet objects, ZSTD-compressed (events/).
	Parquet Format = iota
	// NDJSON objects, one JSON object per line, gzip-compressed unless the archive was told otherwise
	// (raw/, errors/).
	NDJSON
)

// Table is a lake table: its name, the prefix its objects live under, its stored columns and its Hive
// partition columns (in the object keys, not in the files). A Table is immutable once built and safe for
// concurrent use.
type Table struct {
	Name       string
	Prefix     string
	Format     Format
	Doc        string
	Columns    []Column
	Partitions []Column

	schema *parquet.Schema
}

// HourPartitions are the partition columns of every lake table: the UTC hour of an object's first record's
// arrival, as two-digit (four for the year) strings.
var HourPartitions = []Column{
	{Name: "year", Kind: String, Required: true, Doc: "UTC year of the object's first record's arrival, YYYY"},
	{Name: "month", Kind: String, Required: true, Doc: "UTC month, MM"},
	{Name: "day", Kind: String, Required: true, Doc: "UTC day of month, DD"},
	{Name: "hour", Kind: String, Required: true, Doc: "UTC hour, HH"},
}

// Indexes of Events' columns, in Events.Columns order.
const (
	ColEventTime = iota
	ColUserID
	ColClickID
	ColEventName
	ColEventType
	ColDeviceType
	ColPixelID
	ColUserIP
	ColInsertionTime
	ColTimeOnData
	ColPercentViewed
	ColProductID
	ColPrice
	ColName
	ColCountry
	ColRegion
	ColCity
	ColLatitude
	ColLongitude
	ColGeoStatus
	ColShardID
	ColSequenceNumber
	ColSubSequence
	ColArrivalTime
	numEventColumns
)

// Events is the enriched, flattened clickstream event table (Parquet with ZSTD under events/): both seed
// shapes in one set of columns, the POC's additional_data split into its fields, the enrichment, and the
// record's stream position.
var Events = mustTable("events", "events/", []Column{
	ColEventTime:      {Name: "event_time", Kind: TimestampMillis, Required: true, Doc: "event time, from timestamp (POC) or event_timestamp (lab)"},
	ColUserID:         {Name: "user_id", Kind: String, Required: true, Doc: "user id, the partition key", Repeats: true},
	ColClickID:        {Name: "click_id", Kind: String, Required: true, Doc: "click id; derived from shard, sequence and sub-sequence when the event has none"},
	ColEventName:      {Name: "event_name", Kind: String, Required: true, Doc: "event name (Search, AddToCart, ViewContent, Purchase; checkout, search, …)", Repeats: true},
	ColEventType:      {Name: "event_type", Kind: String, Doc: "the lab's event_type", Repeats: true},
	ColDeviceType:     {Name: "device_type", Kind: String, Required: true, Doc: "device type, unknown when missing", Repeats: true},
	ColPixelID:        {Name: "pixel_id", Kind: String, Doc: "the POC's pixel_id"},
	ColUserIP:         {Name: "user_ip", Kind: String, Doc: "the POC's user_ip", Repeats: true},
	ColInsertionTime:  {Name: "insertion_time", Kind: TimestampMillis, Doc: "the POC's insertion_timestamp"},
	ColTimeOnData:     {Name: "time_on_data", Kind: Double, Doc: "additional_data.time_on_data", Repeats: true},
	ColPercentViewed:  {Name: "percent_viewed", Kind: Double, Doc: "additional_data.percent_viewed", Repeats: true},
	ColProductID:      {Name: "product_id", Kind: Int64, Doc: "additional_data.product_id"},
	ColPrice:          {Name: "price", Kind: Double, Doc: "additional_data.price"},
	ColName:           {Name: "name", Kind: String, Doc: "the user's full name (from the customers table, through Redis)", Repeats: true},
	ColCountry:        {Name: "country", Kind: String, Doc: "ISO 3166-1 alpha-2 country of user_ip", Repeats: true},
	ColRegion:         {Name: "region", Kind: String, Doc: "region (first-level subdivision) of user_ip", Repeats: true},
	ColCity:           {Name: "city", Kind: String, Doc: "city of user_ip", Repeats: true},
	ColLatitude:       {Name: "latitude", Kind: Double, Doc: "latitude of user_ip, when the geo provider gives one"},
	ColLongitude:      {Name: "longitude", Kind: Double, Doc: "longitude of user_ip, when the geo provider gives one"},
	ColGeoStatus:      {Name: "geo_status", Kind: String, Doc: "how user_ip was located: found, not_found, unknown (private or malformed) or unavailable; null when not looked up", Repeats: true},
	ColShardID:        {Name: "shard_id", Kind: String, Required: true, Doc: "Kinesis shard the record was read from", Repeats: true},
	ColSequenceNumber: {Name: "sequence_number", Kind: String, Required: true, Doc: "Kinesis sequence number"},
	ColSubSequence:    {Name: "sub_sequence", Kind: Int64, Required: true, Doc: "index within a KPL aggregate; 0 for a plain record"},
	ColArrivalTime:    {Name: "arrival_time", Kind: TimestampMillis, Required: true, Doc: "Kinesis ApproximateArrivalTimestamp"},
}, HourPartitions)

// Raw is the raw event table (raw/): each record's bytes as they arrived, one JSON object per line,
// gzip-compressed by default. Its columns are the fields of both seed shapes (an engine's JSON reader
// leaves a shape's missing fields null); event_timestamp is text, as the lab sends a number or a string.
var Raw = &Table{Name: "raw_events", Prefix: "raw/", Format: NDJSON, Partitions: HourPartitions,
	Doc: "clickstream records as they arrived on the stream, one JSON object per line",
	Columns: []Column{
		{Name: "timestamp", Kind: String, Doc: "POC: event time, 2006-01-02 15:04:05.999999 UTC"},
		{Name: "user_id", Kind: String, Doc: "user id, the partition key"},
		{Name: "pixel_id", Kind: String, Doc: "POC: pixel id"},
		{Name: "click_id", Kind: String, Doc: "click id (absent on lab events)"},
		{Name: "insertion_timestamp", Kind: String, Doc: "POC: insertion time, as timestamp"},
		{Name: "event_name", Kind: String, Doc: "event name"},
		{Name: "user_ip", Kind: String, Doc: "POC: client address"},
		{Name: "additional_data", Kind: Struct, Doc: "POC: product details", Fields: []Column{
			{Name: "time_on_data", Kind: Double}, {Name: "percent_viewed", Kind: Double},
			{Name: "product_id", Kind: Int64}, {Name: "price", Kind: Double},
		}},
		{Name: "event_timestamp", Kind: String, Doc: "lab: event time, Unix milliseconds"},
		{Name: "event_type", Kind: String, Doc: "lab: event type"},
		{Name: "device_type", Kind: String, Doc: "lab: device type"},
	}}

// Errors is the table of records that failed decoding or validation (errors/): one JSON object per line,
// the error stream's record plus the position's sub-sequence and the arrival time.
var Errors = &Table{Name: "errors", Prefix: "errors/", Format: NDJSON, Partitions: HourPartitions,
	Doc: "records that failed decoding or validation, with the reason",
	Columns: []Column{
		{Name: "reason", Kind: String, Required: true, Doc: "why the record was rejected"},
		{Name: "stream", Kind: String, Required: true, Doc: "stream the record was read from"},
		{Name: "shard_id", Kind: String, Required: true, Doc: "shard the record was read from"},
		{Name: "sequence_number", Kind: String, Required: true, Doc: "Kinesis sequence number"},
		{Name: "sub_sequence", Kind: Int64, Required: true, Doc: "index within a KPL aggregate"},
		{Name: "arrival_time", Kind: String, Required: true, Doc: "ApproximateArrivalTimestamp, RFC 3339 UTC"},
		{Name: "data", Kind: String, Required: true, Doc: "the record's bytes (their first 640 KiB), base64"},
	}}

// Tables are the lake's tables, in the order the catalog emits them.
var Tables = []*Table{Events, Raw, Errors}

func mustTable(name, prefix string, cols, parts []Column) *Table {
	t := &Table{Name: name, Prefix: prefix, Format: Parquet, Columns: cols, Partitions: parts,
		Doc: "enriched, flattened clickstream events"}
	if len(cols) != numEventColumns && name == "events" {
		panic("lake: events columns and their indexes disagree")
	}
	g := parquet.Group{}
	for _, c := range cols {
		var n parquet.Node
		switch c.Kind {
		case String:
			n = parquet.String()
		case Int64:
			n = parquet.Int(64)
		case Double:
			n = parquet.Leaf(parquet.DoubleType)
		case TimestampMillis:
			n = parquet.Timestamp(parquet.Millisecond)
		}
		switch {
		case c.Kind == String && c.Repeats, c.Kind == Int64 && c.Repeats:
			n = parquet.Encoded(n, &parquet.RLEDictionary)
		case c.Kind == String && c.Name == "sequence_number":
			n = parquet.Encoded(n, &parquet.DeltaByteArray) // long shared prefixes
		case c.Kind == String:
			n = parquet.Encoded(n, &parquet.DeltaLengthByteArray) // unique ids: no per-value length prefix
		case c.Kind == Int64 || c.Kind == TimestampMillis:
			n = parquet.Encoded(n, &parquet.DeltaBinaryPacked)
		case c.Kind == Double && c.Repeats:
			n = parquet.Encoded(n, &parquet.RLEDictionary)
		}
		n = parquet.Compressed(n, Codec)
		if !c.Required {
			n = parquet.Optional(n)
		}
		g[c.Name] = n
	}
	t.schema = parquet.NewSchema(name, g)
	return t
}

// ParquetSchema returns the table's Parquet schema: every column compressed with Codec, optional unless
// Required. parquet-go stores a group's columns in name order; readers match columns by name.
func (t *Table) ParquetSchema() *parquet.Schema { return t.schema }

// Codec is the compression of every column the lake writes: ZSTD at zstd's fastest level with the literals
// always entropy-coded (a quarter smaller than Snappy on the archive's events, about as fast to write;
// Athena, Trino, DuckDB and parquet-go read it). Safe for concurrent use.
var Codec compress.Codec = newZstdCodec()
