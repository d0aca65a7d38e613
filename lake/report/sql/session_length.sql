-- Dashboard: the distribution of session length (last event minus start, in seconds) in buckets [from_seconds, to_seconds), every bucket listed.
SELECT b.label AS bucket, b.lo AS from_seconds, b.hi AS to_seconds, count(s.session_id) AS sessions
FROM (VALUES (0, 1, '0-1 s'), (1, 10, '1-10 s'), (10, 30, '10-30 s'), (30, 60, '30-60 s'), (60, 120, '1-2 min'),
             (120, 300, '2-5 min'), (300, 600, '5-10 min'), (600, 1800, '10-30 min'), (1800, NULL, '30 min+')) AS b (lo, hi, label)
LEFT JOIN sessions s
  ON s.last_event_ms - s.start_ms >= b.lo * 1000 AND (b.hi IS NULL OR s.last_event_ms - s.start_ms < b.hi * 1000)
GROUP BY b.label, b.lo, b.hi
ORDER BY b.lo
