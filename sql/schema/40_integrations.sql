-- 40_integrations: governed outbound API calls ("runs") against
-- configured connections, with credentials (versioned, sealed), classified
-- failures, escalations and an outbox of canonical events.
--
-- The daemon claims runs with the same lease design as deliveries (status
-- 'running' + lease_owner/lease_expires_at, FOR UPDATE SKIP LOCKED) and
-- records outcomes in batches through courier.record_run_outcomes().
-- Run status transitions are enforced here, not only in the daemon:
--   pending -> running | failed (cancelled)
--   running -> pending (retry / waiting) | completed | failed | dead_lettered
--   failed, dead_lettered -> pending only through courier.replay_run()
--   completed -> never changes again; attempts never decrease.
-- The producers' tenant check on runs (courier.check_run_tenant) and every
-- grant are in 90_roles.sql.

-- Outbox: canonical events for other systems, consumed with SQL (ORDER BY
-- position) and woken by NOTIFY courier_outbox at commit.
CREATE TABLE courier.outbox (
  position    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id          text NOT NULL DEFAULT courier.new_id('obx_'),
  event_type  text NOT NULL,
  tenant_id   text NOT NULL,
  subject_id  text NOT NULL,
  trace_id    text,
  body        jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_tenant_type ON courier.outbox (tenant_id, event_type, position);
-- No index on created_at: position follows time, and retention walks the primary key.

-- NOTIFY courier_outbox once per inserting statement that added rows
-- (courier.notify_when_inserted(), 10_core.sql); 'deferrable': the daemon's
-- outcome statement leaves it to one coalesced NOTIFY after its commits.
CREATE TRIGGER outbox_notify AFTER INSERT ON courier.outbox
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION courier.notify_when_inserted('courier_outbox', 'deferrable');

CREATE FUNCTION courier.emit(event_type text, tenant_id text, subject_id text, trace_id text, body jsonb)
RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  INSERT INTO courier.outbox (event_type, tenant_id, subject_id, trace_id, body)
  VALUES (event_type, tenant_id, subject_id, trace_id, coalesce(body, '{}'::jsonb))
$$;

-- Credentials: secret material sealed with AES-256-GCM under the master key
-- (additional data: the credential id), exactly like signing secrets. The
-- fingerprint is an HMAC of the secret under a key derived from the master
-- key: equal secrets have equal fingerprints, and it reveals nothing else.
CREATE TABLE courier.credentials (
  id          text PRIMARY KEY DEFAULT courier.new_id('cred_'),
  tenant_id   text NOT NULL CHECK (tenant_id <> ''),
  name        text,
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'rotating', 'revoked')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, tenant_id)  -- target of connections' (credential_id, tenant_id): no cross-tenant credentials
);

CREATE TABLE courier.credential_versions (
  id                  text PRIMARY KEY DEFAULT courier.new_id('crv_'),
  credential_id       text NOT NULL REFERENCES courier.credentials (id) ON DELETE CASCADE,
  version             int NOT NULL CHECK (version >= 1),
  sealed_secret       text NOT NULL CHECK (starts_with(sealed_secret, 'v1:')),
  fingerprint         text NOT NULL,
  -- rotating: stored, waiting for the daemon's verification call;
  -- failed: verification failed (the prior version stayed active).
  status              text NOT NULL CHECK (status IN ('active', 'rotating', 'inactive', 'failed', 'revoked')),
  expires_at          timestamptz,
  verification_error  text CHECK (octet_length(verification_error) <= 512),
  created_at          timestamptz NOT NULL DEFAULT now(),
  activated_at        timestamptz,
  retired_at          timestamptz,
  UNIQUE (credential_id, version)
);
-- At most one active version per credential (and, checked at commit below, at least one).
CREATE UNIQUE INDEX credential_versions_one_active ON courier.credential_versions (credential_id)
  WHERE status = 'active';
CREATE UNIQUE INDEX credential_versions_one_rotating ON courier.credential_versions (credential_id)
  WHERE status = 'rotating';

CREATE FUNCTION courier.check_credential_has_active_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  row_json jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
  cred_id text := CASE WHEN TG_TABLE_NAME = 'credentials' THEN row_json ->> 'id' ELSE row_json ->> 'credential_id' END;
BEGIN
  IF EXISTS (SELECT 1 FROM courier.credentials c WHERE c.id = cred_id AND c.status <> 'revoked')
     AND NOT EXISTS (SELECT 1 FROM courier.credential_versions v
                     WHERE v.credential_id = cred_id AND v.status = 'active') THEN
    RAISE EXCEPTION 'credential % must have exactly one active version', cred_id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER credentials_one_active AFTER INSERT OR UPDATE ON courier.credentials
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION courier.check_credential_has_active_version();
CREATE CONSTRAINT TRIGGER credential_versions_one_active AFTER INSERT OR UPDATE OR DELETE ON courier.credential_versions
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION courier.check_credential_has_active_version();

