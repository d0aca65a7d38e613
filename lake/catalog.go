package lake

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Hive classes Athena and Glue use for the lake's formats.
const (
	ParquetSerDe        = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
	ParquetInputFormat  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
	ParquetOutputFormat = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
	JSONSerDe           = "org.openx.data.jsonserde.JsonSerDe"
	TextInputFormat     = "org.apache.hadoop.mapred.TextInputFormat"
	TextOutputFormat    = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
)

// Default first and last years of the year partition's projection.
const (
	DefaultFirstYear = 2020
	DefaultLastYear  = 2040
)

// Catalog says where the lake is, for the catalog emitters. The zero value of each field but Location
// takes the documented default.
type Catalog struct {
	// Location is the lake's base URL, s3://bucket/prefix/ (ending in "/"); each table lives under it at
	// its Prefix. Required.
	Location string
	// Database is the Athena/Glue database the tables are created in; "" leaves the names unqualified.
	Database string
	// FirstYear and LastYear bound the year partition's projection. Default: 2020 and 2040.
	FirstYear, LastYear int
}

func (c Catalog) years() (int, int) {
	first, last := c.FirstYear, c.LastYear
	if first == 0 {
		first = DefaultFirstYear
	}
	if last == 0 {
		last = DefaultLastYear
	}
	return first, last
}

// TableLocation returns the S3 URL of t's objects under the catalog's location.
func (c Catalog) TableLocation(t *Table) string {
	loc := c.Location
	if !strings.HasSuffix(loc, "/") {
		loc += "/"
	}
	return loc + t.Prefix
}

// sqlType returns a column's type in Hive DDL (Athena's CREATE EXTERNAL TABLE, Glue's column types).
func sqlType(c Column) string {
	if c.Kind != Struct {
		return c.Kind.String()
	}
	parts := make([]string, len(c.Fields))
	for i, f := range c.Fields {
		parts[i] = f.Name + ":" + sqlType(f)
	}
	return "struct<" + strings.Join(parts, ",") + ">"
}

// Projection returns the table properties of partition projection over year/month/day/hour: integer
// projections (month, day and hour with two digits, the year with four), so Athena computes the
// partitions from the query's predicates instead of a crawler or MSCK REPAIR TABLE. Keys are sorted in
// the returned order.
func (c Catalog) Projection(t *Table) [][2]string {
	first, last := c.years()
	ranges := map[string]string{"year": fmt.Sprintf("%d,%d", first, last), "month": "1,12", "day": "1,31", "hour": "0,23"}
	props := [][2]string{{"projection.enabled", "true"}}
	for _, p := range t.Partitions {
		r, ok := ranges[p.Name]
		if !ok {
			continue
		}
		digits := "2"
		if p.Name == "year" {
			digits = "4"
		}
		props = append(props, [2]string{"projection." + p.Name + ".type", "integer"},
			[2]string{"projection." + p.Name + ".range", r}, [2]string{"projection." + p.Name + ".digits", digits})
	}
	return props
}

func (c Catalog) tableProperties(t *Table) [][2]string {
	props := [][2]string{{"EXTERNAL", "TRUE"}}
	switch t.Format {
	case Parquet:
		props = append(props, [2]string{"classification", "parquet"}, [2]string{"parquet.compression", Codec.String()})
	case NDJSON:
		props = append(props, [2]string{"classification", "json"})
	}
	return append(props, c.Projection(t)...)
}

func (c Catalog) qualified(t *Table) string {
	if c.Database == "" {
		return "`" + t.Name + "`"
	}
	return "`" + c.Database + "`.`" + t.Name + "`"
}

