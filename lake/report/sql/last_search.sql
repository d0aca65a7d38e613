-- Each user's last Search from the lake, with last access and location from Redis and name and price per click from PostgreSQL customers, by last access descending: the seed's Athena federated query.
WITH searches AS (
  SELECT user_id, event_time, click_id, product_id, price,
         row_number() OVER (PARTITION BY user_id ORDER BY event_time DESC, click_id DESC) AS rn
  FROM events
  WHERE event_name = 'Search'
)
SELECT s.user_id, s.event_time AS search_time, s.click_id, s.product_id, s.price,
       r.last_access_ms, r.country, r.region, r.city,
       c.name, c.price_per_click
FROM searches s
LEFT JOIN redis_users r ON r.user_id = s.user_id
LEFT JOIN customers c ON c.customer_id = s.user_id
WHERE s.rn = 1
ORDER BY r.last_access_ms DESC NULLS LAST, s.user_id
