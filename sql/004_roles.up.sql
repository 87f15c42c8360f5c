-- 004_roles: least privilege. Three NOLOGIN group roles; grant them to the
-- login roles of your systems (GRANT courier_producer TO billing_app;).
--   courier_producer  publish events (courier.publish) for its own tenants only
--   courier_operator  read the status views, pause/resume/disable/replay
--   courier_daemon    what pgcourierd needs, nothing more
-- Producers and operators never see signing secrets. Creating roles needs
-- CREATEROLE; a migrator without it gets a NOTICE and no roles (the rest of
-- the schema works the same).

-- Which tenants each producer role may publish for ('*' = any).
CREATE TABLE courier.producer_tenants (
  role_name text NOT NULL,
  tenant_id text NOT NULL,
  PRIMARY KEY (role_name, tenant_id)
);

-- publish and the fan-out run with the schema owner's rights, so a producer
-- needs no rights on the tables; publish checks the caller's tenants.
CREATE OR REPLACE FUNCTION courier.caller_may_publish(tenant text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier AS $$
  SELECT
    -- not a producer (the owner, a superuser, the daemon, a migration): unrestricted
    NOT EXISTS (SELECT 1 FROM pg_roles r
                WHERE r.rolname = 'courier_producer' AND pg_has_role(session_user, r.oid, 'MEMBER'))
    OR (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)
    OR EXISTS (SELECT 1 FROM courier.producer_tenants p
               WHERE (p.tenant_id = tenant OR p.tenant_id = '*')
                 AND EXISTS (SELECT 1 FROM pg_roles r
                             WHERE r.rolname = p.role_name AND pg_has_role(session_user, r.oid, 'MEMBER')))
$$;

CREATE OR REPLACE FUNCTION courier.check_event_tenant() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier AS $$
BEGIN
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

ALTER FUNCTION courier.publish(text, text, jsonb, text, text, text)
  SECURITY DEFINER SET search_path = pg_catalog, courier;
ALTER FUNCTION courier.fan_out_event() SECURITY DEFINER SET search_path = pg_catalog, courier;
ALTER FUNCTION courier.notify_deliveries() SECURITY DEFINER SET search_path = pg_catalog, courier;
ALTER FUNCTION courier.event_type_matches(text[], text) SET search_path = pg_catalog, courier;
ALTER FUNCTION courier.new_id(text) SET search_path = pg_catalog, courier;

-- The operating functions change tables operators cannot touch directly.
ALTER FUNCTION courier.pause_subscription(text, text) SECURITY DEFINER SET search_path = pg_catalog, courier;
ALTER FUNCTION courier.resume_subscription(text) SECURITY DEFINER SET search_path = pg_catalog, courier;
ALTER FUNCTION courier.disable_subscription(text, text) SECURITY DEFINER SET search_path = pg_catalog, courier;
ALTER FUNCTION courier.replay_deliveries(text, text, text, timestamptz, timestamptz, text[], boolean, boolean)
  SECURITY DEFINER SET search_path = pg_catalog, courier;
ALTER FUNCTION courier.redeliver_events(text, text, timestamptz, integer)
  SECURITY DEFINER SET search_path = pg_catalog, courier;

-- Functions are executable by PUBLIC by default; take that back, except for
-- the two that column defaults and the fan-out use (harmless, no side effects).
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA courier FROM PUBLIC;
GRANT EXECUTE ON FUNCTION courier.new_id(text), courier.event_type_matches(text[], text) TO PUBLIC;

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

  EXECUTE 'GRANT USAGE ON SCHEMA courier TO courier_producer, courier_operator, courier_daemon';

  -- Producers: publish (or a plain INSERT of an event), nothing to read.
  EXECUTE 'GRANT EXECUTE ON FUNCTION courier.publish(text, text, jsonb, text, text, text) TO courier_producer';
  EXECUTE 'GRANT INSERT ON courier.events TO courier_producer';

  -- Operators: status views and the operating functions; no table, no secret.
  EXECUTE 'GRANT SELECT ON courier.delivery_status, courier.dead_letters, courier.queue_summary,
                           courier.delivery_timeline, courier.subscription_health, courier.queue_depth,
                           courier.queue_lag TO courier_operator';
  EXECUTE 'GRANT EXECUTE ON FUNCTION courier.pause_subscription(text, text), courier.resume_subscription(text),
                                     courier.disable_subscription(text, text),
                                     courier.replay_deliveries(text, text, text, timestamptz, timestamptz, text[], boolean, boolean),
                                     courier.redeliver_events(text, text, timestamptz, integer),
                                     courier.queue_metrics() TO courier_operator';

  -- The daemon: claim, complete, rescue, maintain.
  EXECUTE 'GRANT SELECT ON courier.schema_migrations, courier.events, courier.subscription_secrets TO courier_daemon';
  EXECUTE 'GRANT SELECT, UPDATE ON courier.subscriptions TO courier_daemon';
  EXECUTE 'GRANT SELECT, UPDATE, DELETE ON courier.deliveries TO courier_daemon';
  EXECUTE 'GRANT SELECT, INSERT, DELETE ON courier.delivery_attempts TO courier_daemon';
  EXECUTE 'GRANT DELETE ON courier.events TO courier_daemon';
  EXECUTE 'GRANT EXECUTE ON FUNCTION courier.pause_subscription(text, text), courier.disable_subscription(text, text),
                                     courier.queue_metrics(), courier.prune(timestamptz, timestamptz, integer)
           TO courier_daemon';
END
$roles$;
