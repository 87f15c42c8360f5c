-- 70_providers: the integration side of issue 17, in three parts:
--   1. the provider registry and its API clients (below);
--   2. credential rotation policies ("Rotation policies");
--   3. KPI snapshots and thresholds ("KPI snapshots and thresholds").
-- The maintenance leader's hooks are courier.start_due_rotations() and
-- courier.maintain_kpis(), each called by one statement of
-- daemon/store/queries/ on the existing maintenance tick.
--
-- A provider is a vendor API as the platform knows it: a key unique in its
-- scope (a tenant's own, or global when tenant_id is NULL), a category, an
-- auth model, a base URL, declared capabilities (the operations a run may
-- name, e.g. 'sms.send') and a rate-limit profile: one token bucket in
-- courier.provider_budgets shared by all the provider's connections across
-- all daemons. An API client is a named, semantically versioned client of
-- one provider, with capabilities that are a subset of the provider's.
--
-- Invariants, enforced here for every writer (pgcourierctl, SQL, a gateway):
--   * status moves registered -> active -> deprecated (or registered ->
--     deprecated); deprecated is final, for providers and API clients;
--   * a provider becomes active only while it has an active API client;
--   * deprecating (or deleting) a provider's last active API client
--     deprecates the provider;
--   * an API client's capabilities are a subset of its provider's, and a
--     provider cannot drop a capability one of its clients declares;
--   * a connection that names a provider (courier.connections.provider_id,
--     or, when that is NULL, a provider key in courier.connections.provider
--     that matches the tenant's own or a global provider) needs that provider
--     active when it is created or moved to it: a registered or deprecated
--     provider accepts no new connections. A connection whose provider text
--     matches no registered provider keeps working as before (unlinked);
--   * a run's operation must be a capability of its connection's provider
--     (checked at INSERT, so at courier.enqueue_run and a plain INSERT alike).
-- Tenant scoping: a tenant's connections and API clients may use its own
-- providers and global ones, never another tenant's (which look exactly like
-- ones that do not exist). Grants are at the end of 90_roles.sql.

CREATE TABLE courier.providers (
  id                    text PRIMARY KEY DEFAULT courier.new_id('prv_'),
  tenant_id             text CHECK (tenant_id <> ''),   -- NULL: a global provider, usable by every tenant
  key                   text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  name                  text CHECK (octet_length(name) <= 200),
  category              text NOT NULL DEFAULT 'other' CHECK (category ~ '^[a-z][a-z0-9_]{0,31}$'),
  auth_model            text NOT NULL DEFAULT 'none'
                        CHECK (auth_model IN ('none', 'api_key', 'bearer', 'basic', 'oauth2_client_credentials')),
  base_url              text CHECK (base_url ~* '^https?://[^/?#]+'),
  status                text NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'active', 'deprecated')),
  status_reason         text,
  capabilities          text[] NOT NULL DEFAULT '{}',
  rate_limit_per_second double precision CHECK (rate_limit_per_second > 0 AND rate_limit_per_second <= 1000000),
  rate_limit_burst      int CHECK (rate_limit_burst > 0 AND rate_limit_burst <= 1000000),
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CHECK (rate_limit_burst IS NULL OR rate_limit_per_second IS NOT NULL),
  -- One key per scope: a tenant's own 'twilio' and the global 'twilio' may both exist (the tenant's wins).
  UNIQUE NULLS NOT DISTINCT (tenant_id, key)
);

-- A capability: dotted lower-case words, e.g. 'sms.send', 'payments.refund.create'.
CREATE FUNCTION courier.check_capabilities(capabilities text[], field text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  c text;
BEGIN
  IF capabilities IS NULL THEN
    RETURN capabilities;
  END IF;
  FOREACH c IN ARRAY capabilities LOOP
    IF c IS NULL OR c !~ '^[a-z][a-z0-9_-]{0,63}(\.[a-z][a-z0-9_-]{0,63}){0,7}$' THEN
      RAISE EXCEPTION '%: % is not a capability: dotted lower-case words, e.g. "sms.send"',
        field, courier.quote_untrusted(c)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  RETURN capabilities;
END
$$;

-- The provider's rate-limit budget: one row, refilled lazily by whoever takes
-- a token (courier.take_provider_token), locked for the moment of the take,
-- so every daemon spends from the same bucket.
CREATE TABLE courier.provider_budgets (
  provider_id  text PRIMARY KEY REFERENCES courier.providers (id) ON DELETE CASCADE,
  tokens       double precision NOT NULL,
  refilled_at  timestamptz NOT NULL
);

CREATE TABLE courier.api_clients (
  id            text PRIMARY KEY DEFAULT courier.new_id('apc_'),
  provider_id   text NOT NULL REFERENCES courier.providers (id) ON DELETE CASCADE,
  tenant_id     text,            -- the provider's (set by the trigger): scopes listings
  name          text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  -- Semantic Versioning 2.0.0: MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]
  version       text NOT NULL
                CHECK (version ~ '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$'),
  capabilities  text[] NOT NULL DEFAULT '{}',
  status        text NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'active', 'deprecated')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider_id, name, version)
);
CREATE INDEX api_clients_active ON courier.api_clients (provider_id) WHERE status = 'active';

