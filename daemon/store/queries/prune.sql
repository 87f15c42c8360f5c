-- prune: up to $3 finished deliveries past retention ($1 completed, $2
-- dead-lettered, in ms) removed; returns how many.
SELECT courier.prune(now() - $1::bigint * interval '1 millisecond',
                     now() - $2::bigint * interval '1 millisecond', $3) AS removed
