-- Dashboard: the distribution of events per session in buckets [from_events, to_events), every bucket listed.
SELECT b.label AS bucket, b.lo AS from_events, b.hi AS to_events, count(s.session_id) AS sessions
FROM (VALUES (1, 2, '1'), (2, 3, '2'), (3, 6, '3-5'), (6, 11, '6-10'), (11, 21, '11-20'), (21, 51, '21-50'),
             (51, 101, '51-100'), (101, NULL, '101+')) AS b (lo, hi, label)
LEFT JOIN sessions s
  ON s.event_count >= b.lo AND (b.hi IS NULL OR s.event_count < b.hi)
GROUP BY b.label, b.lo, b.hi
ORDER BY b.lo
