-- Dashboard: the number of each action by every customer (name × event name).
SELECT user_id, name, event_name, count(*) AS events
FROM events
GROUP BY user_id, name, event_name
ORDER BY user_id, event_name
