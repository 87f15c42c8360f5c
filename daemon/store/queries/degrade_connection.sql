-- degrade_connection: $1 connection, $2 reason, $3 the credential version the
-- vendor refused (NULL: any). False when nothing changed.
SELECT courier.degrade_connection($1, $2, $3::int) AS degraded
