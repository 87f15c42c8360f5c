-- release_runs: claimed runs of worker $1 given back without an attempt ($2
-- ids, $3 delays in ms, $4 reasons): limits, waiting for a token, shutdown.
SELECT courier.release_runs($1, $2::text[], $3::bigint[], $4::text[]) AS released
