-- Dashboard: requests per city, with its mean latitude and longitude (rounded to 6 decimals: the same answer every run) when the lake has them (the city bubbles).
SELECT country, region, city, round(avg(latitude), 6) AS latitude, round(avg(longitude), 6) AS longitude, count(*) AS requests
FROM events
WHERE city IS NOT NULL
GROUP BY country, region, city
ORDER BY requests DESC, country, region, city