CREATE TABLE courier.connections (
  id                    text PRIMARY KEY DEFAULT courier.new_id('conn_'),
  tenant_id             text NOT NULL CHECK (tenant_id <> ''),
  provider              text NOT NULL CHECK (provider <> ''),
  base_url              text NOT NULL CHECK (base_url <> ''),
  auth_mode             text NOT NULL DEFAULT 'none'
                        CHECK (auth_mode IN ('none', 'api_key', 'bearer', 'basic', 'oauth2_client_credentials')),
  api_key_header        text,             -- api_key: the header carrying the key (default X-Api-Key)
  token_url             text,             -- oauth2_client_credentials
  client_id             text,
  scopes                text,             -- space separated
  credential_id         text,
  status                text NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active', 'degraded', 'retired')),
  status_reason         text,
  health                text NOT NULL DEFAULT 'unknown' CHECK (health IN ('healthy', 'degraded', 'unhealthy', 'unknown')),
  health_check_method   text NOT NULL DEFAULT 'GET',
  health_check_path     text CHECK (starts_with(health_check_path, '/')),  -- NULL: never probed (health stays unknown)
  health_check_expected_status int CHECK (health_check_expected_status BETWEEN 100 AND 599),  -- NULL: any 2xx
  policy                text NOT NULL DEFAULT 'default',
  max_in_flight         int CHECK (max_in_flight > 0),
  rate_limit_per_second double precision CHECK (rate_limit_per_second > 0),
  rate_limit_burst      int CHECK (rate_limit_burst > 0),
  consecutive_probe_failures int NOT NULL DEFAULT 0,
  last_checked_at       timestamptz,
  last_health_error     text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CHECK (base_url ~* '^https?://[^/?#]+'),
  CHECK (health_check_method ~ '^[A-Z]+$'),
  FOREIGN KEY (credential_id, tenant_id) REFERENCES courier.credentials (id, tenant_id),
  CHECK (auth_mode = 'none' OR credential_id IS NOT NULL),
  CHECK (auth_mode <> 'oauth2_client_credentials' OR (token_url IS NOT NULL AND client_id IS NOT NULL))
);
CREATE INDEX connections_credential ON courier.connections (credential_id);

