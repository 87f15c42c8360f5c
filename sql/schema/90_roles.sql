-- 90_roles: least privilege, in one place: which tenants a producer may write
-- for (courier.producer_tenants and the checks on courier.events and
-- courier.runs), the three NOLOGIN group roles and every GRANT and REVOKE of
-- the schema. Grant the roles to the login roles of your systems
-- (GRANT courier_producer TO billing_app;).
--   courier_producer  publish events (courier.publish) and enqueue runs for its own tenants only
--   courier_operator  read the status views, pause/resume/disable/replay, and
--                     manage subscriptions (create, update, rotate and revoke secrets)
--   courier_daemon    what pgcourierd needs, nothing more
-- Producers and operators never see signing secrets or credentials. Creating
-- roles needs CREATEROLE; a migrator without it gets a NOTICE and no roles (the
-- rest of the schema works the same).
-- This file comes last: REVOKE ... ON ALL FUNCTIONS below must see every
-- function of the files before it.

-- Which tenants each producer role may publish for ('*' = any).
CREATE TABLE courier.producer_tenants (
  role_name text NOT NULL,
  tenant_id text NOT NULL,
  PRIMARY KEY (role_name, tenant_id)
);

-- publish and the fan-out run with the schema owner's rights, so a producer
-- needs no rights on the tables; publish checks the caller's tenants.
-- plpgsql, not LANGUAGE sql: this runs in a BEFORE INSERT trigger of every
-- event and run, and a LANGUAGE sql function with SET search_path is never
-- inlined, its query planned again on every call; as plpgsql its plan is
-- cached per session (so is event_type_matches', 10_core.sql). Measured with
-- pgbench (one-row INSERT INTO courier.events per transaction, 2
-- subscriptions, fsync on, this 2-core machine): 1 client 787 -> 986
-- transactions/s, 8 clients 1,052 -> 1,659, with the same results for every
-- input (tests/pg and the role tests prove them).
CREATE FUNCTION courier.caller_may_publish(tenant text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  RETURN
    -- not a producer (the owner, a superuser, the daemon, a migration): unrestricted
    NOT EXISTS (SELECT 1 FROM pg_roles r
                WHERE r.rolname = 'courier_producer' AND pg_has_role(session_user, r.oid, 'MEMBER'))
    OR (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)
    OR EXISTS (SELECT 1 FROM courier.producer_tenants p
               WHERE (p.tenant_id = tenant OR p.tenant_id = '*')
                 AND EXISTS (SELECT 1 FROM pg_roles r
                             WHERE r.rolname = p.role_name AND pg_has_role(session_user, r.oid, 'MEMBER')));
END
$$;

-- Every new event: a producer writes only for its own tenants, an id it
-- chose itself is a token (it is sent as the webhook-id header: CR, LF or a
-- space there would let it write headers, or a second request, of its own),
-- and its payload is no larger than settings.max_payload_bytes, measured
-- here (payload_bytes), so no claim ever fetches more than the daemon asked for.
-- The measure is the payload's text, which is what a claim fetches: not
-- pg_column_size, which gives a compressed size for a value copied from
-- another table (INSERT ... SELECT), so a 100 MB payload of one repeated
-- character would count as 1 MB.
CREATE FUNCTION courier.check_event_tenant() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  max_bytes bigint;
BEGIN
  NEW.payload_bytes := octet_length(NEW.payload::text);
  SELECT s.value INTO max_bytes FROM courier.settings s WHERE s.name = 'max_payload_bytes';
  IF NEW.payload_bytes > max_bytes THEN
    RAISE EXCEPTION 'courier.events.payload is % bytes, over the limit of % bytes (courier.settings max_payload_bytes)',
      NEW.payload_bytes, max_bytes
      USING ERRCODE = 'program_limit_exceeded',
            HINT = 'publish a reference to the data instead, or raise the limit as the schema owner: '
                   'UPDATE courier.settings SET value = ... WHERE name = ''max_payload_bytes''';
  END IF;
  IF NEW.id !~ '^[A-Za-z0-9_][A-Za-z0-9_.:~-]{0,254}$' THEN
    RAISE EXCEPTION 'courier.events.id must be 1 to 255 characters of A-Z a-z 0-9 _ . : ~ -, not starting with . : ~ or - (it is sent as the webhook-id header)'
      USING ERRCODE = 'check_violation',
            DETAIL = format('the id given has %s characters', length(NEW.id)),
            HINT = 'leave id out and courier.new_id(''evt_'') generates one';
  END IF;
  IF NOT courier.caller_may_publish(NEW.tenant_id) THEN
    RAISE EXCEPTION 'role % may not publish events for tenant %', session_user, NEW.tenant_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'INSERT INTO courier.producer_tenants (role_name, tenant_id) VALUES (...) as an administrator';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER events_check_tenant BEFORE INSERT ON courier.events
  FOR EACH ROW EXECUTE FUNCTION courier.check_event_tenant();

-- Producers may insert runs only for their tenants (same table as publish),
-- only on a connection of that tenant, and with an idempotency key that can
-- go into a header as it is (it is sent as Idempotency-Key).
CREATE FUNCTION courier.check_run_tenant() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  IF NOT courier.caller_may_publish(NEW.tenant_id) THEN
    RAISE EXCEPTION 'role % may not enqueue runs for tenant %', session_user, NEW.tenant_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- The same answer for another tenant's connection and for none at all, so
  -- a producer cannot learn which connection ids exist.
  IF NOT EXISTS (SELECT 1 FROM courier.connections c WHERE c.id = NEW.connection_id AND c.tenant_id = NEW.tenant_id) THEN
    RAISE EXCEPTION 'courier.runs.connection_id: % is not a connection of tenant %', NEW.connection_id, NEW.tenant_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  IF NEW.idempotency_key ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'courier.runs.idempotency_key must not contain control characters (it is sent as the Idempotency-Key header)'
      USING ERRCODE = 'check_violation';
  END IF;
  -- A producer's INSERT cannot start a run anywhere but at the beginning.
  IF NEW.status <> 'pending' OR NEW.attempts <> 0 OR NEW.lease_owner IS NOT NULL OR NEW.external_ref IS NOT NULL THEN
    RAISE EXCEPTION 'a new run starts pending with no attempts, lease or external_ref'
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER runs_check_tenant BEFORE INSERT ON courier.runs
  FOR EACH ROW EXECUTE FUNCTION courier.check_run_tenant();

-- Functions are executable by PUBLIC by default; take that back, except for
-- the pure ones that column defaults, the fan-out and the views use
-- (harmless, no side effects).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA courier FROM PUBLIC;
GRANT EXECUTE ON FUNCTION courier.new_id(text), courier.event_type_matches(text[], text),
                          courier.redact_url(text), courier.redact_path(text) TO PUBLIC;
-- notify_when_inserted kept PostgreSQL's default EXECUTE for PUBLIC in the
-- databases migrated before this baseline (it was created after the last
-- REVOKE above); kept so the baseline grants exactly the same. Harmless: a
-- trigger function cannot be called outside a trigger.
GRANT EXECUTE ON FUNCTION courier.notify_when_inserted() TO PUBLIC;
-- The checks of 50_management.sql are pure and run in the triggers of
-- whoever writes a subscription, connection or credential; anyone may also
-- call them to validate input before writing it.
GRANT EXECUTE ON FUNCTION courier.check_endpoint_url(text, text), courier.check_tenant_id(text, text),
                          courier.check_identifier(text, text), courier.quote_untrusted(text),
                          courier.check_event_types(text[], text), courier.check_policy_name(text, text),
                          courier.check_sealed_secret(text, text)
  TO PUBLIC;

-- The roles, and the privileges of the delivery path. Only a migrator that
-- may create roles grants these (the privileges further down are granted
-- whenever the role exists): that is how the databases migrated before this
-- baseline were set up, kept as is (sql/README.md).
DO $roles$
DECLARE
  may_create boolean;
BEGIN
  SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles WHERE rolname = current_user;
  IF NOT may_create THEN
    RAISE NOTICE 'pgcourier: % cannot create roles; skipping courier_producer/courier_operator/courier_daemon', current_user;
    RETURN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_producer') THEN
    CREATE ROLE courier_producer NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_operator') THEN
    CREATE ROLE courier_operator NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_daemon') THEN
    CREATE ROLE courier_daemon NOLOGIN;
  END IF;

  GRANT USAGE ON SCHEMA courier TO courier_producer, courier_operator, courier_daemon;

  -- Producers: publish (or a plain INSERT of an event), nothing to read.
  GRANT EXECUTE ON FUNCTION courier.publish(text, text, jsonb, text, text, text, jsonb) TO courier_producer;
  GRANT INSERT ON courier.events TO courier_producer;

  -- Operators: status views and the operating functions; no table, no secret.
  GRANT SELECT ON courier.delivery_status, courier.dead_letters, courier.queue_summary,
                  courier.subscription_health, courier.queue_depth, courier.queue_lag TO courier_operator;
  GRANT EXECUTE ON FUNCTION courier.pause_subscription(text, text), courier.resume_subscription(text),
                            courier.disable_subscription(text, text),
                            courier.replay_deliveries(text, text, text, timestamptz, timestamptz, text[], boolean, boolean),
                            courier.redeliver_events(text, text, timestamptz, integer),
                            courier.queue_metrics() TO courier_operator;

  -- The daemon: claim, complete, rescue, maintain.
  -- Exactly the columns it writes: a daemon's account cannot point a
  -- subscription at another URL or move work to another tenant.
  GRANT SELECT ON courier.schema_migrations, courier.events, courier.subscription_secrets TO courier_daemon;
  GRANT SELECT, UPDATE (consecutive_failures, failing_since, last_success_at, last_failure_at, last_error)
    ON courier.subscriptions TO courier_daemon;
  GRANT SELECT, DELETE, UPDATE (status, attempts, next_attempt_at, last_status_code, last_error, updated_at,
                                completed_at)
    ON courier.deliveries TO courier_daemon;
  -- Claims, heartbeats and releases write the queue's lease and due time; the
  -- triggers of courier.deliveries write the rest. Retention reads the dead
  -- letters and moves its cursor.
  -- The queue: claims and heartbeats write the lease; the outcome statement
  -- releases a row with its next due time and attempt, or deletes it.
  GRANT SELECT, DELETE, UPDATE (lease_owner, lease_expires_at, due_at, attempts, retry)
    ON courier.delivery_queue TO courier_daemon;
  GRANT SELECT, INSERT ON courier.delivery_dead_letters TO courier_daemon;
  GRANT SELECT ON courier.settings TO courier_daemon;
  GRANT SELECT, UPDATE ON courier.prune_cursor TO courier_daemon;
  GRANT DELETE ON courier.events TO courier_daemon;
  GRANT EXECUTE ON FUNCTION courier.pause_subscription(text, text), courier.disable_subscription(text, text),
                            courier.queue_metrics(), courier.prune(timestamptz, timestamptz, integer),
                            courier.remove_deliveries(text[])
    TO courier_daemon;
END
$roles$;

-- The attempts (partitioned by day) and the integration runs: granted to each
-- role that exists, whoever migrates.
DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_producer') THEN
    -- Producers enqueue runs for their tenants; they read nothing (no credentials, no other tenant's runs).
    GRANT EXECUTE ON FUNCTION courier.enqueue_run(text, text, text, text, text, text, jsonb, text, text, text)
      TO courier_producer;
    -- Only the request's own columns: state, budget and lease columns keep their defaults.
    GRANT INSERT (tenant_id, connection_id, operation, method, path, headers, body, idempotency_key,
                  external_ref_pointer, trace_id) ON courier.runs TO courier_producer;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_operator') THEN
    GRANT SELECT ON courier.delivery_timeline TO courier_operator;
    GRANT SELECT ON courier.run_status, courier.run_timeline, courier.run_dead_letters, courier.connection_health,
                    courier.credential_expiry, courier.open_failures, courier.outbox, courier.escalations
      TO courier_operator;
    GRANT EXECUTE ON FUNCTION courier.replay_run(text), courier.run_queue_metrics(interval) TO courier_operator;
    -- The management API of 50_management.sql.
    GRANT EXECUTE ON FUNCTION courier.create_subscription(text, text, text[], text, text, text, text, text),
                              courier.update_subscription(text, jsonb),
                              courier.rotate_subscription_secret(text, text, text, interval),
                              courier.revoke_subscription_secrets(text, text),
                              courier.create_connection(text, jsonb, text),
                              courier.create_credential(text, text, timestamptz, text, text, text),
                              courier.rotate_credential(text, text, text, timestamptz),
                              courier.set_connection_status(text, text)
      TO courier_operator;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_daemon') THEN
    GRANT SELECT, INSERT, DELETE ON courier.delivery_attempts TO courier_daemon;
    GRANT EXECUTE ON FUNCTION courier.maintain_attempt_partitions(integer, integer),
                              courier.drop_attempt_partitions(timestamptz) TO courier_daemon;
    GRANT SELECT ON courier.connections, courier.credentials, courier.credential_versions, courier.runs,
                    courier.outbox TO courier_daemon;
    -- record_outcomes writes delivery events and failures in the same statement as the outcomes.
    GRANT INSERT ON courier.outbox, courier.failures TO courier_daemon;
    GRANT USAGE ON SEQUENCE courier.outbox_position_seq TO courier_daemon;
    GRANT UPDATE (status, lease_owner, lease_expires_at, started_at, updated_at) ON courier.runs TO courier_daemon;
    GRANT EXECUTE ON FUNCTION courier.record_run_outcomes(text, text[], int[], text[], text[], bigint[], int[], text[],
                                                          text[], text[], boolean[], text[], text[], bigint[],
                                                          float8[], text[], text[], int[], boolean[]),
                              courier.release_runs(text, text[], bigint[], text[]),
                              courier.degrade_connection(text, text, int),
                              courier.record_probe(text, boolean, int, text, int),
                              courier.finish_rotation(text, boolean, text, text),
                              courier.run_queue_metrics(interval),
                              courier.prune_runs(timestamptz, timestamptz, integer)
      TO courier_daemon;
  END IF;
END
$grants$;

-- The provider registry, rotation policies and KPIs (70_providers.sql).
DO $grants_providers$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_operator') THEN
    GRANT SELECT ON courier.provider_registry, courier.api_clients TO courier_operator;
    GRANT EXECUTE ON FUNCTION courier.create_provider(text, text, text, text, text, text[], double precision, int,
                                                      text, text),
                              courier.set_provider_status(text, text, text, text),
                              courier.create_api_client(text, text, text, text[], text, text, text),
                              courier.set_api_client_status(text, text, text),
                              courier.find_provider(text, text),
                              courier.set_rotation_policy(text, interval, text, text),
                              courier.clear_rotation_policy(text, text),
                              courier.create_kpi_threshold(text, text, double precision, text),
                              courier.delete_kpi_threshold(text, text)
      TO courier_operator;
    GRANT SELECT ON courier.credential_rotation_policies, courier.kpi_snapshots, courier.kpi_thresholds
      TO courier_operator;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_daemon') THEN
    -- claim_runs joins the connection's provider and takes tokens of its budget.
    GRANT SELECT ON courier.providers TO courier_daemon;
    GRANT EXECUTE ON FUNCTION courier.take_provider_token(text) TO courier_daemon;
    -- The maintenance leader's rotation policies.
    GRANT EXECUTE ON FUNCTION courier.start_due_rotations(text, int),
                              courier.store_rotation_result(text, text, text, text),
                              courier.fail_rotation(text, text, text),
                              courier.maintain_kpis(integer) TO courier_daemon;
  END IF;
END
$grants_providers$;
-- The event side of issue 17 (60_catalog.sql): the pure checks and the
-- schema validator for anyone (the fan-out and the triggers call them, and a
-- producer may validate a payload before publishing it); the catalog and the
-- feed for operators, who register event types through create_event_type()
-- and read the catalog. Producers publish labels through publish() and need
-- nothing more.
GRANT EXECUTE ON FUNCTION courier.check_labels(jsonb, text), courier.check_scope(jsonb, text),
                          courier.check_filter(text, text), courier.check_json_schema(jsonb, text, integer),
                          courier.json_schema_error(jsonb, jsonb, text), courier.json_path_step(text, text)
  TO PUBLIC;
DO $events$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_operator') THEN
    GRANT SELECT ON courier.event_types TO courier_operator;
    GRANT EXECUTE ON FUNCTION courier.create_event_type(text, text, text, jsonb, jsonb, boolean),
                              courier.event_type_schema(text, text), courier.send_example(text, text),
                              courier.event_feed(text, text, integer, text, jsonb, timestamptz, timestamptz),
                              courier.export_deliveries(text, text, integer, timestamptz, timestamptz),
                              courier.dead_letter_page(text, text, text, integer, timestamptz, timestamptz),
                              courier.import_event(text, text), courier.import_events(text, text[]),
                              courier.parse_cursor(text, text),
                              courier.show_dead_letter(text),
                              courier.rotate_subscription_key(text, text, text, interval, text)
      TO courier_operator;
  END IF;
END
$events$;
-- pgcourier-gateway (80_gateway.sql): courier_gateway verifies API tokens
-- and calls the api_* functions, which check the token's scope and then call
-- the management functions; it reads and writes no table itself. Tokens are
-- created, listed and revoked by the schema owner (pgcourierctl api-token).
DO $gateway$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'courier_gateway') THEN
    IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
      RAISE NOTICE 'pgcourier: % cannot create roles; skipping courier_gateway', current_user;
      RETURN;
    END IF;
    CREATE ROLE courier_gateway NOLOGIN;
  END IF;
  GRANT USAGE ON SCHEMA courier TO courier_gateway;
  GRANT EXECUTE ON FUNCTION courier.verify_api_token(text), courier.api_schema_version(),
                            courier.api_subscription(text, text), courier.api_subscriptions(text, text, integer),
                            courier.api_create_subscription(text, jsonb, text, text, text, text),
                            courier.api_update_subscription(text, text, jsonb),
                            courier.api_set_subscription_state(text, text, text, text),
                            courier.api_rotate_subscription_secret(text, text, text, text, interval),
                            courier.api_revoke_subscription_secrets(text, text, text),
                            courier.api_publish(text, jsonb, text),
                            courier.api_events(text, text, integer, text),
                            courier.api_deliveries(text, jsonb, text, integer), courier.api_delivery(text, text),
                            courier.api_dead_letters(text, jsonb, text, integer),
                            courier.api_replay(text, jsonb, boolean),
                            courier.api_enqueue_run(text, jsonb, text), courier.api_run(text, text),
                            courier.api_runs(text, jsonb, text, integer), courier.api_connection(text, text),
                            courier.api_connections(text, text, integer),
                            courier.api_create_connection(text, jsonb, text),
                            courier.api_set_connection_status(text, text, text),
                            courier.api_escalations(text, jsonb, text, integer),
                            courier.api_acknowledge_escalation(text, text),
                            courier.api_ingress_source(text), courier.api_ingress_accept(text, text, text, jsonb),
                            courier.api_ingress_reject(text, text, text), courier.api_overview(text),
                            courier.api_credential(text, text),
                            courier.api_create_credential(text, text, text, timestamptz, text, text, text),
                            courier.api_rotate_credential(text, text, text, text, timestamptz),
                            courier.api_retire_credential(text, text), courier.api_redeliver(text, text, jsonb)
    TO courier_gateway;
END
$gateway$;
