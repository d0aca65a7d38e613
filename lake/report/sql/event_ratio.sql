-- Dashboard: the share of each event name (the donut chart).
SELECT event_name, count(*) AS events,
       CAST(count(*) AS DOUBLE) / sum(count(*)) OVER () AS ratio
FROM events
GROUP BY event_name
ORDER BY events DESC, event_name