func quoteSQL(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// AthenaDDL returns the Athena CREATE EXTERNAL TABLE statement of t: its columns (Parquet: the archive's
// schema; NDJSON: the JSON fields, read with the OpenX JSON SerDe, malformed lines ignored), the hour
// partitions as strings, its location, and partition projection. It ends with ";" and a newline.
func (c Catalog) AthenaDDL(t *Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n", c.qualified(t))
	for i, col := range t.Columns {
		sep := ","
		if i == len(t.Columns)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  `%s` %s COMMENT %s%s\n", col.Name, sqlType(col), quoteSQL(col.Doc), sep)
	}
	b.WriteString(")\n")
	if t.Doc != "" {
		fmt.Fprintf(&b, "COMMENT %s\n", quoteSQL(t.Doc))
	}
	b.WriteString("PARTITIONED BY (")
	for i, p := range t.Partitions {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "`%s` %s", p.Name, sqlType(p))
	}
	b.WriteString(")\n")
	switch t.Format {
	case Parquet:
		fmt.Fprintf(&b, "ROW FORMAT SERDE %s\nSTORED AS INPUTFORMAT %s\nOUTPUTFORMAT %s\n",
			quoteSQL(ParquetSerDe), quoteSQL(ParquetInputFormat), quoteSQL(ParquetOutputFormat))
	case NDJSON:
		fmt.Fprintf(&b, "ROW FORMAT SERDE %s\nWITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')\nSTORED AS INPUTFORMAT %s\nOUTPUTFORMAT %s\n",
			quoteSQL(JSONSerDe), quoteSQL(TextInputFormat), quoteSQL(TextOutputFormat))
	}
	fmt.Fprintf(&b, "LOCATION %s\nTBLPROPERTIES (\n", quoteSQL(c.TableLocation(t)))
	var props [][2]string
	for _, p := range c.tableProperties(t) {
		if p[0] != "EXTERNAL" { // implied by CREATE EXTERNAL TABLE; a Glue parameter only
			props = append(props, p)
		}
	}
	for i, p := range props {
		sep := ","
		if i == len(props)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  %s = %s%s\n", quoteSQL(p[0]), quoteSQL(p[1]), sep)
	}
	b.WriteString(");\n")
	return b.String()
}

// GlueColumn is a column of a Glue TableInput.
type GlueColumn struct {
	Name    string `json:"Name"`
	Type    string `json:"Type"`
	Comment string `json:"Comment,omitempty"`
}

// GlueSerDeInfo is a Glue table's SerDe.
type GlueSerDeInfo struct {
	SerializationLibrary string            `json:"SerializationLibrary"`
	Parameters           map[string]string `json:"Parameters,omitempty"`
}

// GlueStorageDescriptor is where and how a Glue table's objects are stored.
type GlueStorageDescriptor struct {
	Columns      []GlueColumn  `json:"Columns"`
	Location     string        `json:"Location"`
	InputFormat  string        `json:"InputFormat"`
	OutputFormat string        `json:"OutputFormat"`
	Compressed   bool          `json:"Compressed"`
	SerdeInfo    GlueSerDeInfo `json:"SerdeInfo"`
}

// GlueTableInput is the Glue API's TableInput (CreateTable, and CloudFormation's AWS::Glue::Table
// TableInput, which spells its fields the same way).
type GlueTableInput struct {
	Name              string                `json:"Name"`
	Description       string                `json:"Description,omitempty"`
	TableType         string                `json:"TableType"`
	Parameters        map[string]string     `json:"Parameters"`
	PartitionKeys     []GlueColumn          `json:"PartitionKeys"`
	StorageDescriptor GlueStorageDescriptor `json:"StorageDescriptor"`
}

func glueColumns(cols []Column) []GlueColumn {
	out := make([]GlueColumn, len(cols))
	for i, c := range cols {
		out[i] = GlueColumn{Name: c.Name, Type: sqlType(c), Comment: c.Doc}
	}
	return out
}

// GlueTable returns t's Glue TableInput: the same columns, formats, location and projection properties as
// AthenaDDL.
func (c Catalog) GlueTable(t *Table) GlueTableInput {
	params := map[string]string{}
	for _, p := range c.tableProperties(t) {
		params[p[0]] = p[1]
	}
	sd := GlueStorageDescriptor{Columns: glueColumns(t.Columns), Location: c.TableLocation(t)}
	switch t.Format {
	case Parquet:
		sd.InputFormat, sd.OutputFormat = ParquetInputFormat, ParquetOutputFormat
		sd.SerdeInfo = GlueSerDeInfo{SerializationLibrary: ParquetSerDe, Parameters: map[string]string{"serialization.format": "1"}}
	case NDJSON:
		sd.InputFormat, sd.OutputFormat, sd.Compressed = TextInputFormat, TextOutputFormat, true
		sd.SerdeInfo = GlueSerDeInfo{SerializationLibrary: JSONSerDe, Parameters: map[string]string{"ignore.malformed.json": "true"}}
	}
	return GlueTableInput{Name: t.Name, Description: t.Doc, TableType: "EXTERNAL_TABLE", Parameters: params,
		PartitionKeys: glueColumns(t.Partitions), StorageDescriptor: sd}
}

