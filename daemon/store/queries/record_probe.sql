-- record_probe: $1 connection, $2 passed, $3 status code (NULL: no response),
-- $4 error, $5 unhealthy_after. Returns the connection's health after it
-- (NULL when the connection no longer exists).
SELECT courier.record_probe($1, $2, $3::int, $4, $5) AS health
