-- Dashboard: the ten regions with the most requests.
SELECT country, region, count(*) AS requests
FROM events
WHERE region IS NOT NULL
GROUP BY country, region
ORDER BY requests DESC, country, region
LIMIT 10