// GlueJSON returns the TableInputs of tables as an indented JSON array.
func (c Catalog) GlueJSON(tables ...*Table) ([]byte, error) {
	ins := make([]GlueTableInput, len(tables))
	for i, t := range tables {
		ins[i] = c.GlueTable(t)
	}
	return json.MarshalIndent(ins, "", "  ")
}

// duckType returns a column's DuckDB type.
func duckType(c Column) string {
	switch c.Kind {
	case String:
		return "VARCHAR"
	case Int64:
		return "BIGINT"
	case Double:
		return "DOUBLE"
	case TimestampMillis:
		return "TIMESTAMP WITH TIME ZONE" // an instant (adjusted to UTC), as DuckDB reads it from Parquet
	case Struct:
		parts := make([]string, len(c.Fields))
		for i, f := range c.Fields {
			parts[i] = f.Name + " " + duckType(f)
		}
		return "STRUCT(" + strings.Join(parts, ", ") + ")"
	}
	return "VARCHAR"
}

// DuckDBType returns a column's DuckDB type name as DESCRIBE reports it (VARCHAR, BIGINT, DOUBLE,
// TIMESTAMP WITH TIME ZONE, STRUCT(…)).
func DuckDBType(c Column) string { return duckType(c) }

// DuckDBView returns a CREATE OR REPLACE VIEW statement naming t's columns and partitions over local copies
// of its objects: files is either one glob (e.g. "/cache/bucket/events/*/*/*/*/*.parquet") or the list
// of files to read (an empty list is refused by DuckDB: check first). Partition columns come from the
// year=/month=/day=/hour= directories as two-digit strings (hive_types), so they compare as they do in
// Athena.
func DuckDBView(t *Table, files []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE OR REPLACE VIEW %s AS SELECT ", t.Name)
	for _, c := range t.Columns {
		fmt.Fprintf(&b, "\"%s\", ", c.Name)
	}
	for i, p := range t.Partitions {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "\"%s\"", p.Name)
	}
	b.WriteString(" FROM ")
	list := make([]string, len(files))
	for i, f := range files {
		list[i] = quoteSQL(f)
	}
	src := "[" + strings.Join(list, ", ") + "]"
	if len(files) == 1 {
		src = list[0]
	}
	hive := make([]string, len(t.Partitions))
	for i, p := range t.Partitions {
		hive[i] = quoteSQL(p.Name) + ": '" + duckType(p) + "'"
	}
	opts := "hive_partitioning = true, hive_types = {" + strings.Join(hive, ", ") + "}"
	switch t.Format {
	case Parquet:
		fmt.Fprintf(&b, "read_parquet(%s, %s, union_by_name = true)", src, opts)
	case NDJSON:
		cols := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			cols[i] = quoteSQL(c.Name) + ": '" + duckType(c) + "'"
		}
		fmt.Fprintf(&b, "read_json(%s, format = 'newline_delimited', columns = {%s}, ignore_errors = true, %s)",
			src, strings.Join(cols, ", "), opts)
	}
	b.WriteString(";\n")
	return b.String()
}

// GlobFor returns the glob of t's local copies under root, the directory holding the table's prefix
// (root/events/year=…/…/x.parquet).
func GlobFor(t *Table, root string) string {
	ext := ExtParquet
	if t.Format == NDJSON {
		ext = ".ndjson*"
	}
	return strings.TrimSuffix(root, "/") + "/" + t.Prefix + strings.Repeat("*/", len(t.Partitions)) + "*" + ext
}

// PartitionHour returns the UTC hour named by a key's year=/month=/day=/hour= path segments (in that order,
// anywhere in key), and false when key has none.
func PartitionHour(key string) (time.Time, bool) {
	want := [4]string{"year=", "month=", "day=", "hour="}
	var vals [4]int
	found := 0
	for _, seg := range strings.Split(key, "/") {
		if found < 4 && strings.HasPrefix(seg, want[found]) {
			v, err := strconv.Atoi(seg[len(want[found]):])
			if err != nil {
				return time.Time{}, false
			}
			vals[found] = v
			found++
		}
	}
	if found != 4 {
		return time.Time{}, false
	}
	return time.Date(vals[0], time.Month(vals[1]), vals[2], vals[3], 0, 0, 0, time.UTC), true
}
