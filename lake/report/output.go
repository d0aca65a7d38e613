package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Table is a report's result: column names and rows of Go values (nil, string, int64, float64,
// time.Time in UTC).
type Table struct {
	Columns []string
	Rows    [][]any
}

// Format is an output format of a report's rows.
type Format string

// The formats. Parquet is written by DuckDB (Runner.WriteParquet); the others by Table.Write.
const (
	FormatTable   Format = "table"   // aligned columns for a terminal, NULL for nulls
	FormatCSV     Format = "csv"     // RFC 4180 with a header row; nulls are empty
	FormatJSON    Format = "json"    // an array of objects, keys in column order; nulls are null
	FormatParquet Format = "parquet" // Snappy-compressed Parquet
)

// ParseFormat returns the format called s.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatTable, FormatCSV, FormatJSON, FormatParquet:
		return f, nil
	}
	return "", fmt.Errorf("%q is not table, csv, json or parquet", s)
}

// text returns v as text: timestamps in RFC 3339 with milliseconds, floats in their shortest form.
func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return fmt.Sprint(v)
}

// Write writes t to w as f (table, csv or json).
func (t *Table) Write(w io.Writer, f Format) error {
	switch f {
	case FormatTable:
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.Columns, "\t"))
		for _, row := range t.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				if v == nil {
					cells[i] = "NULL"
				} else {
					cells[i] = text(v)
				}
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		if len(t.Rows) == 0 {
			fmt.Fprintln(tw, "(no rows)")
		}
		return tw.Flush()
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(t.Columns); err != nil {
			return err
		}
		for _, row := range t.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = text(v)
			}
			if err := cw.Write(cells); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case FormatJSON:
		var b strings.Builder
		b.WriteString("[")
		for r, row := range t.Rows {
			if r > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n  {")
			for i, v := range row {
				if i > 0 {
					b.WriteString(", ")
				}
				k, _ := json.Marshal(t.Columns[i])
				b.Write(k)
				b.WriteString(": ")
				if tm, ok := v.(time.Time); ok {
					v = text(tm)
				}
				val, err := json.Marshal(v)
				if err != nil {
					return err
				}
				b.Write(val)
			}
			b.WriteString("}")
		}
		if len(t.Rows) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("]\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	return fmt.Errorf("report: Table.Write cannot write %q", f)
}