-- Status moves forward only; deprecated is final.
CREATE FUNCTION courier.check_registry_transition(what text, id text, old_status text, new_status text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  IF old_status IS DISTINCT FROM new_status AND NOT (
       (old_status = 'registered' AND new_status IN ('active', 'deprecated'))
       OR (old_status = 'active' AND new_status = 'deprecated')) THEN
    RAISE EXCEPTION '% %: status cannot go from % to %', what, id, old_status, new_status
      USING ERRCODE = 'check_violation',
            HINT = CASE WHEN old_status = 'deprecated' THEN 'deprecated is final: register a new one'
                        ELSE 'status moves registered -> active -> deprecated' END;
  END IF;
END
$$;

CREATE FUNCTION courier.guard_provider() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  missing text[];
BEGIN
  PERFORM courier.check_tenant_id(NEW.tenant_id, 'courier.providers.tenant_id');
  PERFORM courier.check_capabilities(NEW.capabilities, 'courier.providers.capabilities');
  IF NEW.base_url IS NOT NULL THEN
    PERFORM courier.check_endpoint_url(NEW.base_url, 'courier.providers.base_url');
  END IF;
  NEW.capabilities := ARRAY(SELECT DISTINCT c FROM unnest(NEW.capabilities) c ORDER BY c);
  IF TG_OP = 'INSERT' THEN
    IF NEW.status = 'active' THEN
      RAISE EXCEPTION 'provider %: a new provider starts registered; it becomes active only with an active API client',
        NEW.key USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
  END IF;
  IF NEW.id <> OLD.id OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.key <> OLD.key THEN
    RAISE EXCEPTION 'provider %: id, tenant_id and key cannot change', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  PERFORM courier.check_registry_transition('provider', OLD.id, OLD.status, NEW.status);
  IF NEW.status = 'active' AND OLD.status <> 'active'
     AND NOT EXISTS (SELECT 1 FROM courier.api_clients a WHERE a.provider_id = NEW.id AND a.status = 'active') THEN
    RAISE EXCEPTION 'provider % (%) has no active API client; a provider becomes active only with one',
      NEW.key, NEW.id
      USING ERRCODE = 'check_violation', HINT = 'activate one of its API clients first (pgcourierctl api-client activate)';
  END IF;
  SELECT array_agg(DISTINCT c ORDER BY c) INTO missing
  FROM courier.api_clients a, unnest(a.capabilities) c
  WHERE a.provider_id = NEW.id AND a.status <> 'deprecated' AND NOT (c = ANY (NEW.capabilities));
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'provider %: capabilities % are declared by its API clients and cannot be dropped',
      NEW.key, array_to_string(missing, ', ') USING ERRCODE = 'check_violation';
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
CREATE TRIGGER providers_guard BEFORE INSERT OR UPDATE ON courier.providers
  FOR EACH ROW EXECUTE FUNCTION courier.guard_provider();

CREATE FUNCTION courier.guard_api_client() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  p courier.providers;
  extra text[];
BEGIN
  -- Lock the provider: its capabilities and status stay as read until this commits.
  SELECT * INTO p FROM courier.providers x WHERE x.id = NEW.provider_id FOR SHARE;
  IF p.id IS NULL THEN
    RAISE EXCEPTION 'courier.api_clients.provider_id: no provider %', NEW.provider_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  IF NEW.version !~ '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$' THEN
    RAISE EXCEPTION 'courier.api_clients.version: % is not a semantic version (MAJOR.MINOR.PATCH, e.g. 4.1.0 or 2.0.0-beta.1)',
      courier.quote_untrusted(NEW.version) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM courier.check_capabilities(NEW.capabilities, 'courier.api_clients.capabilities');
  NEW.capabilities := ARRAY(SELECT DISTINCT c FROM unnest(NEW.capabilities) c ORDER BY c);
  NEW.tenant_id := p.tenant_id;
  SELECT array_agg(c ORDER BY c) INTO extra FROM unnest(NEW.capabilities) c WHERE NOT (c = ANY (p.capabilities));
  IF extra IS NOT NULL THEN
    RAISE EXCEPTION 'API client %@%: capabilities % are not capabilities of provider % (it declares: %)',
      NEW.name, NEW.version, array_to_string(extra, ', '), p.key,
      coalesce(nullif(array_to_string(p.capabilities, ', '), ''), 'none')
      USING ERRCODE = 'check_violation', HINT = 'an API client''s capabilities are a subset of its provider''s';
  END IF;
  IF TG_OP = 'INSERT' THEN
    IF p.status = 'deprecated' THEN
      RAISE EXCEPTION 'provider % (%) is deprecated; it takes no new API clients', p.key, p.id
        USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'deprecated' THEN
      RAISE EXCEPTION 'API client %@%: a new API client starts registered or active', NEW.name, NEW.version
        USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
  END IF;
  IF NEW.id <> OLD.id OR NEW.provider_id <> OLD.provider_id THEN
    RAISE EXCEPTION 'API client %: id and provider_id cannot change', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  PERFORM courier.check_registry_transition('API client', OLD.id, OLD.status, NEW.status);
  IF NEW.status = 'active' AND OLD.status <> 'active' AND p.status = 'deprecated' THEN
    RAISE EXCEPTION 'provider % (%) is deprecated; its API clients cannot become active', p.key, p.id
      USING ERRCODE = 'check_violation';
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
CREATE TRIGGER api_clients_guard BEFORE INSERT OR UPDATE ON courier.api_clients
  FOR EACH ROW EXECUTE FUNCTION courier.guard_api_client();

-- The last active client of an active provider went away: the provider is deprecated.
CREATE FUNCTION courier.on_api_client_deactivated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  UPDATE courier.providers p
  SET status = 'deprecated',
      status_reason = 'its last active API client ' || OLD.name || '@' || OLD.version || ' (' || OLD.id || ') was '
                      || CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE 'deprecated' END
  WHERE p.id = OLD.provider_id AND p.status = 'active'
    AND NOT EXISTS (SELECT 1 FROM courier.api_clients a
                    WHERE a.provider_id = OLD.provider_id AND a.status = 'active' AND a.id <> OLD.id);
  RETURN NULL;
END
$$;
CREATE TRIGGER api_clients_last_active AFTER UPDATE OF status OR DELETE ON courier.api_clients
  FOR EACH ROW WHEN (OLD.status = 'active')
  EXECUTE FUNCTION courier.on_api_client_deactivated();

-- Connections: the provider they run against. provider_id NULL with a
-- provider text that matches no registered provider: an unlinked connection,
-- as before the registry existed.
ALTER TABLE courier.connections ADD COLUMN provider_id text REFERENCES courier.providers (id);
CREATE INDEX connections_provider ON courier.connections (provider_id) WHERE provider_id IS NOT NULL;

-- The tenant's own provider of that key, else the global one.
CREATE FUNCTION courier.resolve_provider(tenant_id text, key text)
RETURNS courier.providers
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT p.* FROM courier.providers p
  WHERE p.key = resolve_provider.key AND (p.tenant_id = resolve_provider.tenant_id OR p.tenant_id IS NULL)
  ORDER BY p.tenant_id NULLS LAST
  LIMIT 1
$$;

CREATE FUNCTION courier.check_connection_provider() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  p courier.providers;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.provider_id IS NOT DISTINCT FROM OLD.provider_id AND NEW.tenant_id = OLD.tenant_id THEN
    IF NEW.provider_id IS NOT NULL AND NEW.provider IS DISTINCT FROM OLD.provider THEN
      RAISE EXCEPTION 'connection %: provider is its registered provider''s key; change provider_id instead', OLD.id
        USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;  -- an existing link stays valid when its provider is later deprecated
  END IF;
  IF NEW.provider_id IS NULL THEN
    IF TG_OP = 'UPDATE' OR NEW.provider IS NULL THEN
      RETURN NEW;  -- unlinking (an administrator's choice), or nothing named
    END IF;
    p := courier.resolve_provider(NEW.tenant_id, NEW.provider);
    IF p.id IS NULL THEN
      RETURN NEW;  -- no registered provider of that key: unlinked, as before the registry
    END IF;
  ELSE
    SELECT * INTO p FROM courier.providers x
    WHERE x.id = NEW.provider_id AND (x.tenant_id = NEW.tenant_id OR x.tenant_id IS NULL);
    IF p.id IS NULL THEN
      -- The same answer for another tenant's provider and for none at all.
      RAISE EXCEPTION 'courier.connections.provider_id: % is not a provider of tenant % (nor a global one)',
        NEW.provider_id, NEW.tenant_id USING ERRCODE = 'foreign_key_violation';
    END IF;
  END IF;
  IF p.status = 'deprecated' THEN
    RAISE EXCEPTION 'provider % (%) is deprecated: a deprecated provider accepts no new connections', p.key, p.id
      USING ERRCODE = 'check_violation';
  ELSIF p.status <> 'active' THEN
    RAISE EXCEPTION 'provider % (%) is %: a connection needs an active provider', p.key, p.id, p.status
      USING ERRCODE = 'check_violation',
            HINT = 'activate an API client, then the provider (pgcourierctl api-client activate, provider activate)';
  END IF;
  IF p.auth_model <> NEW.auth_mode THEN
    RAISE EXCEPTION 'connection auth_mode % does not match provider % (%), whose auth model is %',
      NEW.auth_mode, p.key, p.id, p.auth_model USING ERRCODE = 'check_violation';
  END IF;
  NEW.provider_id := p.id;
  NEW.provider := p.key;
  RETURN NEW;
END
$$;
CREATE TRIGGER connections_provider BEFORE INSERT OR UPDATE OF provider_id, provider, tenant_id ON courier.connections
  FOR EACH ROW EXECUTE FUNCTION courier.check_connection_provider();

-- A run's operation must be one its connection's provider declares. After
-- runs_check_tenant (triggers fire in name order), and only for a connection
-- of the run's own tenant: a foreign connection is that trigger's error.
CREATE FUNCTION courier.check_run_capability() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  p courier.providers;
BEGIN
  SELECT x.* INTO p FROM courier.connections c JOIN courier.providers x ON x.id = c.provider_id
  WHERE c.id = NEW.connection_id AND c.tenant_id = NEW.tenant_id;
  IF p.id IS NOT NULL AND NOT (NEW.operation = ANY (p.capabilities)) THEN
    RAISE EXCEPTION 'courier.runs.operation: % is not a capability of provider % (connection %); it declares: %',
      courier.quote_untrusted(NEW.operation), p.key, NEW.connection_id,
      coalesce(nullif(array_to_string(p.capabilities, ', '), ''), 'none')
      USING ERRCODE = 'check_violation',
            HINT = 'declare the operation on the provider, or name one it declares';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER runs_operation_capability BEFORE INSERT ON courier.runs
  FOR EACH ROW EXECUTE FUNCTION courier.check_run_capability();

-- Takes one token of the provider's budget. Returns 0 when taken (or when the
-- provider has no rate limit), else the milliseconds until a token will be
-- there (nothing is taken). The bucket holds at most the burst (default: the
-- rate, at least 1) and refills at the rate, like the daemons' per-connection
-- buckets (daemon/limits), but in one row that every daemon shares.
CREATE FUNCTION courier.take_provider_token(provider_id text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  rate double precision;
  burst double precision;
  b courier.provider_budgets;
  at timestamptz := clock_timestamp();
  tokens double precision;
BEGIN
  SELECT p.rate_limit_per_second, coalesce(p.rate_limit_burst, greatest(p.rate_limit_per_second, 1))
  INTO rate, burst FROM courier.providers p WHERE p.id = provider_id;
  IF rate IS NULL THEN
    RETURN 0;
  END IF;
  INSERT INTO courier.provider_budgets AS x (provider_id, tokens, refilled_at) VALUES (provider_id, burst, at)
  ON CONFLICT ON CONSTRAINT provider_budgets_pkey DO NOTHING;
  SELECT * INTO b FROM courier.provider_budgets x WHERE x.provider_id = provider_id FOR UPDATE;
  at := greatest(clock_timestamp(), b.refilled_at);
  tokens := least(burst, b.tokens + rate * extract(epoch FROM at - b.refilled_at));
  IF tokens >= 1 THEN
    UPDATE courier.provider_budgets x SET tokens = tokens - 1, refilled_at = at WHERE x.provider_id = provider_id;
    RETURN 0;
  END IF;
  UPDATE courier.provider_budgets x SET tokens = tokens, refilled_at = at WHERE x.provider_id = provider_id;
  RETURN greatest(1, ceil((1 - tokens) / rate * 1000))::bigint;
END
$$;

-- Management API (pgcourierctl provider ..., api-client ...; granted to
-- courier_operator). acting_tenant: when given, only that tenant's providers
-- and the global ones exist for the call (another tenant's answer "no provider").

CREATE FUNCTION courier.find_provider(provider text, acting_tenant text DEFAULT NULL)
RETURNS courier.providers
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  p courier.providers;
BEGIN
  SELECT * INTO p FROM courier.providers x
  WHERE x.id = provider AND (acting_tenant IS NULL OR x.tenant_id = acting_tenant OR x.tenant_id IS NULL);
  IF p.id IS NULL AND acting_tenant IS NOT NULL THEN
    p := courier.resolve_provider(acting_tenant, provider);
  END IF;
  IF p.id IS NULL THEN
    RAISE EXCEPTION 'no provider %', courier.quote_untrusted(provider) USING ERRCODE = 'no_data_found';
  END IF;
  RETURN p;
END
$$;

CREATE FUNCTION courier.create_provider(key text, tenant_id text DEFAULT NULL, category text DEFAULT 'other',
                                        auth_model text DEFAULT 'none', base_url text DEFAULT NULL,
                                        capabilities text[] DEFAULT '{}', rate_limit_per_second double precision DEFAULT NULL,
                                        rate_limit_burst int DEFAULT NULL, name text DEFAULT NULL, id text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  new_id text;
BEGIN
  IF EXISTS (SELECT 1 FROM courier.providers p WHERE p.key = key AND p.tenant_id IS NOT DISTINCT FROM tenant_id) THEN
    RAISE EXCEPTION 'provider key % is already registered %', courier.quote_untrusted(key),
      CASE WHEN tenant_id IS NULL THEN 'globally' ELSE 'for tenant ' || tenant_id END
      USING ERRCODE = 'unique_violation', HINT = 'a key is unique in its scope (a tenant, or global)';
  END IF;
  INSERT INTO courier.providers AS p (id, tenant_id, key, name, category, auth_model, base_url, capabilities,
                                      rate_limit_per_second, rate_limit_burst)
  VALUES (coalesce(id, courier.new_id('prv_')), tenant_id, key, name, coalesce(category, 'other'),
          coalesce(auth_model, 'none'), base_url, coalesce(capabilities, '{}'), rate_limit_per_second,
          rate_limit_burst)
  RETURNING p.id INTO new_id;
  RETURN new_id;
END
$$;

CREATE FUNCTION courier.set_provider_status(provider text, status text, reason text DEFAULT NULL,
                                            acting_tenant text DEFAULT NULL)
RETURNS text  -- the status before
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  p courier.providers := courier.find_provider(provider, acting_tenant);
BEGIN
  IF acting_tenant IS NOT NULL AND p.tenant_id IS NULL THEN
    RAISE EXCEPTION 'provider % is global; only an administrator (no --tenant) changes it', p.key
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  UPDATE courier.providers x SET status = status, status_reason = coalesce(reason, x.status_reason)
  WHERE x.id = p.id AND x.status <> status;
  RETURN p.status;
END
$$;

CREATE FUNCTION courier.create_api_client(provider text, name text, version text, capabilities text[] DEFAULT NULL,
                                          status text DEFAULT 'registered', acting_tenant text DEFAULT NULL,
                                          id text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  p courier.providers := courier.find_provider(provider, acting_tenant);
  new_id text;
BEGIN
  IF acting_tenant IS NOT NULL AND p.tenant_id IS NULL THEN
    RAISE EXCEPTION 'provider % is global; only an administrator (no --tenant) adds its API clients', p.key
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF EXISTS (SELECT 1 FROM courier.api_clients a WHERE a.provider_id = p.id AND a.name = name AND a.version = version) THEN
    RAISE EXCEPTION 'API client %@% of provider % already exists', name, version, p.key
      USING ERRCODE = 'unique_violation', HINT = 'a name and version are unique per provider';
  END IF;
  INSERT INTO courier.api_clients AS a (id, provider_id, name, version, capabilities, status)
  VALUES (coalesce(id, courier.new_id('apc_')), p.id, name, version, coalesce(capabilities, p.capabilities),
          coalesce(status, 'registered'))
  RETURNING a.id INTO new_id;
  RETURN new_id;
END
$$;

CREATE FUNCTION courier.set_api_client_status(api_client text, status text, acting_tenant text DEFAULT NULL)
RETURNS text  -- the status before
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  a courier.api_clients;
BEGIN
  SELECT * INTO a FROM courier.api_clients x
  WHERE x.id = api_client AND (acting_tenant IS NULL OR x.tenant_id = acting_tenant) FOR UPDATE;
  IF a.id IS NULL THEN
    RAISE EXCEPTION 'no API client %', courier.quote_untrusted(api_client) USING ERRCODE = 'no_data_found';
  END IF;
  UPDATE courier.api_clients x SET status = status WHERE x.id = a.id AND x.status <> status;
  RETURN a.status;
END
$$;

-- What operators read: providers with their clients and connections counted.
CREATE VIEW courier.provider_registry AS
SELECT p.id, p.tenant_id, p.key, p.name, p.category, p.auth_model, courier.redact_url(p.base_url) AS base_url,
       p.status, p.status_reason, p.capabilities, p.rate_limit_per_second, p.rate_limit_burst,
       (SELECT count(*) FROM courier.api_clients a WHERE a.provider_id = p.id) AS api_clients,
       (SELECT count(*) FROM courier.api_clients a WHERE a.provider_id = p.id AND a.status = 'active')
         AS active_api_clients,
       (SELECT count(*) FROM courier.connections c WHERE c.provider_id = p.id AND c.status <> 'retired') AS connections,
       p.created_at, p.updated_at
FROM courier.providers p;

-- Rotation policies ------------------------------------------------------------
--
-- A credential may carry a policy: rotate every `rotate_every`, and
-- optionally with `rotation_command`, an absolute path to an executable that
-- prints the new secret on stdout (run by the maintenance leader without a
-- shell, with a timeout and a bounded output, its output never logged).
-- A rotation is due at next_due_at (the active version's activation plus
-- rotate_every), or at once when a connection using the credential is
-- degraded by an auth refusal (a static credential refused: 401/403).
-- The leader's maintenance tick calls courier.start_due_rotations():
--   * without a command: CredentialRotationDue on the outbox and an escalated
--     failure, once per due period (state 'due_raised' until a new version is
--     activated, by pgcourierctl credential rotate for instance);
--   * with a command: CredentialRotationStarted, state 'running'; the daemon
--     runs it and hands the sealed result to courier.store_rotation_result()
--     (CredentialRotationVersionStored: the rotating version), or its
--     failure to courier.fail_rotation() (CredentialRotationFailed, the
--     prior version stays active, an escalated failure). The stored version
--     is then verified and promoted by the existing rotation path
--     (courier.finish_rotation: CredentialRotated, the prior version active
--     until then), or marked failed (CredentialRotationFailed, stage
--     'verification'); the trigger below moves the policy on either way.
-- Every step is an outbox event whose subject is the credential, and is
-- shown by `pgcourierctl credential show`.

CREATE TABLE courier.credential_rotation_policies (
  credential_id     text PRIMARY KEY REFERENCES courier.credentials (id) ON DELETE CASCADE,
  tenant_id         text NOT NULL,
  rotate_every      interval NOT NULL CHECK (rotate_every >= interval '1 second'),
  rotation_command  text CHECK (rotation_command ~ '^/[^[:cntrl:]]*$' AND octet_length(rotation_command) <= 1024),
  next_due_at       timestamptz NOT NULL,
  due_reason        text NOT NULL DEFAULT 'schedule',
  -- idle: waiting for next_due_at; running: the command was started by started_by;
  -- verifying: its version waits for the verification call; due_raised: no command, the operator was told.
  state             text NOT NULL DEFAULT 'idle' CHECK (state IN ('idle', 'running', 'verifying', 'due_raised')),
  started_at        timestamptz,
  started_by        text,
  last_rotated_at   timestamptz,
  last_result       text,
  last_error        text CHECK (octet_length(last_error) <= 512),
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credential_rotation_policies_due ON courier.credential_rotation_policies (next_due_at);

-- A failed start is tried again after this (or the period, when shorter).
CREATE FUNCTION courier.rotation_retry_delay(rotate_every interval) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN least(rotate_every, interval '15 minutes');

CREATE FUNCTION courier.set_rotation_policy(credential_id text, rotate_every interval,
                                            rotation_command text DEFAULT NULL, acting_tenant text DEFAULT NULL)
RETURNS timestamptz  -- when the next rotation is due
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  cred courier.credentials;
  since timestamptz;
  due timestamptz;
BEGIN
  SELECT * INTO cred FROM courier.credentials c
  WHERE c.id = credential_id AND (acting_tenant IS NULL OR c.tenant_id = acting_tenant) FOR UPDATE;
  IF cred.id IS NULL THEN
    RAISE EXCEPTION 'no credential %', courier.quote_untrusted(credential_id) USING ERRCODE = 'no_data_found';
  END IF;
  IF rotate_every IS NULL OR rotate_every < interval '1 second' THEN
    RAISE EXCEPTION 'rotate_every: expected a period of at least 1 second, got %', coalesce(rotate_every::text, 'none')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF rotation_command IS NOT NULL AND (rotation_command !~ '^/[^[:cntrl:]]*$' OR octet_length(rotation_command) > 1024) THEN
    RAISE EXCEPTION 'rotation_command: % is not an absolute path to an executable (it is run without a shell)',
      courier.quote_untrusted(rotation_command) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT coalesce(v.activated_at, v.created_at) INTO since FROM courier.credential_versions v
  WHERE v.credential_id = cred.id AND v.status = 'active';
  due := coalesce(since, now()) + rotate_every;
  INSERT INTO courier.credential_rotation_policies AS p (credential_id, tenant_id, rotate_every, rotation_command,
                                                         next_due_at)
  VALUES (cred.id, cred.tenant_id, rotate_every, rotation_command, due)
  ON CONFLICT ON CONSTRAINT credential_rotation_policies_pkey DO UPDATE
  SET rotate_every = EXCLUDED.rotate_every, rotation_command = EXCLUDED.rotation_command,
      next_due_at = EXCLUDED.next_due_at, due_reason = 'schedule',
      state = CASE WHEN p.state = 'due_raised' THEN 'idle' ELSE p.state END, updated_at = now();
  RETURN due;
END
$$;

CREATE FUNCTION courier.clear_rotation_policy(credential_id text, acting_tenant text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  DELETE FROM courier.credential_rotation_policies p
  WHERE p.credential_id = credential_id AND (acting_tenant IS NULL OR p.tenant_id = acting_tenant);
  RETURN FOUND;
END
$$;

-- The maintenance leader's call (daemon/store/queries/start_due_rotations.sql).
-- Returns the rotations whose command this worker must now run; raises the
-- command-less ones. A 'running' rotation whose worker vanished for 10
-- minutes is started again.
CREATE FUNCTION courier.start_due_rotations(worker text, max_rotations int DEFAULT 10)
RETURNS TABLE (credential_id text, tenant_id text, rotation_command text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_column
DECLARE
  p courier.credential_rotation_policies;
  failure_id text;
BEGIN
  FOR p IN
    SELECT x.* FROM courier.credential_rotation_policies x
    JOIN courier.credentials c ON c.id = x.credential_id
    WHERE x.next_due_at <= now() AND c.status <> 'revoked'
      AND (x.state = 'idle' OR (x.state = 'running' AND x.started_at < now() - interval '10 minutes'))
      AND NOT EXISTS (SELECT 1 FROM courier.credential_versions v
                      WHERE v.credential_id = x.credential_id AND v.status = 'rotating')
    ORDER BY x.next_due_at
    LIMIT greatest(max_rotations, 1)
    FOR UPDATE OF x SKIP LOCKED
  LOOP
    IF p.rotation_command IS NULL THEN
      UPDATE courier.credential_rotation_policies x SET state = 'due_raised', updated_at = now()
      WHERE x.credential_id = p.credential_id;
      PERFORM courier.emit('CredentialRotationDue', p.tenant_id, p.credential_id, NULL,
        jsonb_build_object('credential_id', p.credential_id, 'due_at', p.next_due_at, 'reason', p.due_reason,
                           'rotate_every', p.rotate_every::text));
      INSERT INTO courier.failures (tenant_id, source, source_id, category, error_code, message, next_action)
      VALUES (p.tenant_id, 'probe', p.credential_id, 'auth', 'credential_rotation_due',
              'credential ' || p.credential_id || ' is due for rotation (' || p.due_reason
              || ') and has no rotation command: rotate it (pgcourierctl credential rotate)', 'escalate');
    ELSE
      UPDATE courier.credential_rotation_policies x
      SET state = 'running', started_at = now(), started_by = worker, updated_at = now()
      WHERE x.credential_id = p.credential_id;
      PERFORM courier.emit('CredentialRotationStarted', p.tenant_id, p.credential_id, NULL,
        jsonb_build_object('credential_id', p.credential_id, 'due_at', p.next_due_at, 'reason', p.due_reason,
                           'worker', worker));
      credential_id := p.credential_id;
      tenant_id := p.tenant_id;
      rotation_command := p.rotation_command;
      RETURN NEXT;
    END IF;
  END LOOP;
END
$$;

-- The command's output, sealed by the daemon: the next version, rotating.
-- False (and the rotation failed) when it is the active version's secret.
CREATE FUNCTION courier.store_rotation_result(credential_id text, worker text, sealed_secret text, fingerprint text)
RETURNS integer  -- the new version; NULL when refused
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  p courier.credential_rotation_policies;
  new_version int;
BEGIN
  SELECT * INTO p FROM courier.credential_rotation_policies x
  WHERE x.credential_id = credential_id AND x.state = 'running' AND x.started_by = worker FOR UPDATE;
  IF p.credential_id IS NULL THEN
    RETURN NULL;  -- no longer this worker's rotation
  END IF;
  IF EXISTS (SELECT 1 FROM courier.credential_versions v
             WHERE v.credential_id = p.credential_id AND v.status = 'active' AND v.fingerprint = fingerprint) THEN
    PERFORM courier.fail_rotation(p.credential_id, worker, 'the rotation command printed the active secret');
    RETURN NULL;
  END IF;
  INSERT INTO courier.credential_versions AS v (credential_id, version, sealed_secret, fingerprint, status)
  SELECT p.credential_id, max(x.version) + 1, sealed_secret, fingerprint, 'rotating'
  FROM courier.credential_versions x WHERE x.credential_id = p.credential_id
  RETURNING v.version INTO new_version;
  UPDATE courier.credentials c SET status = 'rotating', updated_at = now() WHERE c.id = p.credential_id;
  UPDATE courier.credential_rotation_policies x SET state = 'verifying', updated_at = now()
  WHERE x.credential_id = p.credential_id;
  PERFORM courier.emit('CredentialRotationVersionStored', p.tenant_id, p.credential_id, NULL,
    jsonb_build_object('credential_id', p.credential_id, 'version', new_version, 'fingerprint', fingerprint,
                       'worker', worker));
  RETURN new_version;
END
$$;

-- The command failed (exit status, timeout, no or bad output, no master key):
-- the prior version stays active; tried again after courier.rotation_retry_delay.
CREATE FUNCTION courier.fail_rotation(credential_id text, worker text, reason text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  p courier.credential_rotation_policies;
BEGIN
  UPDATE courier.credential_rotation_policies x
  SET state = 'idle', last_result = 'failed', last_error = left(reason, 500),
      next_due_at = now() + courier.rotation_retry_delay(x.rotate_every), updated_at = now()
  WHERE x.credential_id = credential_id AND x.state = 'running' AND x.started_by = worker
  RETURNING * INTO p;
  IF p.credential_id IS NULL THEN
    RETURN false;
  END IF;
  PERFORM courier.emit('CredentialRotationFailed', p.tenant_id, p.credential_id, NULL,
    jsonb_build_object('credential_id', p.credential_id, 'stage', 'command', 'error', left(reason, 500),
                       'retry_at', p.next_due_at));
  INSERT INTO courier.failures (tenant_id, source, source_id, category, error_code, message, next_action)
  VALUES (p.tenant_id, 'probe', p.credential_id, 'auth', 'rotation_command_failed',
          left('credential ' || p.credential_id || ': the rotation command failed: ' || reason, 500), 'escalate');
  RETURN true;
END
$$;

-- A version left 'rotating' (verified and active, or failed): the policy moves on.
CREATE FUNCTION courier.on_rotation_finished() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  p courier.credential_rotation_policies;
BEGIN
  IF NEW.status = 'active' THEN
    UPDATE courier.credential_rotation_policies x
    SET state = 'idle', last_result = 'rotated to version ' || NEW.version, last_error = NULL,
        last_rotated_at = now(), next_due_at = now() + x.rotate_every, due_reason = 'schedule', updated_at = now()
    WHERE x.credential_id = NEW.credential_id;
    UPDATE courier.failures f SET resolved_at = now(), resolution = 'credential rotated to version ' || NEW.version
    WHERE f.source = 'probe' AND f.source_id = NEW.credential_id AND f.resolved_at IS NULL
      AND f.error_code IN ('credential_rotation_due', 'rotation_command_failed');
  ELSIF NEW.status = 'failed' THEN
    UPDATE courier.credential_rotation_policies x
    SET state = 'idle', last_result = 'verification failed', last_error = left(NEW.verification_error, 500),
        next_due_at = now() + courier.rotation_retry_delay(x.rotate_every), updated_at = now()
    WHERE x.credential_id = NEW.credential_id
    RETURNING * INTO p;
    IF p.credential_id IS NOT NULL THEN
      PERFORM courier.emit('CredentialRotationFailed', p.tenant_id, p.credential_id, NULL,
        jsonb_build_object('credential_id', p.credential_id, 'stage', 'verification', 'version', NEW.version,
                           'error', left(NEW.verification_error, 500), 'retry_at', p.next_due_at));
    END IF;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER credential_versions_rotation_finished AFTER UPDATE OF status ON courier.credential_versions
  FOR EACH ROW WHEN (OLD.status = 'rotating' AND NEW.status IN ('active', 'failed'))
  EXECUTE FUNCTION courier.on_rotation_finished();

-- A static credential refused (courier.degrade_connection): its rotation is due now.
CREATE FUNCTION courier.on_connection_degraded() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  UPDATE courier.credential_rotation_policies x
  SET next_due_at = now(), due_reason = 'auth failure on connection ' || NEW.id, updated_at = now()
  WHERE x.credential_id = NEW.credential_id AND x.state = 'idle' AND x.next_due_at > now();
  RETURN NULL;
END
$$;
CREATE TRIGGER connections_degraded_rotation AFTER UPDATE OF status ON courier.connections
  FOR EACH ROW WHEN (OLD.status = 'active' AND NEW.status = 'degraded' AND NEW.credential_id IS NOT NULL)
  EXECUTE FUNCTION courier.on_connection_degraded();

-- KPI snapshots and thresholds -------------------------------------------------
--
-- The maintenance leader's tick calls courier.maintain_kpis() (daemon/store/
-- queries/maintain_kpis.sql). Incremental: it summarises only the complete
-- 1-minute buckets since the last one it wrote (courier.kpi_progress), those
-- that ended at least kpi_settings.settle ago (attempts are written after they
-- finish, in batches). Per bucket, per tenant (subscription_id '') and per
-- subscription, of webhook deliveries:
--   attempts       attempts started in the bucket (courier.delivery_attempts)
--   delivered      of those, the ones a 2xx answered
--   failed         of those, the others (every failed attempt, retried or not)
--   dead_lettered  deliveries dead-lettered in the bucket (courier.delivery_dead_letters)
--   success_rate   delivered / attempts (NULL without attempts)
--   latency p50 / p95 of the attempts' durations, in ms
-- The 1-hour rows are rolled up from the minute rows (sums exact; the hour's
-- p50/p95 are the attempt-weighted mean of its minutes' percentiles, an
-- approximation). Minute rows are kept kpi_settings.minute_retention, hour
-- rows hour_retention. Thresholds (courier.kpi_thresholds) are evaluated on
-- each new minute bucket, in order: KpiThresholdBreached on the outbox when
-- one starts breaching, KpiThresholdCleared when it stops, once each.
-- A bucket without attempts leaves a success-rate or p95 threshold as it was
-- (nothing was measured); a dead-letter threshold counts it as zero.

CREATE TABLE courier.kpi_snapshots (
  bucket_width     text NOT NULL CHECK (bucket_width IN ('1m', '1h')),
  tenant_id        text NOT NULL,
  subscription_id  text NOT NULL DEFAULT '',   -- '': the tenant's total
  bucket_start     timestamptz NOT NULL,
  attempts         bigint NOT NULL DEFAULT 0,
  delivered        bigint NOT NULL DEFAULT 0,
  failed           bigint NOT NULL DEFAULT 0,
  dead_lettered    bigint NOT NULL DEFAULT 0,
  success_rate     double precision,
  latency_p50_ms   double precision,
  latency_p95_ms   double precision,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (bucket_width, tenant_id, subscription_id, bucket_start)
);
CREATE INDEX kpi_snapshots_start ON courier.kpi_snapshots (bucket_start);  -- retention
-- Time ranges of the attempts: a BRIN index is almost free on the insert path
-- (attempts arrive in started_at order) and lets the snapshot read one minute
-- of a day's partition instead of all of it.
CREATE INDEX delivery_attempts_started_brin ON courier.delivery_attempts USING brin (started_at);

CREATE TABLE courier.kpi_settings (
  id                boolean PRIMARY KEY DEFAULT true CHECK (id),
  settle            interval NOT NULL DEFAULT '30 seconds' CHECK (settle >= interval '0'),
  minute_retention  interval NOT NULL DEFAULT '7 days' CHECK (minute_retention >= interval '1 hour'),
  hour_retention    interval NOT NULL DEFAULT '90 days' CHECK (hour_retention >= interval '1 day')
);
INSERT INTO courier.kpi_settings DEFAULT VALUES;

CREATE TABLE courier.kpi_progress (
  id           boolean PRIMARY KEY DEFAULT true CHECK (id),
  next_bucket  timestamptz   -- the first minute not summarised yet; NULL: start with the last complete one
);
INSERT INTO courier.kpi_progress DEFAULT VALUES;

CREATE TABLE courier.kpi_thresholds (
  id               text PRIMARY KEY DEFAULT courier.new_id('kpt_'),
  tenant_id        text NOT NULL CHECK (tenant_id <> ''),
  subscription_id  text REFERENCES courier.subscriptions (id) ON DELETE CASCADE,  -- NULL: the tenant's total
  metric           text NOT NULL CHECK (metric IN ('success_rate_below', 'dead_letters_above', 'p95_above_ms')),
  value            double precision NOT NULL,
  state            text NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'breached')),
  breached_since   timestamptz,
  last_bucket      timestamptz,
  last_observed    double precision,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (metric <> 'success_rate_below' OR value BETWEEN 0 AND 1),
  CHECK (metric = 'success_rate_below' OR value >= 0)
);
CREATE INDEX kpi_thresholds_tenant ON courier.kpi_thresholds (tenant_id);

-- A threshold's subscription must be its tenant's (a foreign one looks like none).
CREATE FUNCTION courier.check_kpi_threshold() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  PERFORM courier.check_tenant_id(NEW.tenant_id, 'courier.kpi_thresholds.tenant_id');
  IF NEW.subscription_id IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM courier.subscriptions s WHERE s.id = NEW.subscription_id AND s.tenant_id = NEW.tenant_id) THEN
    RAISE EXCEPTION 'courier.kpi_thresholds.subscription_id: % is not a subscription of tenant %',
      courier.quote_untrusted(NEW.subscription_id), NEW.tenant_id USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER kpi_thresholds_check BEFORE INSERT OR UPDATE OF tenant_id, subscription_id ON courier.kpi_thresholds
  FOR EACH ROW EXECUTE FUNCTION courier.check_kpi_threshold();

-- Summarises the minutes [from_ts, to_ts) into 1m rows and rolls their hours up.
CREATE FUNCTION courier.snapshot_kpi_range(from_ts timestamptz, to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  WITH att AS (
    SELECT date_trunc('minute', a.started_at) AS b, d.tenant_id AS t, coalesce(d.subscription_id, '') AS s,
           count(*) AS attempts,
           count(*) FILTER (WHERE a.error_class IS NULL AND a.status_code BETWEEN 200 AND 299) AS delivered,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95
    FROM courier.delivery_attempts a
    JOIN courier.deliveries d ON d.id = a.delivery_id
    WHERE a.started_at >= from_ts AND a.started_at < to_ts
    GROUP BY GROUPING SETS ((1, 2), (1, 2, d.subscription_id))
  ), dl AS (
    SELECT date_trunc('minute', x.dead_lettered_at) AS b, x.tenant_id AS t, coalesce(x.subscription_id, '') AS s,
           count(*) AS dead_lettered
    FROM courier.delivery_dead_letters x
    WHERE x.dead_lettered_at >= from_ts AND x.dead_lettered_at < to_ts
    GROUP BY GROUPING SETS ((1, 2), (1, 2, x.subscription_id))
  ), minute_rows AS (
    INSERT INTO courier.kpi_snapshots AS k (bucket_width, tenant_id, subscription_id, bucket_start, attempts,
                                            delivered, failed, dead_lettered, success_rate, latency_p50_ms,
                                            latency_p95_ms)
    SELECT '1m', coalesce(att.t, dl.t), coalesce(att.s, dl.s), coalesce(att.b, dl.b), coalesce(att.attempts, 0),
           coalesce(att.delivered, 0), coalesce(att.attempts - att.delivered, 0), coalesce(dl.dead_lettered, 0),
           att.delivered::double precision / nullif(att.attempts, 0), att.p50, att.p95
    FROM att FULL JOIN dl ON dl.b = att.b AND dl.t = att.t AND dl.s = att.s
    ON CONFLICT ON CONSTRAINT kpi_snapshots_pkey DO UPDATE
    SET attempts = EXCLUDED.attempts, delivered = EXCLUDED.delivered, failed = EXCLUDED.failed,
        dead_lettered = EXCLUDED.dead_lettered, success_rate = EXCLUDED.success_rate,
        latency_p50_ms = EXCLUDED.latency_p50_ms, latency_p95_ms = EXCLUDED.latency_p95_ms, updated_at = now()
    RETURNING 1
  )
  SELECT count(*) INTO n FROM minute_rows;
  -- The hours touched, from all their minute rows (written above or before).
  INSERT INTO courier.kpi_snapshots AS k (bucket_width, tenant_id, subscription_id, bucket_start, attempts, delivered,
                                          failed, dead_lettered, success_rate, latency_p50_ms, latency_p95_ms)
  SELECT '1h', m.tenant_id, m.subscription_id, date_trunc('hour', m.bucket_start), sum(m.attempts), sum(m.delivered),
         sum(m.failed), sum(m.dead_lettered), sum(m.delivered)::double precision / nullif(sum(m.attempts), 0),
         sum(m.latency_p50_ms * m.attempts) / nullif(sum(m.attempts) FILTER (WHERE m.latency_p50_ms IS NOT NULL), 0),
         sum(m.latency_p95_ms * m.attempts) / nullif(sum(m.attempts) FILTER (WHERE m.latency_p95_ms IS NOT NULL), 0)
  FROM courier.kpi_snapshots m
  WHERE m.bucket_width = '1m' AND m.bucket_start >= date_trunc('hour', from_ts) AND m.bucket_start < to_ts
    AND (m.tenant_id, m.subscription_id) IN (SELECT k2.tenant_id, k2.subscription_id FROM courier.kpi_snapshots k2
                                             WHERE k2.bucket_width = '1m' AND k2.bucket_start >= from_ts
                                               AND k2.bucket_start < to_ts)
  GROUP BY m.tenant_id, m.subscription_id, date_trunc('hour', m.bucket_start)
  ON CONFLICT ON CONSTRAINT kpi_snapshots_pkey DO UPDATE
  SET attempts = EXCLUDED.attempts, delivered = EXCLUDED.delivered, failed = EXCLUDED.failed,
      dead_lettered = EXCLUDED.dead_lettered, success_rate = EXCLUDED.success_rate,
      latency_p50_ms = EXCLUDED.latency_p50_ms, latency_p95_ms = EXCLUDED.latency_p95_ms, updated_at = now();
  RETURN n;
END
$$;

-- Evaluates every threshold on the minute bucket starting at `bucket`.
CREATE FUNCTION courier.evaluate_kpi_thresholds(bucket timestamptz)
RETURNS integer  -- transitions
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  th record;
  breached boolean;
  transitions integer := 0;
BEGIN
  FOR th IN
    SELECT t.*, k.attempts, k.dead_lettered, k.success_rate, k.latency_p95_ms,
           CASE t.metric WHEN 'success_rate_below' THEN k.success_rate
                         WHEN 'dead_letters_above' THEN coalesce(k.dead_lettered, 0)
                         ELSE k.latency_p95_ms END AS observed
    FROM courier.kpi_thresholds t
    LEFT JOIN courier.kpi_snapshots k
      ON k.bucket_width = '1m' AND k.tenant_id = t.tenant_id AND k.subscription_id = coalesce(t.subscription_id, '')
     AND k.bucket_start = bucket
    WHERE t.last_bucket IS NULL OR t.last_bucket < bucket
    ORDER BY t.id
    FOR UPDATE OF t
  LOOP
    breached := CASE th.metric
                  WHEN 'success_rate_below' THEN th.observed < th.value
                  WHEN 'dead_letters_above' THEN th.observed > th.value
                  ELSE th.observed > th.value END;  -- NULL: nothing measured, the state stays
    UPDATE courier.kpi_thresholds t
    SET last_bucket = bucket, last_observed = coalesce(th.observed, t.last_observed),
        state = CASE WHEN breached THEN 'breached' WHEN NOT breached THEN 'ok' ELSE t.state END,
        breached_since = CASE WHEN breached AND t.state = 'ok' THEN bucket
                              WHEN NOT breached THEN NULL ELSE t.breached_since END
    WHERE t.id = th.id;
    IF breached AND th.state = 'ok' OR NOT breached AND th.state = 'breached' THEN
      transitions := transitions + 1;
      PERFORM courier.emit(CASE WHEN breached THEN 'KpiThresholdBreached' ELSE 'KpiThresholdCleared' END,
        th.tenant_id, th.id, NULL,
        jsonb_build_object('threshold_id', th.id, 'subscription_id', th.subscription_id, 'metric', th.metric,
                           'threshold', th.value, 'observed', th.observed, 'bucket_start', bucket,
                           'bucket_width', '1m', 'attempts', coalesce(th.attempts, 0),
                           'breached_since', CASE WHEN breached THEN bucket ELSE th.breached_since END));
    END IF;
  END LOOP;
  RETURN transitions;
END
$$;

-- The maintenance tick's one call: the complete minutes since the last run
-- (at most max_minutes of them, the rest at the next tick), their thresholds
-- in bucket order, and retention. Returns the minute buckets summarised.
CREATE FUNCTION courier.maintain_kpis(max_minutes integer DEFAULT 60)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  cfg courier.kpi_settings;
  from_ts timestamptz;
  to_ts timestamptz;
  b timestamptz;
BEGIN
  SELECT * INTO cfg FROM courier.kpi_settings;
  -- One summariser at a time (the leader; a second caller waits, then finds nothing to do).
  SELECT p.next_bucket INTO from_ts FROM courier.kpi_progress p FOR UPDATE;
  to_ts := date_trunc('minute', now() - cfg.settle);
  from_ts := coalesce(from_ts, to_ts - interval '1 minute');
  to_ts := least(to_ts, from_ts + greatest(max_minutes, 1) * interval '1 minute');
  IF to_ts <= from_ts THEN
    RETURN 0;
  END IF;
  PERFORM courier.snapshot_kpi_range(from_ts, to_ts);
  FOR b IN SELECT g FROM generate_series(from_ts, to_ts - interval '1 minute', interval '1 minute') g LOOP
    PERFORM courier.evaluate_kpi_thresholds(b);
  END LOOP;
  UPDATE courier.kpi_progress SET next_bucket = to_ts;
  DELETE FROM courier.kpi_snapshots k
  WHERE k.bucket_start < now() - least(cfg.minute_retention, cfg.hour_retention) AND (
          (k.bucket_width = '1m' AND k.bucket_start < now() - cfg.minute_retention)
       OR (k.bucket_width = '1h' AND k.bucket_start < now() - cfg.hour_retention));
  RETURN (extract(epoch FROM to_ts - from_ts) / 60)::integer;
END
$$;

-- Management: thresholds (pgcourierctl kpi threshold create|list|delete).
CREATE FUNCTION courier.create_kpi_threshold(tenant_id text, metric text, value double precision,
                                             subscription_id text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  new_id text;
BEGIN
  IF metric IS NULL OR metric NOT IN ('success_rate_below', 'dead_letters_above', 'p95_above_ms') THEN
    RAISE EXCEPTION 'metric: % is not one of success_rate_below, dead_letters_above, p95_above_ms',
      courier.quote_untrusted(metric) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF metric = 'success_rate_below' AND (value IS NULL OR value < 0 OR value > 1) THEN
    RAISE EXCEPTION 'value: a success rate is from 0 to 1 (0.95 is 95 %%), got %', value
      USING ERRCODE = 'invalid_parameter_value';
  ELSIF value IS NULL OR value < 0 THEN
    RAISE EXCEPTION 'value: expected a number of at least 0, got %', value USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO courier.kpi_thresholds AS t (tenant_id, subscription_id, metric, value)
  VALUES (tenant_id, subscription_id, metric, value) RETURNING t.id INTO new_id;
  RETURN new_id;
END
$$;

CREATE FUNCTION courier.delete_kpi_threshold(threshold_id text, acting_tenant text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  DELETE FROM courier.kpi_thresholds t
  WHERE t.id = threshold_id AND (acting_tenant IS NULL OR t.tenant_id = acting_tenant);
  RETURN FOUND;
END
$$;
