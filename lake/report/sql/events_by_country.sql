-- Events per country and event name, ordered by country: the seed's UNLOAD (written back to the lake under aggregates/events_by_country/).
SELECT country, event_name, count(*) AS events
FROM events
GROUP BY country, event_name
ORDER BY country NULLS LAST, event_name
