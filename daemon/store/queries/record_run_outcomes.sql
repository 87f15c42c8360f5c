-- record_run_outcomes: one batch of run attempt results of worker $1, one
-- array per column (see courier.record_run_outcomes, which also writes the
-- failures, escalations and outbox events and keeps the state rules); $19:
-- per row, whether it is a rescue (applies only while the lease is expired).
-- Returns the ids that applied.
SELECT * FROM courier.record_run_outcomes($1, $2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[],
                                          $7::int[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::text[],
                                          $13::text[], $14::bigint[], $15::float8[], $16::text[], $17::text[],
                                          $18::int[], $19::bool[]) AS id
