-- prune_runs: up to $3 finished runs past retention ($1 completed, $2
-- dead-lettered, in ms), with failures and outbox rows; returns how many runs.
SELECT courier.prune_runs(now() - $1::bigint * interval '1 millisecond',
                          now() - $2::bigint * interval '1 millisecond', $3) AS removed
