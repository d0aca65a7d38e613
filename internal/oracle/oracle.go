// Package oracle computes the sessions a stream of events must give, in PostgreSQL and independently of
// the project's Go code: the lab's rule, LAG over each user's events in stream order (shard, then
// sequence number), a new session where the gap to the previous event exceeds 10 s or there is none,
// each named and measured as docs/contracts.md says. Tests and the chaos scenario compare the sessions
// table with it.
package oracle

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/clickfleet/clickfleet/messages"
)

// Event is one event as it landed on the stream.
type Event struct {
	UserID      string
	TimestampMs int64 // the event's time (Unix ms)
	DeviceType  string
	Shard       string // shard id
	Seq         string // sequence number (decimal)
}

// The lab's query over oracle_events, the session id and time as the contract names them.
const sessionsSQL = `
WITH lagged AS (
  SELECT *, event_timestamp - LAG(event_timestamp, 1) OVER (PARTITION BY user_id ORDER BY shard, seq) AS gap
  FROM oracle_events),
numbered AS (
  SELECT *, SUM(CASE WHEN gap > 10 * 1000 OR gap IS NULL THEN 1 ELSE 0 END)
              OVER (PARTITION BY user_id ORDER BY shard, seq) AS session_no
  FROM lagged),
sessions AS (
  SELECT user_id, (array_agg(device_type ORDER BY shard, seq))[1] AS device_type,
         (array_agg(event_timestamp ORDER BY shard, seq))[1] AS start_ms,
         max(event_timestamp) AS last_event_ms, count(*) AS event_count
  FROM numbered GROUP BY user_id, session_no),
named AS (
  SELECT *, (to_timestamp(start_ms / 1000) + (start_ms % 1000) * interval '1 millisecond') AT TIME ZONE 'UTC' AS start_utc
  FROM sessions)
SELECT user_id || '_' || device_type || '_' || to_char(start_utc, 'YYYYMMDD"T"HH24MISS.MS"Z"'),
       user_id, device_type, to_char(start_utc, 'HH24:MI:SS'), start_ms, last_event_ms, event_count
FROM named`

// Sessions loads evs into a temporary table on conn and returns the sessions by session id.
func Sessions(ctx context.Context, conn *pgx.Conn, evs []Event) (map[string]messages.Session, error) {
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE oracle_events (user_id text, event_timestamp bigint, device_type text, shard text, seq numeric) ON COMMIT PRESERVE ROWS`); err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `DROP TABLE oracle_events`) //nolint:errcheck // a temporary table
	rows := make([][]any, len(evs))
	for i, e := range evs {
		rows[i] = []any{e.UserID, e.TimestampMs, e.DeviceType, e.Shard, e.Seq}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"oracle_events"}, []string{"user_id", "event_timestamp", "device_type", "shard", "seq"}, pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("oracle: load events: %w", err)
	}
	res, err := conn.Query(ctx, sessionsSQL)
	if err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	defer res.Close()
	out := map[string]messages.Session{}
	for res.Next() {
		var s messages.Session
		if err := res.Scan(&s.SessionID, &s.UserID, &s.DeviceType, &s.SessionTime, &s.StartMs, &s.LastEventMs, &s.EventCount); err != nil {
			return nil, fmt.Errorf("oracle: %w", err)
		}
		out[s.SessionID] = s
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("oracle: %w", err)
	}
	return out, nil
}
