-- Dashboard: requests per US state (the filled map).
SELECT region AS state, count(*) AS requests
FROM events
WHERE country = 'US' AND region IS NOT NULL
GROUP BY region
ORDER BY requests DESC, state
