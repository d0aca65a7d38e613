-- Dashboard: sessions per UTC hour of their start (hour as 2026-12-01T10:00Z, from the session id's start).
SELECT hour, count(*) AS sessions
FROM (
  SELECT substr(session_id, length(session_id) - 19, 4) || '-' || substr(session_id, length(session_id) - 15, 2) || '-'
           || substr(session_id, length(session_id) - 13, 2) || 'T' || substr(session_id, length(session_id) - 10, 2) || ':00Z' AS hour
  FROM sessions
) s
GROUP BY hour
ORDER BY hour
