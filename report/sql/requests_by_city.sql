-- Dashboard: requests per city, with its latitude and longitude when the lake has them (the city bubbles).
SELECT country, region, city, avg(latitude) AS latitude, avg(longitude) AS longitude, count(*) AS requests
FROM events
WHERE city IS NOT NULL
GROUP BY country, region, city
ORDER BY requests DESC, country, region, city