-- Runs. connection_id has no foreign key on purpose: a run naming an unknown
-- connection is poison (dead-lettered with its envelope and escalated), not
-- an error in the producer's transaction.
CREATE TABLE courier.runs (
  id                    text PRIMARY KEY DEFAULT courier.new_id('run_'),
  tenant_id             text NOT NULL CHECK (tenant_id <> ''),
  connection_id         text NOT NULL,
  operation             text NOT NULL CHECK (operation <> ''),
  method                text NOT NULL DEFAULT 'POST',
  path                  text NOT NULL DEFAULT '/',
  headers               jsonb NOT NULL DEFAULT '{}'::jsonb,   -- non-secret request headers
  body                  text,
  idempotency_key       text,
  external_ref_pointer  text,              -- JSON pointer into the response, e.g. /sid
  status                text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'dead_lettered')),
  attempts              int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  rate_limited_attempts int NOT NULL DEFAULT 0 CHECK (rate_limited_attempts >= 0),
  attempt_budget_base   int NOT NULL DEFAULT 0 CHECK (attempt_budget_base >= 0),
  next_attempt_at       timestamptz NOT NULL DEFAULT now(),
  lease_owner           text,
  lease_expires_at      timestamptz,
  external_ref          text,
  last_status_code      int,
  last_error            text,
  last_error_code       text,
  response_excerpt      text CHECK (octet_length(response_excerpt) <= 65536),
  trace_id              text,
  started_at            timestamptz,
  completed_at          timestamptz,
  latency_ms            double precision,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CHECK ((status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
) WITH (
  fillfactor = 80,  -- room for HOT updates on the claim/complete path, as courier.deliveries
  -- Vacuumed early, like courier.deliveries (10_core.sql says why).
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 0
);
CREATE UNIQUE INDEX runs_tenant_idempotency_key ON courier.runs (tenant_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_due ON courier.runs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX runs_leased ON courier.runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX runs_connection ON courier.runs (connection_id, status);
CREATE INDEX runs_finished ON courier.runs (completed_at) WHERE completed_at IS NOT NULL;

-- Partitioned by day like courier.delivery_attempts (10_core.sql): retention drops whole
-- partitions. No foreign key to runs: attempts outlive a pruned run until their day is dropped
-- (the views join the runs, so they are invisible meanwhile).
CREATE TABLE courier.run_attempts (
  run_id           text NOT NULL,
  attempt          int NOT NULL CHECK (attempt >= 1),
  started_at       timestamptz NOT NULL,
  duration_ms      double precision NOT NULL DEFAULT 0,
  status_code      int,
  outcome          text NOT NULL,
  error_class      text CHECK (error_class IN ('transient', 'rate_limited', 'auth', 'validation', 'poison',
                                               'blocked_destination')),
  error_code       text,
  retryable        boolean NOT NULL DEFAULT false,
  error_summary    text CHECK (octet_length(error_summary) <= 512),
  response_excerpt text CHECK (octet_length(response_excerpt) <= 65536),
  credential_version int,
  worker           text NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, attempt, started_at)
) PARTITION BY RANGE (started_at);
CREATE TABLE courier.run_attempts_default PARTITION OF courier.run_attempts DEFAULT;

CREATE FUNCTION courier.forbid_run_attempt_changes() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'courier.run_attempts rows are written once and never updated (run %, attempt %)',
    OLD.run_id, OLD.attempt USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER run_attempts_append_only BEFORE UPDATE ON courier.run_attempts
  FOR EACH ROW EXECUTE FUNCTION courier.forbid_run_attempt_changes();

-- The daily partitions (courier.maintain_daily_partitions(), 10_core.sql) from
-- yesterday's to a week ahead's exist from the start; prune_runs() keeps them ahead.
SELECT courier.maintain_daily_partitions('run_attempts', 7, 1);

CREATE TABLE courier.failures (
  id           text PRIMARY KEY DEFAULT courier.new_id('fail_'),
  tenant_id    text NOT NULL,
  source       text NOT NULL CHECK (source IN ('run', 'delivery', 'probe')),
  source_id    text NOT NULL,      -- run, delivery or connection id
  category     text NOT NULL CHECK (category IN ('transient', 'rate_limited', 'auth', 'validation', 'poison')),
  error_code   text NOT NULL,
  message      text CHECK (octet_length(message) <= 512),
  attempt      int,
  -- fail: the work ended failed without escalation (a webhook a receiver rejected)
  next_action  text NOT NULL CHECK (next_action IN ('retry', 'dead_letter', 'escalate', 'fail')),
  trace_id     text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  resolved_at  timestamptz,
  resolution   text
);
CREATE INDEX failures_open ON courier.failures (source, source_id) WHERE resolved_at IS NULL;
CREATE INDEX failures_created ON courier.failures (created_at);

CREATE TABLE courier.escalations (
  id              text PRIMARY KEY DEFAULT courier.new_id('esc_'),
  failure_id      text NOT NULL REFERENCES courier.failures (id) ON DELETE CASCADE,
  tenant_id       text NOT NULL,
  source          text NOT NULL,
  source_id       text NOT NULL,
  reason          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  acknowledged_at timestamptz
);
CREATE INDEX escalations_failure ON courier.escalations (failure_id);

-- Every failure is announced; an escalating one also records an escalation.
CREATE FUNCTION courier.on_failure_recorded() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  escalation_id text;
BEGIN
  PERFORM courier.emit('IntegrationFailed', NEW.tenant_id, NEW.id, NEW.trace_id,
    jsonb_build_object('failure_id', NEW.id, 'source', NEW.source, 'source_id', NEW.source_id,
                       'category', NEW.category, 'error_code', NEW.error_code, 'message', NEW.message,
                       'attempt', NEW.attempt, 'next_action', NEW.next_action));
  IF NEW.next_action = 'escalate' THEN
    INSERT INTO courier.escalations (failure_id, tenant_id, source, source_id, reason)
    VALUES (NEW.id, NEW.tenant_id, NEW.source, NEW.source_id, NEW.category || ': ' || coalesce(NEW.message, NEW.error_code))
    RETURNING id INTO escalation_id;
    PERFORM courier.emit('IntegrationFailureEscalated', NEW.tenant_id, NEW.id, NEW.trace_id,
      jsonb_build_object('escalation_id', escalation_id, 'failure_id', NEW.id, 'source', NEW.source,
                         'source_id', NEW.source_id, 'category', NEW.category, 'error_code', NEW.error_code,
                         'message', NEW.message));
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER failures_announce AFTER INSERT ON courier.failures
  FOR EACH ROW EXECUTE FUNCTION courier.on_failure_recorded();

CREATE FUNCTION courier.on_failure_resolved() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  PERFORM courier.emit('IntegrationFailureResolved', NEW.tenant_id, NEW.id, NEW.trace_id,
    jsonb_build_object('failure_id', NEW.id, 'source', NEW.source, 'source_id', NEW.source_id,
                       'category', NEW.category, 'resolution', NEW.resolution));
  RETURN NULL;
END
$$;
CREATE TRIGGER failures_resolved AFTER UPDATE OF resolved_at ON courier.failures
  FOR EACH ROW WHEN (OLD.resolved_at IS NULL AND NEW.resolved_at IS NOT NULL)
  EXECUTE FUNCTION courier.on_failure_resolved();

-- Monotonic run state, enforced for every writer (daemon, operator, producer).
-- Not SECURITY DEFINER: its current_user check must see the writer (the schema
-- owner only inside courier.replay_run()).
CREATE FUNCTION courier.guard_run_transition() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  IF NEW.attempts < OLD.attempts THEN
    RAISE EXCEPTION 'run %: attempts cannot decrease (% -> %)', OLD.id, OLD.attempts, NEW.attempts
      USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.id <> OLD.id OR NEW.tenant_id <> OLD.tenant_id THEN
    RAISE EXCEPTION 'run %: id and tenant_id cannot change', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.status = OLD.status THEN
    IF OLD.status = 'completed' AND (NEW.external_ref IS DISTINCT FROM OLD.external_ref
                                     OR NEW.completed_at IS DISTINCT FROM OLD.completed_at) THEN
      RAISE EXCEPTION 'run %: a completed run cannot be changed', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
  END IF;
  IF (OLD.status = 'pending' AND NEW.status IN ('running', 'failed'))
     OR (OLD.status = 'running' AND NEW.status IN ('pending', 'completed', 'failed', 'dead_lettered'))
     OR (OLD.status IN ('failed', 'dead_lettered') AND NEW.status = 'pending'
         -- only inside courier.replay_run(), which runs as the schema owner: any session can
         -- set the custom setting, but not be the owner
         AND current_setting('courier.replaying_run', true) = OLD.id
         AND current_user = (SELECT n.nspowner::regrole::text FROM pg_namespace n WHERE n.nspname = 'courier')) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'run %: status cannot go from % to %', OLD.id, OLD.status, NEW.status
    USING ERRCODE = 'check_violation',
          HINT = CASE WHEN OLD.status IN ('failed', 'dead_lettered') THEN 'use courier.replay_run()'
                      WHEN OLD.status = 'completed' THEN 'a completed run is never executed again'
                      ELSE 'runs move pending -> running -> pending | completed | failed | dead_lettered' END;
END
$$;
CREATE TRIGGER runs_monotonic BEFORE UPDATE ON courier.runs
  FOR EACH ROW EXECUTE FUNCTION courier.guard_run_transition();

-- Terminal states are announced on the outbox.
CREATE FUNCTION courier.on_run_finished() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  PERFORM courier.emit(
    CASE NEW.status WHEN 'completed' THEN 'IntegrationRunCompleted'
                    WHEN 'dead_lettered' THEN 'IntegrationRunDeadLettered'
                    ELSE 'IntegrationRunFailed' END,
    NEW.tenant_id, NEW.id, NEW.trace_id,
    jsonb_build_object('run_id', NEW.id, 'connection_id', NEW.connection_id, 'operation', NEW.operation,
                       'status', NEW.status, 'attempts', NEW.attempts, 'external_ref', NEW.external_ref,
                       'status_code', NEW.last_status_code, 'latency_ms', NEW.latency_ms,
                       'error', NEW.last_error));
  RETURN NULL;
END
$$;
CREATE TRIGGER runs_finished AFTER UPDATE OF status ON courier.runs
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('completed', 'failed', 'dead_lettered'))
  EXECUTE FUNCTION courier.on_run_finished();

