-- fail_rotation: the rotation command of credential $1, run by $2, failed
-- for reason $3 (never its output); the prior version stays active.
SELECT courier.fail_rotation($1, $2, $3) AS failed
