package lake

import (
	"fmt"

	"github.com/parquet-go/parquet-go"
)

// Batch holds the rows of one Parquet object of a table, column by column, and writes them with one call
// per column and page (Writer.ColumnWriters) rather than splitting rows into columns value by value. Start
// each row with AddRow (every column null, a required one its zero value), then set its columns. Strings
// are copied into the batch's own buffer. Reset empties a batch and keeps its memory, so a reused batch
// allocates nothing once it has held its largest object. Not safe for concurrent use.
type Batch struct {
	t     *Table
	cols  [][]parquet.Value // cols[i] holds Columns[i] of every row
	null  []parquet.Value   // null[i] is the value AddRow gives Columns[i]
	def   []int             // def[i] is Columns[i]'s definition level when it has a value
	bytes []byte            // the strings' bytes
	n     int
}

// NewBatch returns an empty batch of rows of t.
func (t *Table) NewBatch() *Batch {
	b := &Batch{t: t, cols: make([][]parquet.Value, len(t.Columns)), null: make([]parquet.Value, len(t.Columns)),
		def: make([]int, len(t.Columns))}
	for i, c := range t.Columns {
		leaf := t.leaf[i]
		switch {
		case !c.Required:
			b.null[i], b.def[i] = parquet.NullValue().Level(0, 0, leaf), 1
		case c.Kind == String:
			b.null[i] = parquet.ByteArrayValue(nil).Level(0, 0, leaf)
		case c.Kind == Double:
			b.null[i] = parquet.DoubleValue(0).Level(0, 0, leaf)
		default:
			b.null[i] = parquet.Int64Value(0).Level(0, 0, leaf)
		}
	}
	return b
}

// Len returns the number of rows in the batch.
func (b *Batch) Len() int { return b.n }

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	for i := range b.cols {
		clear(b.cols[i]) // drop references to the strings' old buffers
		b.cols[i] = b.cols[i][:0]
	}
	b.bytes, b.n = b.bytes[:0], 0
}

// AddRow appends a row whose optional columns are null and whose required ones hold their zero value;
// the setters then set its columns.
func (b *Batch) AddRow() {
	for i := range b.cols {
		b.cols[i] = append(b.cols[i], b.null[i])
	}
	b.n++
}

func (b *Batch) set(col int, v parquet.Value) {
	b.cols[col][b.n-1] = v.Level(0, b.def[col], b.t.leaf[col])
}

// SetString sets a String column of the last row; an empty s leaves an optional column null.
func (b *Batch) SetString(col int, s string) {
	if s == "" {
		if !b.t.Columns[col].Required {
			return
		}
		b.set(col, parquet.ByteArrayValue(nil))
		return
	}
	// An earlier value keeps pointing into the old array when append moves the buffer; both stay intact.
	start := len(b.bytes)
	b.bytes = append(b.bytes, s...)
	b.set(col, parquet.ByteArrayValue(b.bytes[start:len(b.bytes):len(b.bytes)]))
}

// SetInt64 sets an Int64 column of the last row.
func (b *Batch) SetInt64(col int, v int64) { b.set(col, parquet.Int64Value(v)) }

// SetDouble sets a Double column of the last row.
func (b *Batch) SetDouble(col int, v float64) { b.set(col, parquet.DoubleValue(v)) }

// SetMillis sets a TimestampMillis column of the last row from Unix milliseconds.
func (b *Batch) SetMillis(col int, ms int64) { b.set(col, parquet.Int64Value(ms)) }

// batchPageRows is how many rows of a column a Batch hands its writer at once: the writer cuts a page
// when its buffer reaches the page size after a call, so pages stay near parquet-go's 256 KiB.
const batchPageRows = 2048

// WriteTo writes the batch's rows to w, a writer of the batch's table's schema (the caller closes it).
func (b *Batch) WriteTo(w *parquet.Writer) error {
	writers := w.ColumnWriters()
	if len(writers) != len(b.cols) {
		return fmt.Errorf("lake: a writer of %d columns for a batch of table %s (%d columns)", len(writers), b.t.Name, len(b.cols))
	}
	for i, vals := range b.cols {
		for len(vals) > 0 {
			chunk := vals[:min(len(vals), batchPageRows)]
			if _, err := writers[b.t.leaf[i]].WriteRowValues(chunk); err != nil {
				return fmt.Errorf("lake: write column %s: %w", b.t.Columns[i].Name, err)
			}
			vals = vals[len(chunk):]
		}
	}
	return nil
}
