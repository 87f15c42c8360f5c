-- finish_rotation: $1 version, $2 verified, $3 the connection it was verified
-- with ('' for none), $4 error. False when it was no longer rotating.
SELECT courier.finish_rotation($1, $2, nullif($3, ''), $4) AS finished
