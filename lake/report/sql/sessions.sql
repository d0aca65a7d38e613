-- Sessions: the sessionization lab's rule over each user's events in arrival order (shard, then sequence number), a new session where the gap to the user's previously arrived event exceeds 10 s, one row per session, as the sessions table holds it.
WITH arrived AS (
  SELECT user_id, click_id, coalesce(nullif(device_type, ''), 'unknown') AS device_type,
         event_time AT TIME ZONE 'UTC' AS start_utc,
         date_diff('millisecond', TIMESTAMP '1970-01-01 00:00:00 UTC', event_time AT TIME ZONE 'UTC') AS ts,
         shard_id, length(sequence_number) AS seq_len, sequence_number, sub_sequence,
         row_number() OVER (PARTITION BY user_id, click_id
                            ORDER BY shard_id, length(sequence_number), sequence_number, sub_sequence) AS copy_no
  FROM events
),
-- new_ids counts the user's distinct click ids so far. A repeated click id is a producer's retry, dropped
-- as the actors drop it while fewer than 32 new ids (their window of recent clicks) arrived since its first.
counted AS (
  SELECT *, sum(CASE WHEN copy_no = 1 THEN 1 ELSE 0 END) OVER (PARTITION BY user_id
              ORDER BY shard_id, seq_len, sequence_number, sub_sequence ROWS UNBOUNDED PRECEDING) AS new_ids
  FROM arrived
),
kept AS (
  SELECT * FROM (SELECT *, min(new_ids) OVER (PARTITION BY user_id, click_id) AS first_new_ids FROM counted) c
  WHERE copy_no = 1 OR new_ids - first_new_ids >= 32
),
-- The lab's LAG: a run starts at the user's first event or where the gap exceeds 10 s.
lagged AS (
  SELECT *, ts - lag(ts) OVER (PARTITION BY user_id ORDER BY shard_id, seq_len, sequence_number, sub_sequence) AS gap
  FROM kept
),
numbered AS (
  SELECT *, CASE WHEN gap IS NULL OR gap > 10 * 1000 THEN 1 ELSE 0 END AS run_start,
         sum(CASE WHEN gap IS NULL OR gap > 10 * 1000 THEN 1 ELSE 0 END) OVER (PARTITION BY user_id
           ORDER BY shard_id, seq_len, sequence_number, sub_sequence ROWS UNBOUNDED PRECEDING) AS run_no
  FROM lagged
),
-- A run's start, device and time are its first-arrived event's.
runs AS (
  SELECT user_id, run_no,
         max(CASE WHEN run_start = 1 THEN ts END) AS start_ms,
         max(CASE WHEN run_start = 1 THEN device_type END) AS device_type,
         max(CASE WHEN run_start = 1 THEN start_utc END) AS start_utc,
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
  SELECT user_id, min(start_ms) AS start_ms, min(device_type) AS device_type, min(start_utc) AS start_utc,
         max(last_event_ms) AS last_event_ms, sum(event_count) AS event_count
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
