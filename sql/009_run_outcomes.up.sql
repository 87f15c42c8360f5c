-- 009_run_outcomes: courier.record_run_outcomes, the same contract, cheaper.
-- Two fixes found while profiling the delivery outcome statement (issue 6):
-- * it was LANGUAGE sql with SET search_path: never inlined, its statement
--   planned again on every call; as plpgsql the plan is cached per session;
-- * attempts_written and failures_written joined the materialised input CTE
--   with the updated CTE, which the planner may nested-loop (quadratic in the
--   batch); the input's columns now ride along in UPDATE ... RETURNING.
-- Grants and ownership stay (CREATE OR REPLACE). tests/pg/runs_schema_test.cpp
-- checks the contract.
CREATE OR REPLACE FUNCTION courier.record_run_outcomes(
    worker text, ids text[], attempts int[], owners text[], statuses text[], delays_ms bigint[],
    status_codes int[], outcomes text[], error_classes text[], error_codes text[], retryables boolean[],
    summaries text[], excerpts text[], started_us bigint[], durations_ms float8[], external_refs text[],
    next_actions text[], credential_versions int[])
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  RETURN QUERY
  WITH input AS (
    SELECT * FROM unnest(ids, attempts, owners, statuses, delays_ms, status_codes, outcomes, error_classes,
                         error_codes, retryables, summaries, excerpts, started_us, durations_ms, external_refs,
                         next_actions, credential_versions)
      AS t(id, attempt, owner, status, delay_ms, status_code, outcome, error_class, error_code, retryable, summary,
           excerpt, started_us, duration_ms, external_ref, next_action, credential_version)
  ), updated AS (
    UPDATE courier.runs r
    SET status = i.status,
        attempts = i.attempt,
        rate_limited_attempts = r.rate_limited_attempts + (coalesce(i.error_class, '') = 'rate_limited')::int,
        next_attempt_at = CASE WHEN i.delay_ms IS NULL THEN r.next_attempt_at
                               ELSE now() + i.delay_ms * interval '1 millisecond' END,
        lease_owner = NULL, lease_expires_at = NULL,
        last_status_code = i.status_code,
        last_error = i.summary,
        last_error_code = i.error_code,
        response_excerpt = i.excerpt,
        external_ref = CASE WHEN i.status = 'completed' THEN i.external_ref ELSE r.external_ref END,
        completed_at = CASE WHEN i.status IN ('completed', 'failed', 'dead_lettered') THEN now() END,
        latency_ms = CASE WHEN i.status IN ('completed', 'failed', 'dead_lettered')
                          THEN extract(epoch FROM now() - r.created_at) * 1000 END,
        updated_at = now()
    FROM input i
    WHERE r.id = i.id AND r.status = 'running' AND r.lease_owner = i.owner AND r.attempts = i.attempt - 1
    RETURNING r.id, r.tenant_id, r.trace_id, r.status, i.attempt, i.started_us, i.duration_ms, i.status_code,
              i.outcome, i.error_class, i.error_code, i.retryable, i.summary, i.excerpt, i.credential_version,
              i.next_action
  ), attempts_written AS (
    INSERT INTO courier.run_attempts (run_id, attempt, started_at, duration_ms, status_code, outcome, error_class,
                                      error_code, retryable, error_summary, response_excerpt, credential_version,
                                      worker)
    SELECT u.id, u.attempt, to_timestamp(u.started_us / 1000000.0), u.duration_ms, u.status_code, u.outcome,
           u.error_class, u.error_code, u.retryable, u.summary, u.excerpt, u.credential_version, worker
    FROM updated u
  ), resolved AS (
    -- Earlier failures end when the run completes or is dead-lettered. This statement sees
    -- the table as it was before it, so the failure of the attempt that dead-letters the run
    -- (inserted below) stays open for the operator.
    UPDATE courier.failures f
    SET resolved_at = now(), resolution = u.status
    FROM updated u
    WHERE u.status IN ('completed', 'dead_lettered')
      AND f.source = 'run' AND f.source_id = u.id AND f.resolved_at IS NULL
  ), failures_written AS (
    INSERT INTO courier.failures (tenant_id, source, source_id, category, error_code, message, attempt,
                                  next_action, trace_id)
    SELECT u.tenant_id, 'run', u.id,
           CASE WHEN u.error_class = 'blocked_destination' THEN 'validation' ELSE u.error_class END,
           coalesce(u.error_code, u.outcome), u.summary, u.attempt, coalesce(u.next_action, 'retry'), u.trace_id
    FROM updated u
    WHERE u.error_class IS NOT NULL
  )
  SELECT u.id FROM updated u;
END
$$;
