package reconcile

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/clickfleet/clickfleet/messages"
)

// WriteText writes the result for people: a summary, then every difference (session id, field, the
// lake's value and the table's), then the sessions open at the range's end.
func (res *Result) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	s := res.Summary
	verdict := "EQUAL"
	if !res.Equal {
		verdict = "DIFFERENT"
	}
	fmt.Fprintf(b, "reconcile %s: lake %s against table %s, sessions starting in %s\n", verdict, res.LakeURL, res.Table, res.RangeText())
	fmt.Fprintf(b, "  lake: %d sessions compared, %d open at the range's end (apart); table: %d rows in the range\n",
		s.LakeSessions, s.OpenSessions, s.TableRows)
	fmt.Fprintf(b, "  equal %d · missing from the table %d · extra in the table %d · differing %d\n", s.Equal, s.Missing, s.Extra, s.Differing)
	for _, n := range res.Notes {
		fmt.Fprintf(b, "  note: %s\n", n)
	}
	if len(res.Differences) > 0 {
		fmt.Fprintf(b, "differences (%d):\n", len(res.Differences))
		for _, d := range res.Differences {
			switch d.Kind {
			case Missing:
				fmt.Fprintf(b, "  missing  %s: in the lake (%s), no row in the table\n", d.SessionID, fieldsText(d.Lake))
			case Extra:
				fmt.Fprintf(b, "  extra    %s: a row in the table (%s), no such session in the lake\n", d.SessionID, fieldsText(d.Table))
			default:
				fmt.Fprintf(b, "  differs  %s: %s lake %s, table %s\n", d.SessionID, d.Field, valueText(d.Field, d.Lake), valueText(d.Field, d.Table))
			}
		}
	}
	if len(res.Open) > 0 {
		fmt.Fprintf(b, "open at the range's end, not compared (%d):\n", len(res.Open))
		for _, o := range res.Open {
			row := "no row yet"
			if o.Table != nil {
				row = "row " + sessionText(*o.Table)
				if len(o.Fields) > 0 {
					row += " (lags in " + strings.Join(o.Fields, ", ") + ")"
				}
			}
			fmt.Fprintf(b, "  open     %s: lake %s; %s\n", o.Lake.SessionID, sessionText(o.Lake), row)
		}
	}
	return b.Flush()
}

// RangeText is the range as [from, to) in UTC.
func (res *Result) RangeText() string {
	f := func(t *time.Time, open string) string {
		if t == nil {
			return open
		}
		return t.UTC().Format(time.RFC3339)
	}
	return "[" + f(res.From, "the beginning") + ", " + f(res.To, "the end") + ")"
}

func sessionText(s messages.Session) string {
	return fmt.Sprintf("events %d, last %s", s.EventCount, msText(s.LastEventMs))
}

// fieldsText shows a missing session's or an extra row's fields in the order of Fields.
func fieldsText(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprint(v)
	}
	parts := make([]string, 0, len(Fields))
	for _, f := range Fields {
		parts = append(parts, f+" "+valueText(f, m[f]))
	}
	return strings.Join(parts, ", ")
}

// valueText shows a field's value; times in Unix ms also as UTC.
func valueText(field string, v any) string {
	if field == "start_ms" || field == "last_event_ms" {
		switch n := v.(type) {
		case int64:
			return fmt.Sprintf("%d (%s)", n, msText(n))
		case float64:
			return fmt.Sprintf("%d (%s)", int64(n), msText(int64(n)))
		}
	}
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

func msText(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }
