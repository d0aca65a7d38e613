-- Each user's last Search, with the user's last event (last access) and the search's location and name as the lake recorded them, by last access descending: the seed's Athena federated query over the catalogued lake alone (the stack deploys no Redis or PostgreSQL connector; 'clickfleet report last_search' joins those live).
WITH searches AS (
  SELECT user_id, event_time, click_id, product_id, price, name, country, region, city,
         row_number() OVER (PARTITION BY user_id ORDER BY event_time DESC, click_id DESC) AS rn
  FROM events
  WHERE event_name = 'Search'
),
last_access AS (
  SELECT user_id, max(event_time) AS last_access
  FROM events
  GROUP BY user_id
)
SELECT s.user_id, s.event_time AS search_time, s.click_id, s.product_id, s.price,
       a.last_access, s.country, s.region, s.city, s.name
FROM searches s
JOIN last_access a ON a.user_id = s.user_id
WHERE s.rn = 1
ORDER BY a.last_access DESC, s.user_id
