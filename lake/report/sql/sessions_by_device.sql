-- Dashboard: sessions per device type (the device of each session's first event).
SELECT device_type, count(*) AS sessions
FROM sessions
GROUP BY device_type
ORDER BY sessions DESC, device_type
