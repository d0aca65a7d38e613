-- Events per event name: the seed's Redshift Spectrum query over the Glue table.
SELECT event_name, count(*) AS events
FROM events
GROUP BY event_name
ORDER BY events DESC, event_name