-- Wakes the daemons' run claimers (courier.notify_when_inserted(), 10_core.sql).
CREATE TRIGGER runs_notify AFTER INSERT ON courier.runs
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION courier.notify_when_inserted('courier_runs');

-- enqueue_run: the producer's call, in its own transaction. The same
-- (tenant_id, idempotency_key) returns the first run's id and creates nothing.
CREATE FUNCTION courier.enqueue_run(tenant_id text, connection_id text, operation text,
                                    method text DEFAULT 'POST', path text DEFAULT '/', body text DEFAULT NULL,
                                    headers jsonb DEFAULT '{}'::jsonb, idempotency_key text DEFAULT NULL,
                                    trace_id text DEFAULT NULL, external_ref_pointer text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_column
DECLARE
  new_id text;
BEGIN
  IF enqueue_run.tenant_id IS NULL OR enqueue_run.tenant_id = '' OR enqueue_run.connection_id IS NULL
     OR enqueue_run.operation IS NULL OR enqueue_run.operation = '' THEN
    RAISE EXCEPTION 'courier.enqueue_run: tenant_id, connection_id and operation are required'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO courier.runs AS r (tenant_id, connection_id, operation, method, path, body, headers,
                                 idempotency_key, trace_id, external_ref_pointer)
  VALUES (enqueue_run.tenant_id, enqueue_run.connection_id, enqueue_run.operation,
          upper(coalesce(enqueue_run.method, 'POST')), coalesce(enqueue_run.path, '/'), enqueue_run.body,
          coalesce(enqueue_run.headers, '{}'::jsonb), enqueue_run.idempotency_key, enqueue_run.trace_id,
          enqueue_run.external_ref_pointer)
  ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING r.id INTO new_id;
  IF new_id IS NULL THEN
    SELECT r.id INTO new_id FROM courier.runs r
    WHERE r.tenant_id = enqueue_run.tenant_id AND r.idempotency_key = enqueue_run.idempotency_key;
  END IF;
  RETURN new_id;
END
$$;

-- replay_run: a failed or dead-lettered run gets a fresh attempt budget (its
-- attempts stay). A completed run is refused: it is never executed again.
CREATE FUNCTION courier.replay_run(run_id text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  current_status text;
BEGIN
  SELECT r.status INTO current_status FROM courier.runs r WHERE r.id = run_id FOR UPDATE;
  IF current_status IS NULL THEN
    RAISE EXCEPTION 'run % does not exist', run_id USING ERRCODE = 'no_data_found';
  END IF;
  IF current_status = 'completed' THEN
    RAISE EXCEPTION 'run % is completed; a completed run is never executed again', run_id
      USING ERRCODE = 'check_violation';
  END IF;
  IF current_status NOT IN ('failed', 'dead_lettered') THEN
    RETURN false;  -- pending or running: nothing to replay
  END IF;
  PERFORM set_config('courier.replaying_run', run_id, true);
  UPDATE courier.runs r
  SET status = 'pending', next_attempt_at = now(), completed_at = NULL, attempt_budget_base = r.attempts,
      rate_limited_attempts = 0, last_error = 'replayed (was ' || r.status || ')', updated_at = now()
  WHERE r.id = run_id;
  PERFORM set_config('courier.replaying_run', '', true);
  RETURN true;
END
$$;

-- Daemon side ----------------------------------------------------------------

-- Records a batch of run attempts. A row applies only while owners[i] still
-- holds the run's lease at attempt attempts[i] - 1 (a late result after a
-- takeover changes nothing). Failed attempts become failures rows; a run that
-- completes or is dead-lettered resolves its open failures. Returns the ids
-- that applied.
-- Two choices found while profiling the delivery outcome statement (issue 6):
-- * LANGUAGE plpgsql, not sql: a LANGUAGE sql function with SET search_path is
--   never inlined, its statement planned again on every call; as plpgsql the
--   plan is cached per session;
-- * the input's columns ride along in UPDATE ... RETURNING: joining the
--   materialised input CTE with the updated CTE (for attempts_written and
--   failures_written) may be nested-looped by the planner, quadratic in the
--   batch.
-- rescues[i]: the row is a rescue of a dead owner's lease, and applies only
-- while that lease is still expired (an owner that renewed it keeps it).
-- tests/pg/runs_schema_test.cpp checks the contract.
CREATE FUNCTION courier.record_run_outcomes(
    worker text, ids text[], attempts int[], owners text[], statuses text[], delays_ms bigint[],
    status_codes int[], outcomes text[], error_classes text[], error_codes text[], retryables boolean[],
    summaries text[], excerpts text[], started_us bigint[], durations_ms float8[], external_refs text[],
    next_actions text[], credential_versions int[], rescues boolean[] DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  RETURN QUERY
  WITH input AS (
    SELECT * FROM unnest(ids, attempts, owners, statuses, delays_ms, status_codes, outcomes, error_classes,
                         error_codes, retryables, summaries, excerpts, started_us, durations_ms, external_refs,
                         next_actions, credential_versions, coalesce(rescues, '{}'))
      AS t(id, attempt, owner, status, delay_ms, status_code, outcome, error_class, error_code, retryable, summary,
           excerpt, started_us, duration_ms, external_ref, next_action, credential_version, rescue)
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
      AND (NOT coalesce(i.rescue, false) OR r.lease_expires_at < now())
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

-- Gives claimed runs back without an attempt (waiting for a limit, a token
-- or the connection; shutdown). delay_ms < 0: wait until the connection is
-- runnable again (the claim skips it meanwhile, so "now" is enough).
CREATE FUNCTION courier.release_runs(worker text, ids text[], delays_ms bigint[], reasons text[])
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  UPDATE courier.runs r
  SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
      next_attempt_at = now() + greatest(i.delay_ms, 0) * interval '1 millisecond',
      last_error = i.reason, updated_at = now()
  FROM unnest(ids, delays_ms, reasons) AS i(id, delay_ms, reason)
  WHERE r.id = i.id AND r.status = 'running' AND r.lease_owner = worker;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- A connection whose credential was refused (401/403 without a token to
-- refresh) is degraded: its runs wait until the credential changes.
CREATE FUNCTION courier.degrade_connection(connection_id text, reason text, credential_version int DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  c courier.connections;
BEGIN
  UPDATE courier.connections x SET status = 'degraded', status_reason = reason, updated_at = now()
  WHERE x.id = connection_id AND x.status = 'active'
    -- a refusal of a version that was rotated away meanwhile says nothing about the active one
    AND (credential_version IS NULL OR x.credential_id IS NULL OR EXISTS (
          SELECT 1 FROM courier.credential_versions v
          WHERE v.credential_id = x.credential_id AND v.status = 'active' AND v.version = credential_version))
  RETURNING * INTO c;
  IF c.id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM courier.emit('IntegrationConnectionDegraded', c.tenant_id, c.id, NULL,
    jsonb_build_object('connection_id', c.id, 'provider', c.provider, 'status', c.status, 'health', c.health,
                       'reason', reason));
  RETURN true;
END
$$;

-- A credential and its version 1, active, in one transaction: for
-- pgcourierctl credential create and POST /api/v1/credentials alike (one set
-- of rules). The caller chose the id (the secret is sealed bound to it) and
-- sealed the secret; only the sealed form and its fingerprint arrive here.
CREATE FUNCTION courier.create_credential(tenant_id text, name text, expires_at timestamptz, credential_id text,
                                          sealed_secret text, fingerprint text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  IF expires_at IS NOT NULL AND expires_at <= now() THEN
    RAISE EXCEPTION 'expires_at is not in the future' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF name ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'name: no control characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO courier.credentials (id, tenant_id, name) VALUES (credential_id, tenant_id, nullif(name, ''));
  INSERT INTO courier.credential_versions (credential_id, version, sealed_secret, fingerprint, status, expires_at,
                                           activated_at)
  VALUES (credential_id, 1, sealed_secret, fingerprint, 'active', expires_at, now());
  RETURN credential_id;
END
$$;

-- The next version of a credential, rotating (the daemon verifies it with the
-- connection's health check, then activates it or marks it failed:
-- finish_rotation), for pgcourierctl credential rotate and the API alike.
-- Refused (object_not_in_prerequisite_state) while revoked, while another
-- version is rotating, or with the active version's own secret. Its number.
CREATE FUNCTION courier.rotate_credential(credential_id text, sealed_secret text, fingerprint text,
                                          expires_at timestamptz) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  cred courier.credentials;
  busy int;
  next_version int;
BEGIN
  SELECT * INTO cred FROM courier.credentials c WHERE c.id = credential_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no credential %', credential_id USING ERRCODE = 'no_data_found';
  END IF;
  IF cred.status = 'revoked' THEN
    RAISE EXCEPTION 'credential % is revoked', credential_id USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT v.version INTO busy FROM courier.credential_versions v
  WHERE v.credential_id = cred.id AND v.status = 'rotating';
  IF busy IS NOT NULL THEN
    RAISE EXCEPTION 'refusing to rotate %: version % is already rotating (the daemon verifies it with a health check, then activates it or marks it failed)',
      credential_id, busy USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT v.version INTO busy FROM courier.credential_versions v
  WHERE v.credential_id = cred.id AND v.status = 'active' AND v.fingerprint = rotate_credential.fingerprint;
  IF busy IS NOT NULL THEN
    RAISE EXCEPTION 'refusing to rotate %: the new secret is the same secret as the active version (%)',
      credential_id, busy USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF expires_at IS NOT NULL AND expires_at <= now() THEN
    RAISE EXCEPTION 'expires_at is not in the future' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO courier.credential_versions AS x (credential_id, version, sealed_secret, fingerprint, status, expires_at)
  SELECT cred.id, max(v.version) + 1, sealed_secret, fingerprint, 'rotating', expires_at
  FROM courier.credential_versions v WHERE v.credential_id = cred.id
  RETURNING x.version INTO next_version;
  UPDATE courier.credentials c SET status = 'rotating', updated_at = now() WHERE c.id = cred.id;
  RETURN next_version;
END
$$;

-- An operator's connection, for pgcourierctl connection create and the API's
-- POST /api/v1/connections alike (one set of rules). `spec` holds the
-- columns by name (provider, base_url, auth_mode, credential_id,
-- api_key_header, token_url, client_id, scopes, health_check_method,
-- health_check_path, health_check_expected_status, policy, status,
-- max_in_flight, rate_limit_per_second, rate_limit_burst); an unknown key,
-- a value of the wrong type and every CHECK and trigger of the table (URLs,
-- tenant ids, the provider registry's rules) are refused with their message.
-- The credential must exist, be the tenant's own and not be revoked. The id.
CREATE FUNCTION courier.create_connection(tenant_id text, spec jsonb, connection_id text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  known constant text[] := ARRAY['provider', 'base_url', 'auth_mode', 'credential_id', 'api_key_header', 'token_url',
    'client_id', 'scopes', 'health_check_method', 'health_check_path', 'health_check_expected_status', 'policy',
    'status', 'max_in_flight', 'rate_limit_per_second', 'rate_limit_burst'];
  unknown text;
  cred courier.credentials;
  id text;
BEGIN
  IF spec IS NULL OR jsonb_typeof(spec) <> 'object' THEN
    RAISE EXCEPTION 'a connection is a JSON object of its settings' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT k INTO unknown FROM jsonb_object_keys(spec) k WHERE k <> ALL (known) ORDER BY k LIMIT 1;
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION '%: unknown field (known: %)', unknown, array_to_string(known, ', ')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT k INTO unknown FROM jsonb_each(spec) e(k, v)
  WHERE k IN ('health_check_expected_status', 'max_in_flight', 'rate_limit_per_second', 'rate_limit_burst')
    AND jsonb_typeof(v) NOT IN ('number', 'null')
     OR k NOT IN ('health_check_expected_status', 'max_in_flight', 'rate_limit_per_second', 'rate_limit_burst')
    AND jsonb_typeof(v) NOT IN ('string', 'null')
  ORDER BY k LIMIT 1;
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION '%: must be a %', unknown,
      CASE WHEN unknown IN ('health_check_expected_status', 'max_in_flight', 'rate_limit_per_second',
                            'rate_limit_burst') THEN 'number' ELSE 'string' END
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF spec ->> 'credential_id' IS NOT NULL THEN
    SELECT * INTO cred FROM courier.credentials c WHERE c.id = spec ->> 'credential_id' FOR SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no credential %', spec ->> 'credential_id' USING ERRCODE = 'no_data_found';
    END IF;
    IF cred.tenant_id IS DISTINCT FROM tenant_id THEN
      RAISE EXCEPTION 'credential % belongs to tenant %; a connection uses a credential of its own tenant',
        cred.id, cred.tenant_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cred.status = 'revoked' THEN
      RAISE EXCEPTION 'credential % is revoked', cred.id USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
  END IF;
  INSERT INTO courier.connections AS x (id, tenant_id, provider, base_url, auth_mode, credential_id, api_key_header,
    token_url, client_id, scopes, health_check_method, health_check_path, health_check_expected_status, policy,
    status, max_in_flight, rate_limit_per_second, rate_limit_burst)
  VALUES (coalesce(nullif(connection_id, ''), courier.new_id('conn_')), tenant_id, spec ->> 'provider',
    spec ->> 'base_url', coalesce(spec ->> 'auth_mode', 'none'), spec ->> 'credential_id', spec ->> 'api_key_header',
    spec ->> 'token_url', spec ->> 'client_id', spec ->> 'scopes', coalesce(spec ->> 'health_check_method', 'GET'),
    spec ->> 'health_check_path', (spec ->> 'health_check_expected_status')::int,
    coalesce(spec ->> 'policy', 'default'), coalesce(spec ->> 'status', 'active'), (spec ->> 'max_in_flight')::int,
    (spec ->> 'rate_limit_per_second')::double precision, (spec ->> 'rate_limit_burst')::int)
  RETURNING x.id INTO id;
  RETURN id;
END
$$;

-- An operator's change of a connection's status, for pgcourierctl and the
-- API alike: 'retire' from any status; 'activate' from pending or degraded,
-- clearing the reason (a retired connection stays retired, an active one is
-- left as it is). {"previous_status", "pending_runs"}; NULL for no such
-- connection.
CREATE FUNCTION courier.set_connection_status(connection_id text, action text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  before text;
BEGIN
  IF action NOT IN ('retire', 'activate') THEN
    RAISE EXCEPTION 'action: retire or activate, not %', action USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT c.status INTO before FROM courier.connections c WHERE c.id = connection_id FOR UPDATE;
  IF before IS NULL THEN
    RETURN NULL;
  END IF;
  IF action = 'retire' AND before <> 'retired' THEN
    UPDATE courier.connections c SET status = 'retired', status_reason = 'retired by an operator', updated_at = now()
    WHERE c.id = connection_id;
  ELSIF action = 'activate' AND before NOT IN ('active', 'retired') THEN
    UPDATE courier.connections c SET status = 'active', status_reason = NULL, updated_at = now()
    WHERE c.id = connection_id;
  END IF;
  RETURN jsonb_build_object('previous_status', before, 'pending_runs',
    (SELECT count(*) FROM courier.runs r WHERE r.connection_id = set_connection_status.connection_id
       AND r.status = 'pending'));
END
$$;

-- A health probe's result. unhealthy_after consecutive failures make the
-- connection unhealthy (its runs wait: the circuit is open) until a probe passes.
CREATE FUNCTION courier.record_probe(connection_id text, ok boolean, status_code int, error_summary text,
                                     unhealthy_after int DEFAULT 1)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  before_health text;
  c courier.connections;
BEGIN
  SELECT x.health INTO before_health FROM courier.connections x WHERE x.id = connection_id FOR UPDATE;
  IF before_health IS NULL THEN
    RETURN NULL;
  END IF;
  UPDATE courier.connections x
  SET consecutive_probe_failures = CASE WHEN ok THEN 0 ELSE x.consecutive_probe_failures + 1 END,
      health = CASE WHEN ok THEN 'healthy'
                    WHEN x.consecutive_probe_failures + 1 >= greatest(unhealthy_after, 1) THEN 'unhealthy'
                    ELSE 'degraded' END,
      last_checked_at = now(),
      last_health_error = CASE WHEN ok THEN NULL ELSE error_summary END,
      updated_at = now()
  WHERE x.id = connection_id
  RETURNING * INTO c;
  IF NOT ok THEN
    INSERT INTO courier.failures (tenant_id, source, source_id, category, error_code, message, next_action)
    VALUES (c.tenant_id, 'probe', c.id, 'transient',
            CASE WHEN status_code IS NULL THEN 'probe_error' ELSE 'probe_status_' || status_code END,
            left(error_summary, 400), 'retry');
  ELSE
    UPDATE courier.failures f SET resolved_at = now(), resolution = 'probe passed'
    WHERE f.source = 'probe' AND f.source_id = c.id AND f.resolved_at IS NULL;
  END IF;
  IF c.health <> before_health AND c.health IN ('degraded', 'unhealthy') THEN
    PERFORM courier.emit('IntegrationConnectionDegraded', c.tenant_id, c.id, NULL,
      jsonb_build_object('connection_id', c.id, 'provider', c.provider, 'status', c.status, 'health', c.health,
                         'reason', error_summary));
  ELSIF c.health <> before_health AND c.health = 'healthy' AND before_health IN ('degraded', 'unhealthy') THEN
    PERFORM courier.emit('IntegrationConnectionRecovered', c.tenant_id, c.id, NULL,
      jsonb_build_object('connection_id', c.id, 'provider', c.provider, 'health', c.health));
  END IF;
  RETURN c.health;
END
$$;

-- Ends a rotation after the daemon's verification call. ok: the rotating
-- version becomes active and the prior one inactive in one statement order
-- that never leaves the credential without an active version; connections
-- degraded by a refused credential run again. Not ok: the prior version
-- stays active and the failure is recorded.
CREATE FUNCTION courier.finish_rotation(version_id text, ok boolean, connection_id text, error_summary text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  v courier.credential_versions;
  cred courier.credentials;
  prior_version int;
BEGIN
  SELECT * INTO v FROM courier.credential_versions x WHERE x.id = version_id AND x.status = 'rotating' FOR UPDATE;
  IF v.id IS NULL THEN
    RETURN false;  -- already finished (another daemon) or withdrawn
  END IF;
  SELECT * INTO cred FROM courier.credentials c WHERE c.id = v.credential_id FOR UPDATE;
  IF ok THEN
    UPDATE courier.credential_versions x SET status = 'inactive', retired_at = now()
    WHERE x.credential_id = v.credential_id AND x.status = 'active'
    RETURNING x.version INTO prior_version;
    UPDATE courier.credential_versions x SET status = 'active', activated_at = now(), verification_error = NULL
    WHERE x.id = v.id;
    UPDATE courier.credentials c SET status = 'active', updated_at = now() WHERE c.id = v.credential_id;
    UPDATE courier.connections c SET status = 'active', status_reason = 'credential rotated to version ' || v.version,
                                     updated_at = now()
    WHERE c.credential_id = v.credential_id AND c.status = 'degraded';
    UPDATE courier.failures f SET resolved_at = now(), resolution = 'credential rotated'
    WHERE f.resolved_at IS NULL AND f.category = 'auth' AND f.source = 'run'
      AND f.source_id IN (SELECT r.id FROM courier.runs r JOIN courier.connections c ON c.id = r.connection_id
                          WHERE c.credential_id = v.credential_id);
    PERFORM courier.emit('CredentialRotated', cred.tenant_id, cred.id, NULL,
      jsonb_build_object('credential_id', cred.id, 'version', v.version, 'previous_version', prior_version,
                         'fingerprint', v.fingerprint, 'verified_with', connection_id));
  ELSE
    UPDATE courier.credential_versions x SET status = 'failed', verification_error = left(error_summary, 500),
                                             retired_at = now()
    WHERE x.id = v.id;
    UPDATE courier.credentials c SET status = 'active', updated_at = now() WHERE c.id = v.credential_id;
    INSERT INTO courier.failures (tenant_id, source, source_id, category, error_code, message, next_action)
    VALUES (cred.tenant_id, 'probe', coalesce(connection_id, cred.id), 'auth', 'rotation_verification_failed',
            left('credential ' || cred.id || ' version ' || v.version || ' failed verification: '
                 || coalesce(error_summary, 'no detail'), 500), 'escalate');
  END IF;
  RETURN true;
END
$$;

-- Operator views -------------------------------------------------------------

CREATE VIEW courier.run_status AS
SELECT r.id, r.tenant_id, r.connection_id, c.provider, r.operation, r.method, courier.redact_path(r.path) AS path,
       r.status, r.attempts,
       r.next_attempt_at, r.lease_owner, r.lease_expires_at, r.external_ref, r.last_status_code, r.last_error,
       r.last_error_code, r.trace_id, r.created_at, r.started_at, r.completed_at, r.latency_ms,
       CASE WHEN r.status = 'pending' AND c.id IS NOT NULL
                 AND (c.status <> 'active' OR c.health = 'unhealthy')
            THEN 'connection ' || c.status || '/' || c.health END AS waiting_for
FROM courier.runs r
LEFT JOIN courier.connections c ON c.id = r.connection_id;

CREATE VIEW courier.run_timeline AS
SELECT a.run_id, r.tenant_id, r.connection_id, r.operation, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.outcome, a.error_class, a.error_code, a.retryable, a.error_summary,
       a.credential_version, a.worker, a.response_excerpt
FROM courier.run_attempts a
JOIN courier.runs r ON r.id = a.run_id;

CREATE VIEW courier.run_dead_letters AS
SELECT r.id AS run_id, r.tenant_id, r.connection_id, r.operation, r.method, courier.redact_path(r.path) AS path,
       r.headers, r.body,
       r.idempotency_key, r.trace_id, r.attempts, r.last_status_code, r.last_error, r.last_error_code,
       r.created_at, r.completed_at AS dead_lettered_at
FROM courier.runs r
WHERE r.status = 'dead_lettered';

CREATE VIEW courier.connection_health AS
SELECT c.id, c.tenant_id, c.provider, courier.redact_url(c.base_url) AS base_url, c.auth_mode, c.status,
       c.status_reason, c.health,
       c.consecutive_probe_failures, c.last_checked_at, c.last_health_error, c.credential_id,
       v.version AS credential_version, v.expires_at AS credential_expires_at,
       (SELECT count(*) FROM courier.runs r WHERE r.connection_id = c.id AND r.status = 'pending') AS runs_waiting,
       (SELECT count(*) FROM courier.failures f
        WHERE f.resolved_at IS NULL AND ((f.source = 'probe' AND f.source_id = c.id)
           OR (f.source = 'run' AND f.source_id IN (SELECT r.id FROM courier.runs r WHERE r.connection_id = c.id))))
         AS open_failures
FROM courier.connections c
LEFT JOIN courier.credential_versions v ON v.credential_id = c.credential_id AND v.status = 'active';

-- Credentials whose active version expires, soonest first.
CREATE VIEW courier.credential_expiry AS
SELECT c.id AS credential_id, c.tenant_id, c.name, c.status, v.version, v.fingerprint, v.expires_at,
       v.expires_at - now() AS expires_in
FROM courier.credentials c
JOIN courier.credential_versions v ON v.credential_id = c.id AND v.status = 'active'
WHERE v.expires_at IS NOT NULL
ORDER BY v.expires_at;

CREATE VIEW courier.open_failures AS
SELECT f.id, f.tenant_id, f.source, f.source_id, f.category, f.error_code, f.message, f.attempt, f.next_action,
       f.trace_id, f.created_at,
       (SELECT count(*) FROM courier.escalations e WHERE e.failure_id = f.id) AS escalations
FROM courier.failures f
WHERE f.resolved_at IS NULL;

-- One row for metrics: runs by state, connections by health, credentials expiring.
CREATE FUNCTION courier.run_queue_metrics(expiry_window interval,
                                          OUT due bigint, OUT scheduled bigint, OUT waiting bigint,
                                          OUT running bigint, OUT dead_lettered bigint,
                                          OUT unhealthy_connections bigint, OUT degraded_connections bigint,
                                          OUT credentials_expiring bigint, OUT open_escalations bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT count(*) FILTER (WHERE r.status = 'pending' AND r.next_attempt_at <= now()
                            AND (c.id IS NULL OR (c.status = 'active' AND c.health <> 'unhealthy'))),
         count(*) FILTER (WHERE r.status = 'pending' AND r.next_attempt_at > now()),
         count(*) FILTER (WHERE r.status = 'pending' AND r.next_attempt_at <= now()
                            AND c.id IS NOT NULL AND (c.status <> 'active' OR c.health = 'unhealthy')),
         count(*) FILTER (WHERE r.status = 'running'),
         (SELECT count(*) FROM courier.runs WHERE status = 'dead_lettered'),
         (SELECT count(*) FROM courier.connections WHERE health = 'unhealthy' AND status <> 'retired'),
         (SELECT count(*) FROM courier.connections WHERE status = 'degraded'),
         (SELECT count(*) FROM courier.credential_versions
          WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at < now() + expiry_window),
         (SELECT count(*) FROM courier.escalations e JOIN courier.failures f ON f.id = e.failure_id
          WHERE e.acknowledged_at IS NULL AND f.resolved_at IS NULL)
  FROM courier.runs r
  LEFT JOIN courier.connections c ON c.id = r.connection_id
  WHERE r.status IN ('pending', 'running')
$$;

-- Retention for runs (their attempts go with their day's partition), failures and the outbox.
CREATE FUNCTION courier.prune_runs(completed_before timestamptz, dead_before timestamptz, batch_size integer DEFAULT 5000)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  removed integer;
BEGIN
  PERFORM courier.maintain_daily_partitions('run_attempts', 7, 0);
  PERFORM courier.drop_daily_partitions('run_attempts', least(completed_before, dead_before));
  WITH victims AS (
    SELECT r.id FROM courier.runs r
    WHERE (r.status IN ('completed', 'failed') AND r.completed_at < completed_before)
       OR (r.status = 'dead_lettered' AND r.completed_at < dead_before)
    ORDER BY r.completed_at
    LIMIT batch_size
    FOR UPDATE SKIP LOCKED
  ), gone AS (
    DELETE FROM courier.runs r USING victims v WHERE r.id = v.id RETURNING r.id
  )
  SELECT count(*) INTO removed FROM gone;
  -- Failures: resolved ones after the completed window, open ones after the dead-letter window
  -- (their runs or deliveries are gone by then).
  DELETE FROM courier.failures f
  WHERE f.id IN (SELECT x.id FROM courier.failures x
                 WHERE x.created_at < completed_before  -- the indexed bound: both cases are older than this
                   AND (x.created_at < dead_before OR x.resolved_at < completed_before)
                 ORDER BY x.created_at LIMIT batch_size);
  -- The outbox grows with every delivery: up to ten batches per call.
  DELETE FROM courier.outbox o
  WHERE o.position IN (SELECT x.position FROM courier.outbox x WHERE x.created_at < completed_before
                       ORDER BY x.position LIMIT batch_size * 10);
  RETURN removed;
END
$$;
