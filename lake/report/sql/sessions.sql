-- Sessions: the sessionization lab's rule over each user's events in arrival order (shard, then sequence number), a new session where the gap to the user's previously arrived event exceeds 10 s, one row per session, as the sessions table holds it.
WITH arrived AS (
  SELECT user_id, click_id, coalesce(nullif(device_type, ''), 'unknown') AS device_type, event_time,
         date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00 UTC', event_time AT TIME ZONE 'UTC') AS ts,
         row_number() OVER (PARTITION BY user_id
                            ORDER BY shard_id, length(sequence_number), sequence_number, sub_sequence) AS arrival_no
  FROM events
),
-- A click id the user sent before is a producer's retry: the actors drop it while fewer than 32 new
-- click ids (their window of recent clicks) arrived since its first occurrence.
repeated AS (
  SELECT user_id, click_id, min(arrival_no) AS first_no
  FROM arrived
  GROUP BY user_id, click_id
  HAVING count(*) > 1
),
marked AS (
  SELECT a.user_id, a.arrival_no, r.first_no, CASE WHEN a.arrival_no > r.first_no THEN 1 ELSE 0 END AS is_copy
  FROM arrived a JOIN repeated r ON r.user_id = a.user_id AND r.click_id = a.click_id
),
copies_counted AS (
  SELECT *, sum(is_copy) OVER (PARTITION BY user_id ORDER BY arrival_no ROWS UNBOUNDED PRECEDING) AS copies_so_far
  FROM marked
),
dropped AS (
  SELECT c.user_id, c.arrival_no
  FROM copies_counted c JOIN copies_counted f ON f.user_id = c.user_id AND f.arrival_no = c.first_no
  WHERE c.is_copy = 1 AND (c.arrival_no - c.first_no) - (c.copies_so_far - f.copies_so_far) < 32
),
-- The lab's LAG: a run starts at the user's first event or where the gap exceeds 10 s.
lagged AS (
  SELECT a.user_id, a.device_type, a.event_time, a.ts, a.arrival_no,
         a.ts - lag(a.ts) OVER (PARTITION BY a.user_id ORDER BY a.arrival_no) AS gap
  FROM arrived a LEFT JOIN dropped d ON d.user_id = a.user_id AND d.arrival_no = a.arrival_no
  WHERE d.user_id IS NULL
),
numbered AS (
  SELECT *, CASE WHEN gap IS NULL OR gap > 10 * 1000 THEN 1 ELSE 0 END AS run_start,
         sum(CASE WHEN gap IS NULL OR gap > 10 * 1000 THEN 1 ELSE 0 END)
           OVER (PARTITION BY user_id ORDER BY arrival_no ROWS UNBOUNDED PRECEDING) AS run_no
  FROM lagged
),
-- A run's start, device and time are its first-arrived event's.
runs AS (
  SELECT user_id, run_no,
         max(CASE WHEN run_start = 1 THEN ts END) AS start_ms,
         max(CASE WHEN run_start = 1 THEN device_type END) AS device_type,
         max(CASE WHEN run_start = 1 THEN event_time END) AS start_time,
         max(ts) AS last_event_ms, count(*) AS event_count
  FROM numbered
  GROUP BY user_id, run_no
),
-- A run that would get the session id of the one before (same start millisecond and device) continues it.
merged AS (
  SELECT *, sum(CASE WHEN start_ms = prev_start_ms AND device_type = prev_device_type THEN 0 ELSE 1 END)
              OVER (PARTITION BY user_id ORDER BY run_no ROWS UNBOUNDED PRECEDING) AS session_no
  FROM (SELECT *, lag(start_ms) OVER (PARTITION BY user_id ORDER BY run_no) AS prev_start_ms,
               lag(device_type) OVER (PARTITION BY user_id ORDER BY run_no) AS prev_device_type
        FROM runs) r
),
per_session AS (
  SELECT user_id, min(start_ms) AS start_ms, min(device_type) AS device_type,
         min(start_time) AT TIME ZONE 'UTC' AS start_utc, max(last_event_ms) AS last_event_ms, sum(event_count) AS event_count
  FROM merged
  GROUP BY user_id, session_no
)
SELECT user_id || '_' || device_type || '_'
         || lpad(CAST(year(start_utc) AS VARCHAR), 4, '0') || lpad(CAST(month(start_utc) AS VARCHAR), 2, '0')
         || lpad(CAST(day(start_utc) AS VARCHAR), 2, '0') || 'T' || lpad(CAST(hour(start_utc) AS VARCHAR), 2, '0')
         || lpad(CAST(minute(start_utc) AS VARCHAR), 2, '0') || lpad(CAST(second(start_utc) AS VARCHAR), 2, '0')
         || '.' || lpad(CAST(start_ms % 1000 AS VARCHAR), 3, '0') || 'Z' AS session_id,
       user_id, device_type,
       lpad(CAST(hour(start_utc) AS VARCHAR), 2, '0') || ':' || lpad(CAST(minute(start_utc) AS VARCHAR), 2, '0')
         || ':' || lpad(CAST(second(start_utc) AS VARCHAR), 2, '0') AS session_time,
       start_ms, last_event_ms, event_count
FROM per_session
ORDER BY start_ms, session_id
