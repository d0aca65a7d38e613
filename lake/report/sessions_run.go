//go:build cgo

package report

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/clickfleet/clickfleet/lake"
	"github.com/clickfleet/clickfleet/messages"
)

// sessionsQuery is what the sessions report runs: the Runner's view, in start order.
const sessionsQuery = "SELECT * FROM sessions ORDER BY start_ms, session_id"

// SessionsRange returns the range of session starts (event time) a Runner's sessions cover: the whole UTC
// hours it reads, [From rounded down, To rounded up); a zero side stays open.
func (r *Runner) SessionsRange() (from, to time.Time) {
	from, to = r.cfg.From.UTC().Truncate(time.Hour), r.cfg.To.UTC()
	if r.cfg.From.IsZero() {
		from = time.Time{}
	}
	if t := to.Truncate(time.Hour); !to.IsZero() && !t.Equal(to) {
		to = t.Add(time.Hour)
	}
	return from, to
}

// sessionsReadRange returns the hours read for the sessions: SessionsRange with one hour more on each
// bounded side. Partitions are whole hours of arrival, so the hour beside each edge is the smallest read
// that holds the gap's margin (and the events of sessions that cross the edge) on that side.
func (r *Runner) sessionsReadRange() (from, to time.Time) {
	from, to = r.SessionsRange()
	if !from.IsZero() {
		from = from.Add(-time.Hour)
	}
	if !to.IsZero() {
		to = to.Add(time.Hour)
	}
	return from, to
}

// defineSessions defines, over files (the range and its margins), the temporary table sessions — the
// sessions of sql/sessions.sql that start in SessionsRange, with open — and then the view events over the
// range's files alone, as every other report reads it.
//
// A session is open when it may still grow: its last event is within one gap (inclusive) of the end of
// the data read on its user's shard (the highest event time read from the shard of the user's last-arrived
// event; a shard's objects are written in order, so the lake holds every earlier record of it). Only a
// user's latest session can grow, and a next event continues it only within the gap of the previous one;
// a session closed by a later event of its user is marked open only in the rare case of its highest
// timestamp arriving before a lower one within the gap of the end: the mark errs on the side of open.
func (r *Runner) defineSessions(ctx context.Context, conn *sql.Conn, files []string) error {
	if _, err := conn.ExecContext(ctx, lake.DuckDBView(lake.Events, files)); err != nil {
		return fmt.Errorf("report: define the events view: %w", err)
	}
	from, to := r.SessionsRange()
	var where []string
	if !from.IsZero() {
		where = append(where, fmt.Sprintf("s.start_ms >= %d", from.UnixMilli()))
	}
	if !to.IsZero() {
		where = append(where, fmt.Sprintf("s.start_ms < %d", to.UnixMilli()))
	}
	cond := ""
	if len(where) > 0 {
		cond = "WHERE " + strings.Join(where, " AND ")
	}
	stmt := fmt.Sprintf(`CREATE TEMP TABLE sessions AS
WITH lake_sessions AS (
%s
),
shard_end AS (
  SELECT shard_id, max(date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00 UTC', event_time AT TIME ZONE 'UTC')) AS end_ms
  FROM events GROUP BY shard_id
),
user_shard AS (SELECT user_id, max(shard_id) AS shard_id FROM events GROUP BY user_id)
SELECT s.session_id, s.user_id, s.device_type, s.session_time, s.start_ms, s.last_event_ms, s.event_count,
       s.last_event_ms + %d >= e.end_ms AS open
FROM lake_sessions s JOIN user_shard u ON u.user_id = s.user_id JOIN shard_end e ON e.shard_id = u.shard_id
%s`, strings.TrimSuffix(sessionsBody(), "\nORDER BY start_ms, session_id"), SessionGapMs, cond)
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("report: sessions: %w", err)
	}
	// The other reports' events: the range's hours alone (the partitions, as text, compare as hours).
	if from.IsZero() && to.IsZero() {
		return nil
	}
	where = where[:0]
	hour := "year || month || day || hour"
	if !from.IsZero() {
		where = append(where, fmt.Sprintf("%s >= '%s'", hour, from.Format("2006010215")))
	}
	if !to.IsZero() {
		where = append(where, fmt.Sprintf("%s < '%s'", hour, to.Format("2006010215")))
	}
	if _, err := conn.ExecContext(ctx, "ALTER VIEW events RENAME TO events_read;\nCREATE VIEW events AS SELECT * FROM events_read WHERE "+
		strings.Join(where, " AND ")); err != nil {
		return fmt.Errorf("report: define the events view: %w", err)
	}
	return nil
}

// LakeSessions are the sessions the lake implies over a Runner's range (Runner.Sessions).
type LakeSessions struct {
	// From and To are the range of session starts, SessionsRange: whole UTC hours, a zero side open.
	From, To time.Time
	// Closed are the sessions that start in the range and can no longer grow, in start order
	// (UpdatedMs is 0: the lake has no write time). The events of the hour before and after the range
	// are read too, so a session that crosses an edge of the range is whole; one that starts before From
	// belongs to the range before.
	Closed []messages.Session
	// Open are the sessions that start in the range and may still grow: the last event is within one gap
	// of the end of the data the lake holds (or the range's margin reads) on the user's shard. Their
	// values are what the lake holds so far.
	Open []messages.Session
	// Result is the run's sync and skipped objects; its Table holds the rows, with the column open.
	Result *Result
}

// Sessions returns the sessions the lake implies (sql/sessions.sql, the actors' rules) that start in
// SessionsRange, split into closed and open ones. Errors as Run's (ErrEmptyLake when the range and its
// margins hold no events).
func (r *Runner) Sessions(ctx context.Context) (*LakeSessions, error) {
	res, err := r.Run(ctx, SessionsReport)
	if err != nil {
		return nil, err
	}
	out := &LakeSessions{Result: res}
	out.From, out.To = r.SessionsRange()
	want := []string{"session_id", "user_id", "device_type", "session_time", "start_ms", "last_event_ms", "event_count", "open"}
	if strings.Join(res.Table.Columns, ",") != strings.Join(want, ",") {
		return nil, fmt.Errorf("report: sessions: columns %v, want %v", res.Table.Columns, want)
	}
	for _, row := range res.Table.Rows {
		s, open, err := sessionOf(row)
		if err != nil {
			return nil, err
		}
		if open {
			out.Open = append(out.Open, s)
		} else {
			out.Closed = append(out.Closed, s)
		}
	}
	return out, nil
}

// sessionOf converts a row of the sessions view.
func sessionOf(row []any) (messages.Session, bool, error) {
	var s messages.Session
	var ok [8]bool
	s.SessionID, ok[0] = row[0].(string)
	s.UserID, ok[1] = row[1].(string)
	s.DeviceType, ok[2] = row[2].(string)
	s.SessionTime, ok[3] = row[3].(string)
	s.StartMs, ok[4] = row[4].(int64)
	s.LastEventMs, ok[5] = row[5].(int64)
	s.EventCount, ok[6] = row[6].(int64)
	open, ok7 := row[7].(bool)
	ok[7] = ok7
	for i, good := range ok {
		if !good {
			return s, false, fmt.Errorf("report: sessions: row %v: column %d is %T", row, i, row[i])
		}
	}
	return s, open, nil
}
