-- 80_gateway: what pgcourier-gateway (gateway/) needs in the database: API
-- tokens, and the API's calls as functions that take the caller's scope.
--
-- Scope: every api_* function takes `scope`, the tenant of the token the
-- gateway verified (NULL for an operator token: every tenant). The gateway
-- passes the tenant of the token, never one from the request. An object of
-- another tenant is answered exactly like an unknown id (no_data_found), so
-- ids do not leak. Writes go through the functions of 20_subscriptions.sql,
-- 50_management.sql and courier.publish, after the scope check, so the API,
-- pgcourierctl and SQL callers meet one set of rules.
--
-- Results are jsonb whose keys are the SQL column names; lists are
-- {"items": [...], "next": cursor-or-null}, ordered by id (ids from
-- courier.new_id are time-ordered), the cursor being the last id returned.

-- API tokens. Only the SHA-256 of a token is stored; the token itself is
-- returned once by create_api_token. tenant_id NULL: an operator token.
CREATE TABLE courier.api_tokens (
  id           text PRIMARY KEY DEFAULT courier.new_id('tok_'),
  tenant_id    text,
  name         text NOT NULL DEFAULT '',
  token_sha256 bytea NOT NULL UNIQUE CHECK (octet_length(token_sha256) = 32),
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  last_used_at timestamptz
);

-- A new token: 'pgc_' + base64url (no padding) of 32 bytes from two
-- gen_random_uuid() (pg_strong_random: 244 random bits; no pgcrypto needed).
CREATE FUNCTION courier.create_api_token(tenant_id text, name text DEFAULT '', operator boolean DEFAULT false)
RETURNS TABLE (id text, token text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  new_token text;
  new_id text;
BEGIN
  IF operator AND tenant_id IS NOT NULL THEN
    RAISE EXCEPTION 'an operator token has no tenant' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT operator THEN
    IF tenant_id IS NULL THEN
      RAISE EXCEPTION 'tenant_id: needed for a tenant token (or make an operator token)'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM courier.check_tenant_id(tenant_id);
  END IF;
  IF name ~ '[[:cntrl:]]' OR length(name) > 200 THEN
    RAISE EXCEPTION 'name: at most 200 characters, no control characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  new_token := 'pgc_' || rtrim(translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()),
                                               'base64'), '+/', '-_'), '=');
  INSERT INTO courier.api_tokens AS t (tenant_id, name, token_sha256)
  VALUES (tenant_id, coalesce(name, ''), sha256(convert_to(new_token, 'UTF8')))
  RETURNING t.id INTO new_id;
  id := new_id;
  token := new_token;
  RETURN NEXT;
END
$$;

-- The token's id and scope, or no row (unknown or revoked). last_used_at is
-- written at most once a minute per token, so verifying is a read.
CREATE FUNCTION courier.verify_api_token(token text)
RETURNS TABLE (id text, tenant_id text, operator boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  hash bytea := sha256(convert_to(coalesce(token, ''), 'UTF8'));
BEGIN
  RETURN QUERY
  SELECT t.id, t.tenant_id, t.tenant_id IS NULL FROM courier.api_tokens t
  WHERE t.token_sha256 = hash AND t.revoked_at IS NULL;
  UPDATE courier.api_tokens t SET last_used_at = now()
  WHERE t.token_sha256 = hash AND t.revoked_at IS NULL
    AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute');
END
$$;

CREATE FUNCTION courier.list_api_tokens()
RETURNS TABLE (id text, tenant_id text, name text, created_at timestamptz, revoked_at timestamptz,
               last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT t.id, t.tenant_id, t.name, t.created_at, t.revoked_at, t.last_used_at
  FROM courier.api_tokens t ORDER BY t.id
$$;

-- True when the token was revoked now; false when it was already revoked;
-- no_data_found for an unknown id.
CREATE FUNCTION courier.revoke_api_token(token_id text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  IF NOT EXISTS (SELECT 1 FROM courier.api_tokens t WHERE t.id = token_id) THEN
    RAISE EXCEPTION 'no API token %', token_id USING ERRCODE = 'no_data_found';
  END IF;
  UPDATE courier.api_tokens t SET revoked_at = now() WHERE t.id = token_id AND t.revoked_at IS NULL;
  RETURN FOUND;
END
$$;

-- The API page size: 1..500, 50 by default.
CREATE FUNCTION courier.api_limit(requested integer) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT CASE WHEN requested IS NULL THEN 50 WHEN requested < 1 THEN 1 WHEN requested > 500 THEN 500
              ELSE requested END
$$;

-- {"items": items, "next": the last item's `key` when the page is full}.
CREATE FUNCTION courier.api_page(items jsonb, lim integer, key text DEFAULT 'id') RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT jsonb_build_object('items', coalesce(items, '[]'::jsonb),
                            'next', CASE WHEN jsonb_array_length(coalesce(items, '[]'::jsonb)) >= lim
                                         THEN items -> -1 -> key END)
$$;

-- The subscription as the API shows it; no_data_found when it is not in scope.
CREATE FUNCTION courier.api_subscription(scope text, subscription_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  result jsonb;
BEGIN
  SELECT jsonb_build_object(
           'id', s.id, 'tenant_id', s.tenant_id, 'url', courier.redact_url(s.url), 'event_types', s.event_types,
           'policy', s.policy, 'description', s.description, 'state', h.state, 'active', s.active,
           'paused_at', s.paused_at, 'pause_reason', s.pause_reason, 'disabled_at', s.disabled_at,
           'disabled_reason', s.disabled_reason, 'consecutive_failures', s.consecutive_failures,
           'last_success_at', s.last_success_at, 'last_failure_at', s.last_failure_at,
           'held_deliveries', h.held_deliveries, 'created_at', s.created_at, 'updated_at', s.updated_at,
           'secret_last4', (SELECT x.last4 FROM courier.subscription_secrets x
                            WHERE x.subscription_id = s.id AND x.revoked_at IS NULL
                              AND (x.expires_at IS NULL OR x.expires_at > now())
                            ORDER BY x.created_at DESC LIMIT 1))
  INTO result
  FROM courier.subscriptions s JOIN courier.subscription_health h ON h.subscription_id = s.id
  WHERE s.id = subscription_id AND (api_subscription.scope IS NULL OR s.tenant_id = api_subscription.scope);
  IF result IS NULL THEN
    RAISE EXCEPTION 'no subscription %', subscription_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN result;
END
$$;

CREATE FUNCTION courier.api_subscriptions(scope text, after text DEFAULT NULL, lim integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  n integer := courier.api_limit(lim);
  items jsonb;
BEGIN
  SELECT jsonb_agg(courier.api_subscription(scope, p.id) ORDER BY p.id) INTO items
  FROM (SELECT s.id FROM courier.subscriptions s
        WHERE (api_subscriptions.scope IS NULL OR s.tenant_id = api_subscriptions.scope) AND (after IS NULL OR s.id > after)
        ORDER BY s.id LIMIT n) p;
  RETURN courier.api_page(items, n);
END
$$;

-- The scope check before every write of one subscription: locks the row so
-- it cannot move tenants between the check and the write.
CREATE FUNCTION courier.api_check_subscription(scope text, subscription_id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  PERFORM 1 FROM courier.subscriptions s
  WHERE s.id = subscription_id AND (api_check_subscription.scope IS NULL OR s.tenant_id = api_check_subscription.scope) FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no subscription %', subscription_id USING ERRCODE = 'no_data_found';
  END IF;
END
$$;

-- A request body's keys: an object with only the `allowed` keys, else
-- invalid_parameter_value naming the first unknown one.
CREATE FUNCTION courier.api_check_body(body jsonb, allowed text[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  unknown text;
BEGIN
  IF body IS NULL OR jsonb_typeof(body) <> 'object' THEN
    RAISE EXCEPTION 'the body must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT k INTO unknown FROM jsonb_object_keys(body) k WHERE k <> ALL (allowed) ORDER BY k LIMIT 1;
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION '%: unknown field (known: %)', unknown, array_to_string(allowed, ', ')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- The tenant a write is for: the token's; an operator token names it in the
-- body. A tenant token naming another tenant is refused as an unknown id is:
-- no_data_found (the gateway answers 404). Not insufficient_privilege:
-- libpqxx 6.4 drops the SQLSTATE of that class on its way to the caller.
CREATE FUNCTION courier.api_tenant(scope text, body jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  IF scope IS NOT NULL AND body ->> 'tenant_id' IS NOT NULL AND body ->> 'tenant_id' <> scope THEN
    RAISE EXCEPTION 'tenant_id: not this token''s tenant' USING ERRCODE = 'no_data_found';
  END IF;
  IF coalesce(scope, body ->> 'tenant_id') IS NULL THEN
    RAISE EXCEPTION 'tenant_id: required with an operator token' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN coalesce(scope, body ->> 'tenant_id');
END
$$;

-- Idempotency-Key of the creating calls that have no key of their own
-- (events have courier.events.idempotency_key): the key, per tenant, names
-- the object the first call created. The first response (with a secret in
-- it) is not kept: a repeated call answers the same object without it.
CREATE TABLE courier.api_idempotency_keys (
  tenant_id  text NOT NULL,
  operation  text NOT NULL,
  key        text NOT NULL CHECK (key !~ '[[:cntrl:]]' AND length(key) <= 255),
  object_id  text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, operation, key)
);

-- The object an earlier call with this idempotency key created (NULL: none
-- yet). Serialises calls with the same key: the second waits for the
-- first's commit, then finds what it created.
CREATE FUNCTION courier.api_idempotent_earlier(tenant_id text, operation text, idempotency_key text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  earlier text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('api_' || operation), hashtext(tenant_id || ' ' || idempotency_key));
  SELECT k.object_id INTO earlier FROM courier.api_idempotency_keys k
  WHERE k.tenant_id = tenant_id AND k.operation = operation AND k.key = idempotency_key;
  RETURN earlier;
END
$$;

-- Create from a body {tenant_id?, url, event_types, policy?, description?};
-- the gateway chose the id and sealed the secret for it. With an
-- idempotency key seen before: the subscription it created, with
-- "replayed": true (and no new secret).
CREATE FUNCTION courier.api_create_subscription(scope text, body jsonb, subscription_id text,
                                                sealed_secret text, secret_last4 text,
                                                idempotency_key text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  types text[];
  earlier text;
BEGIN
  IF idempotency_key IS NOT NULL THEN
    earlier := courier.api_idempotent_earlier(courier.api_tenant(scope, body), 'create_subscription', idempotency_key);
    IF earlier IS NOT NULL THEN
      RETURN courier.api_subscription(scope, earlier) || '{"replayed": true}'::jsonb;
    END IF;
    INSERT INTO courier.api_idempotency_keys (tenant_id, operation, key, object_id)
    VALUES (courier.api_tenant(scope, body), 'create_subscription', idempotency_key, subscription_id);
  END IF;
  PERFORM courier.api_check_body(body, ARRAY['tenant_id', 'url', 'event_types', 'policy', 'description']);
  IF jsonb_typeof(body -> 'event_types') IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'event_types: an array of event types or patterns is required'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(t) INTO types FROM jsonb_array_elements_text(body -> 'event_types') t;
  PERFORM courier.create_subscription(courier.api_tenant(scope, body), body ->> 'url', types, sealed_secret,
                                      secret_last4, coalesce(body ->> 'policy', 'default'), body ->> 'description',
                                      subscription_id);
  RETURN courier.api_subscription(scope, subscription_id);
END
$$;

CREATE FUNCTION courier.api_update_subscription(scope text, subscription_id text, changes jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  PERFORM courier.api_check_subscription(scope, subscription_id);
  IF changes ? 'tenant_id' THEN
    RAISE EXCEPTION 'tenant_id: cannot be changed' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM courier.update_subscription(subscription_id, changes);
  RETURN courier.api_subscription(scope, subscription_id);
END
$$;

-- pause, resume, disable: the functions of 20_subscriptions.sql.
CREATE FUNCTION courier.api_set_subscription_state(scope text, subscription_id text, action text, reason text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  PERFORM courier.api_check_subscription(scope, subscription_id);
  CASE action
    WHEN 'pause' THEN PERFORM courier.pause_subscription(subscription_id, coalesce(reason, 'paused through the API'));
    WHEN 'resume' THEN PERFORM courier.resume_subscription(subscription_id);
    WHEN 'disable' THEN PERFORM courier.disable_subscription(subscription_id,
                                                             coalesce(reason, 'disabled through the API'));
    ELSE RAISE EXCEPTION 'unknown action %', action USING ERRCODE = 'invalid_parameter_value';
  END CASE;
  RETURN courier.api_subscription(scope, subscription_id);
END
$$;

CREATE FUNCTION courier.api_rotate_subscription_secret(scope text, subscription_id text, sealed_secret text,
                                                       secret_last4 text, grace interval) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  secrets jsonb;
BEGIN
  PERFORM courier.api_check_subscription(scope, subscription_id);
  SELECT jsonb_agg(to_jsonb(r)) INTO secrets
  FROM courier.rotate_subscription_secret(subscription_id, sealed_secret, secret_last4,
                                          coalesce(grace, interval '24 hours')) r;
  RETURN jsonb_build_object('subscription_id', subscription_id, 'secrets', coalesce(secrets, '[]'::jsonb));
END
$$;

CREATE FUNCTION courier.api_revoke_subscription_secrets(scope text, subscription_id text, secret_id text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  secrets jsonb;
BEGIN
  PERFORM courier.api_check_subscription(scope, subscription_id);
  SELECT jsonb_agg(to_jsonb(r)) INTO secrets FROM courier.revoke_subscription_secrets(subscription_id, secret_id) r;
  RETURN jsonb_build_object('subscription_id', subscription_id, 'secrets', coalesce(secrets, '[]'::jsonb));
END
$$;

-- Events: publish from a body {tenant_id?, event_type, payload,
-- idempotency_key?, trace_id?, ordering_key?} (idempotency_key may come from
-- the Idempotency-Key header instead: `header_key`; both and different is an
-- error). {"id": ..., "duplicate": whether an earlier event had the key}.
CREATE FUNCTION courier.api_publish(scope text, body jsonb, header_key text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  tenant text;
  key text := coalesce(body ->> 'idempotency_key', header_key);
  existed boolean := false;
BEGIN
  PERFORM courier.api_check_body(body, ARRAY['tenant_id', 'event_type', 'payload', 'idempotency_key', 'trace_id',
                                             'ordering_key']);
  tenant := courier.api_tenant(scope, body);
  PERFORM courier.check_tenant_id(tenant);
  IF header_key IS NOT NULL AND body ->> 'idempotency_key' IS NOT NULL AND header_key <> body ->> 'idempotency_key' THEN
    RAISE EXCEPTION 'idempotency_key: the body and the Idempotency-Key header differ'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF key ~ '[[:cntrl:]]' OR length(key) > 255 THEN
    RAISE EXCEPTION 'idempotency_key: at most 255 characters, no control characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(body -> 'event_type') IS DISTINCT FROM 'string' THEN
    RAISE EXCEPTION 'event_type: a string is required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF key IS NOT NULL THEN
    existed := EXISTS (SELECT 1 FROM courier.events e WHERE e.tenant_id = tenant AND e.idempotency_key = key);
  END IF;
  RETURN jsonb_build_object('id', courier.publish(tenant, body ->> 'event_type', coalesce(body -> 'payload', '{}'),
                                                  key, body ->> 'trace_id', body ->> 'ordering_key'),
                            'duplicate', existed);
END
$$;

CREATE FUNCTION courier.api_events(scope text, after text DEFAULT NULL, lim integer DEFAULT NULL,
                                   event_type text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  n integer := courier.api_limit(lim);
  items jsonb;
BEGIN
  SELECT jsonb_agg(jsonb_build_object('id', e.id, 'tenant_id', e.tenant_id, 'event_type', e.event_type,
                                      'payload', e.payload, 'idempotency_key', e.idempotency_key,
                                      'trace_id', e.trace_id, 'ordering_key', e.ordering_key,
                                      'created_at', e.created_at) ORDER BY e.id)
  INTO items
  FROM (SELECT * FROM courier.events x
        WHERE (scope IS NULL OR x.tenant_id = scope) AND (after IS NULL OR x.id > after)
          AND (event_type IS NULL OR x.event_type = event_type)
        ORDER BY x.id LIMIT n) e;
  RETURN courier.api_page(items, n);
END
$$;

-- Deliveries: filters is a JSON object of status, subscription_id,
-- event_type, since, until (created_at window), each optional.
CREATE FUNCTION courier.api_deliveries(scope text, filters jsonb, after text DEFAULT NULL, lim integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  n integer := courier.api_limit(lim);
  items jsonb;
BEGIN
  SELECT jsonb_agg(to_jsonb(d) ORDER BY d.id) INTO items
  FROM (SELECT x.id, x.tenant_id, x.event_id, x.event_type, x.subscription_id, x.url, x.status, x.attempts,
               x.next_attempt_at, x.last_status_code, x.last_error, x.created_at, x.updated_at, x.completed_at
        FROM courier.delivery_status x
        WHERE (scope IS NULL OR x.tenant_id = scope) AND (after IS NULL OR x.id > after)
          AND (filters ->> 'status' IS NULL OR x.status = filters ->> 'status')
          AND (filters ->> 'subscription_id' IS NULL OR x.subscription_id = filters ->> 'subscription_id')
          AND (filters ->> 'event_type' IS NULL OR x.event_type = filters ->> 'event_type')
          AND (filters ->> 'since' IS NULL OR x.created_at >= (filters ->> 'since')::timestamptz)
          AND (filters ->> 'until' IS NULL OR x.created_at < (filters ->> 'until')::timestamptz)
        ORDER BY x.id LIMIT n) d;
  RETURN courier.api_page(items, n);
END
$$;

-- One delivery with its attempt timeline (error summaries are the redacted
-- ones the daemon wrote).
CREATE FUNCTION courier.api_delivery(scope text, delivery_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  result jsonb;
BEGIN
  SELECT to_jsonb(x) - 'lease_owner' - 'lease_expires_at' INTO result FROM courier.delivery_status x
  WHERE x.id = delivery_id AND (scope IS NULL OR x.tenant_id = scope);
  IF result IS NULL THEN
    RAISE EXCEPTION 'no delivery %', delivery_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN result || jsonb_build_object('attempts', coalesce(
    (SELECT jsonb_agg(jsonb_build_object('attempt', t.attempt, 'started_at', t.started_at,
                                         'duration_ms', t.duration_ms, 'status_code', t.status_code,
                                         'outcome', t.outcome, 'error_class', t.error_class,
                                         'retryable', t.retryable, 'error_summary', t.error_summary,
                                         'response_excerpt', t.response_excerpt)
                      ORDER BY t.attempt)
     FROM courier.delivery_timeline t WHERE t.delivery_id = api_delivery.delivery_id), '[]'::jsonb));
END
$$;

CREATE FUNCTION courier.api_dead_letters(scope text, filters jsonb, after text DEFAULT NULL,
                                         lim integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  n integer := courier.api_limit(lim);
  items jsonb;
BEGIN
  SELECT jsonb_agg(to_jsonb(d) ORDER BY d.delivery_id) INTO items
  FROM (SELECT x.delivery_id, x.tenant_id, x.subscription_id, x.url, x.attempts, x.last_status_code, x.last_error,
               x.dead_lettered_at, x.event_id, x.event_type, x.event_created_at
        FROM courier.dead_letters x
        WHERE (scope IS NULL OR x.tenant_id = scope) AND (after IS NULL OR x.delivery_id > after)
          AND (filters ->> 'subscription_id' IS NULL OR x.subscription_id = filters ->> 'subscription_id')
          AND (filters ->> 'event_type' IS NULL OR x.event_type = filters ->> 'event_type')
        ORDER BY x.delivery_id LIMIT n) d;
  RETURN courier.api_page(items, n, 'delivery_id');
END
$$;

-- Replay by filter and time window (courier.replay_deliveries), always
-- within the scope's tenant; an operator token may name a tenant or none
-- (all). {"dry_run": ..., "deliveries": how many (would be) re-queued}.
CREATE FUNCTION courier.api_replay(scope text, filters jsonb, dry_run boolean) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  tenant text := coalesce(scope, filters ->> 'tenant_id');
  n integer;
  sub text;
  created timestamptz;
BEGIN
  IF scope IS NOT NULL AND filters ->> 'tenant_id' IS NOT NULL AND filters ->> 'tenant_id' <> scope THEN
    RAISE EXCEPTION 'tenant_id: a tenant token replays its own deliveries only' USING ERRCODE = 'no_data_found';
  END IF;
  -- One dead letter (the console's replay button): its subscription and the
  -- microsecond it was created, through the same replay_deliveries.
  IF filters ->> 'delivery_id' IS NOT NULL THEN
    SELECT d.subscription_id, d.created_at INTO sub, created FROM courier.deliveries d
    WHERE d.id = filters ->> 'delivery_id' AND (tenant IS NULL OR d.tenant_id = tenant);
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no delivery %', filters ->> 'delivery_id' USING ERRCODE = 'no_data_found';
    END IF;
    n := courier.replay_deliveries(tenant, sub, NULL, created, created + interval '1 microsecond',
                                   ARRAY['dead_lettered'], false, coalesce(dry_run, false));
    RETURN jsonb_build_object('dry_run', coalesce(dry_run, false), 'deliveries', n);
  END IF;
  IF filters ->> 'subscription_id' IS NOT NULL THEN
    PERFORM 1 FROM courier.subscriptions s
    WHERE s.id = filters ->> 'subscription_id' AND (tenant IS NULL OR s.tenant_id = tenant);
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no subscription %', filters ->> 'subscription_id' USING ERRCODE = 'no_data_found';
    END IF;
  END IF;
  n := courier.replay_deliveries(tenant, filters ->> 'subscription_id', filters ->> 'event_type',
                                 (filters ->> 'since')::timestamptz, (filters ->> 'until')::timestamptz,
                                 ARRAY['dead_lettered'], false, coalesce(dry_run, false));
  RETURN jsonb_build_object('dry_run', coalesce(dry_run, false), 'deliveries', n);
END
$$;

-- The gateway's readiness probe: the schema versions applied.
CREATE FUNCTION courier.api_schema_version() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT max(m.version) FROM courier.schema_migrations m
$$;

-- Integration runs: enqueue through courier.enqueue_run (its checks: the
-- connection must be the tenant's), for the scope's tenant. Body: {tenant_id?,
-- connection_id, operation, method?, path?, body? (text), headers?,
-- idempotency_key?, trace_id?, external_ref_pointer?}.
CREATE FUNCTION courier.api_enqueue_run(scope text, body jsonb, header_key text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  tenant text;
  key text := coalesce(body ->> 'idempotency_key', header_key);
BEGIN
  PERFORM courier.api_check_body(body, ARRAY['tenant_id', 'connection_id', 'operation', 'method', 'path', 'body',
                                             'headers', 'idempotency_key', 'trace_id', 'external_ref_pointer']);
  tenant := courier.api_tenant(scope, body);
  IF header_key IS NOT NULL AND body ->> 'idempotency_key' IS NOT NULL AND header_key <> body ->> 'idempotency_key' THEN
    RAISE EXCEPTION 'idempotency_key: the body and the Idempotency-Key header differ'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Another tenant's connection and none at all are the same answer.
  IF NOT EXISTS (SELECT 1 FROM courier.connections c WHERE c.id = body ->> 'connection_id' AND c.tenant_id = tenant) THEN
    RAISE EXCEPTION 'no connection %', body ->> 'connection_id' USING ERRCODE = 'no_data_found';
  END IF;
  IF body ? 'headers' AND jsonb_typeof(body -> 'headers') <> 'object' THEN
    RAISE EXCEPTION 'headers: an object of header names and values' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN jsonb_build_object('id', courier.enqueue_run(tenant, body ->> 'connection_id', body ->> 'operation',
                                                      coalesce(body ->> 'method', 'POST'), coalesce(body ->> 'path', '/'),
                                                      body ->> 'body', coalesce(body -> 'headers', '{}'), key,
                                                      body ->> 'trace_id', body ->> 'external_ref_pointer'));
END
$$;

-- One run with its attempts and failures (courier.run_status, run_timeline).
CREATE FUNCTION courier.api_run(scope text, run_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  result jsonb;
BEGIN
  SELECT to_jsonb(x) - 'lease_owner' - 'lease_expires_at' INTO result FROM courier.run_status x
  WHERE x.id = run_id AND (scope IS NULL OR x.tenant_id = scope);
  IF result IS NULL THEN
    RAISE EXCEPTION 'no run %', run_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN result || jsonb_build_object(
    'attempts', coalesce((SELECT jsonb_agg(to_jsonb(t) - 'run_id' - 'tenant_id' - 'connection_id' - 'operation' - 'worker'
                                           ORDER BY t.attempt)
                          FROM courier.run_timeline t WHERE t.run_id = api_run.run_id), '[]'::jsonb),
    'failures', coalesce((SELECT jsonb_agg(jsonb_build_object('id', f.id, 'category', f.category,
                                                              'error_code', f.error_code, 'message', f.message,
                                                              'attempt', f.attempt, 'next_action', f.next_action,
                                                              'created_at', f.created_at, 'resolved_at', f.resolved_at)
                                           ORDER BY f.id)
                          FROM courier.failures f WHERE f.source = 'run' AND f.source_id = api_run.run_id), '[]'::jsonb));
END
$$;

CREATE FUNCTION courier.api_runs(scope text, filters jsonb, after text DEFAULT NULL, lim integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  n integer := courier.api_limit(lim);
  items jsonb;
BEGIN
  SELECT jsonb_agg(to_jsonb(d) - 'lease_owner' - 'lease_expires_at' ORDER BY d.id) INTO items
  FROM (SELECT * FROM courier.run_status x
        WHERE (scope IS NULL OR x.tenant_id = scope) AND (after IS NULL OR x.id > after)
          AND (filters ->> 'status' IS NULL OR x.status = filters ->> 'status')
          AND (filters ->> 'connection_id' IS NULL OR x.connection_id = filters ->> 'connection_id')
        ORDER BY x.id LIMIT n) d;
  RETURN courier.api_page(items, n);
END
$$;

-- Connections as courier.connection_health shows them (URLs redacted).
CREATE FUNCTION courier.api_connection(scope text, connection_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  result jsonb;
BEGIN
  SELECT to_jsonb(x) INTO result FROM courier.connection_health x
  WHERE x.id = connection_id AND (scope IS NULL OR x.tenant_id = scope);
  IF result IS NULL THEN
    RAISE EXCEPTION 'no connection %', connection_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN result;
END
$$;

CREATE FUNCTION courier.api_connections(scope text, after text DEFAULT NULL, lim integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  n integer := courier.api_limit(lim);
  items jsonb;
BEGIN
  SELECT jsonb_agg(to_jsonb(d) ORDER BY d.id) INTO items
  FROM (SELECT * FROM courier.connection_health x
        WHERE (scope IS NULL OR x.tenant_id = scope) AND (after IS NULL OR x.id > after)
        ORDER BY x.id LIMIT n) d;
  RETURN courier.api_page(items, n);
END
$$;

-- Create from a body {tenant_id? (operator tokens), provider, base_url, ...}:
-- courier.create_connection's rules, with a credential of another tenant
-- answered as an unknown one (its id does not leak). With an idempotency key
-- seen before: the connection it created, with "replayed": true.
CREATE FUNCTION courier.api_create_connection(scope text, body jsonb, idempotency_key text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  tenant text := courier.api_tenant(scope, body);
  earlier text;
  created text;
BEGIN
  IF idempotency_key IS NOT NULL THEN
    earlier := courier.api_idempotent_earlier(tenant, 'create_connection', idempotency_key);
    IF earlier IS NOT NULL THEN
      RETURN courier.api_connection(scope, earlier) || '{"replayed": true}'::jsonb;
    END IF;
  END IF;
  IF body ->> 'credential_id' IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM courier.credentials c WHERE c.id = body ->> 'credential_id' AND c.tenant_id = tenant) THEN
    RAISE EXCEPTION 'no credential %', body ->> 'credential_id' USING ERRCODE = 'no_data_found';
  END IF;
  created := courier.create_connection(tenant, body - 'tenant_id');
  IF idempotency_key IS NOT NULL THEN
    INSERT INTO courier.api_idempotency_keys (tenant_id, operation, key, object_id)
    VALUES (tenant, 'create_connection', idempotency_key, created);
  END IF;
  RETURN courier.api_connection(scope, created);
END
$$;

-- Retire or activate within the scope (courier.set_connection_status): the
-- connection as it is now, with its previous_status and pending_runs.
CREATE FUNCTION courier.api_set_connection_status(scope text, connection_id text, action text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  change jsonb;
BEGIN
  PERFORM 1 FROM courier.connections c
  WHERE c.id = connection_id AND (scope IS NULL OR c.tenant_id = scope) FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no connection %', connection_id USING ERRCODE = 'no_data_found';
  END IF;
  change := courier.set_connection_status(connection_id, action);
  RETURN courier.api_connection(scope, connection_id) || change;
END
$$;

-- Escalations: list (open ones unless filters.all), acknowledge.
CREATE FUNCTION courier.api_escalations(scope text, filters jsonb, after text DEFAULT NULL, lim integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  n integer := courier.api_limit(lim);
  items jsonb;
BEGIN
  SELECT jsonb_agg(to_jsonb(d) ORDER BY d.id) INTO items
  FROM (SELECT e.id, e.failure_id, e.tenant_id, e.source, e.source_id, e.reason, e.created_at, e.acknowledged_at
        FROM courier.escalations e
        WHERE (scope IS NULL OR e.tenant_id = scope) AND (after IS NULL OR e.id > after)
          AND (coalesce(filters ->> 'all', 'false') = 'true' OR e.acknowledged_at IS NULL)
        ORDER BY e.id LIMIT n) d;
  RETURN courier.api_page(items, n);
END
$$;

CREATE FUNCTION courier.api_acknowledge_escalation(scope text, escalation_id text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  result jsonb;
BEGIN
  UPDATE courier.escalations e SET acknowledged_at = coalesce(e.acknowledged_at, now())
  WHERE e.id = escalation_id AND (scope IS NULL OR e.tenant_id = scope)
  RETURNING jsonb_build_object('id', e.id, 'failure_id', e.failure_id, 'tenant_id', e.tenant_id, 'source', e.source,
                               'source_id', e.source_id, 'reason', e.reason, 'created_at', e.created_at,
                               'acknowledged_at', e.acknowledged_at)
  INTO result;
  IF result IS NULL THEN
    RAISE EXCEPTION 'no escalation %', escalation_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN result;
END
$$;

-- Inbound ingress (POST /ingress/{source_id}): a source per tenant and
-- provider, with its scheme and its signing secret, sealed with the master
-- key bound to the source id (the gateway opens it; pgcourierctl
-- ingress-source create seals it). tolerance_seconds: how far a signed
-- timestamp may be from now (schemes with a timestamp).
CREATE TABLE courier.ingress_sources (
  id                text PRIMARY KEY DEFAULT courier.new_id('src_'),
  tenant_id         text NOT NULL,
  scheme            text NOT NULL CHECK (scheme IN ('standard-webhooks', 'github', 'stripe', 'hmac-sha256')),
  sealed_secret     text NOT NULL CHECK (starts_with(sealed_secret, 'v1:')),
  event_type        text CHECK (event_type <> ''),  -- NULL: from the request (its type field or header)
  tolerance_seconds int NOT NULL DEFAULT 300 CHECK (tolerance_seconds BETWEEN 1 AND 86400),
  created_at        timestamptz NOT NULL DEFAULT now(),
  disabled_at       timestamptz
);

-- Every request to a source, accepted or refused (with the reason the
-- caller is not told), append-only.
CREATE TABLE courier.ingress_requests (
  id                   text PRIMARY KEY DEFAULT courier.new_id('inr_'),
  source_id            text NOT NULL REFERENCES courier.ingress_sources (id),
  tenant_id            text NOT NULL,
  received_at          timestamptz NOT NULL DEFAULT now(),
  accepted             boolean NOT NULL,
  reason               text CHECK (octet_length(reason) <= 512),
  provider_delivery_id text CHECK (octet_length(provider_delivery_id) <= 255),
  event_id             text REFERENCES courier.events (id),
  duplicate            boolean NOT NULL DEFAULT false
);
CREATE INDEX ingress_requests_source ON courier.ingress_requests (source_id, received_at);

CREATE FUNCTION courier.create_ingress_source(source_id text, tenant_id text, scheme text, sealed_secret text,
                                              event_type text DEFAULT NULL, tolerance_seconds integer DEFAULT 300)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  PERFORM courier.check_tenant_id(tenant_id);
  PERFORM courier.check_identifier(source_id, 'source_id');
  IF event_type ~ '[[:cntrl:]]' THEN
    RAISE EXCEPTION 'event_type: no control characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO courier.ingress_sources (id, tenant_id, scheme, sealed_secret, event_type, tolerance_seconds)
  VALUES (source_id, tenant_id, scheme, sealed_secret, nullif(event_type, ''), coalesce(tolerance_seconds, 300));
  RETURN source_id;
END
$$;

CREATE FUNCTION courier.list_ingress_sources()
RETURNS TABLE (id text, tenant_id text, scheme text, event_type text, tolerance_seconds integer,
               created_at timestamptz, disabled_at timestamptz, accepted bigint, refused bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT s.id, s.tenant_id, s.scheme, s.event_type, s.tolerance_seconds, s.created_at, s.disabled_at,
         (SELECT count(*) FROM courier.ingress_requests r WHERE r.source_id = s.id AND r.accepted),
         (SELECT count(*) FROM courier.ingress_requests r WHERE r.source_id = s.id AND NOT r.accepted)
  FROM courier.ingress_sources s ORDER BY s.id
$$;

-- What the gateway needs to verify a request to the source (sealed secret
-- included: the gateway holds the master key); no_data_found for an unknown
-- or disabled source.
CREATE FUNCTION courier.api_ingress_source(source_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  result jsonb;
BEGIN
  SELECT jsonb_build_object('id', s.id, 'tenant_id', s.tenant_id, 'scheme', s.scheme, 'sealed_secret',
                            s.sealed_secret, 'event_type', s.event_type, 'tolerance_seconds', s.tolerance_seconds)
  INTO result FROM courier.ingress_sources s WHERE s.id = source_id AND s.disabled_at IS NULL;
  IF result IS NULL THEN
    RAISE EXCEPTION 'no ingress source %', source_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN result;
END
$$;

-- A verified request becomes an inbound event of the source's tenant, fanned
-- out by the same trigger as every event; the provider's delivery id is its
-- idempotency key ('ingress:' source ':' id), so a provider's retry of the
-- same delivery creates nothing new. {"id": event id, "duplicate": bool}.
CREATE FUNCTION courier.api_ingress_accept(source_id text, provider_delivery_id text, event_type text, payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  src courier.ingress_sources;
  key text := 'ingress:' || source_id || ':' || provider_delivery_id;
  new_event text;
  existed boolean := false;
BEGIN
  SELECT * INTO src FROM courier.ingress_sources s WHERE s.id = source_id AND s.disabled_at IS NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no ingress source %', source_id USING ERRCODE = 'no_data_found';
  END IF;
  IF provider_delivery_id IS NULL OR provider_delivery_id = '' OR provider_delivery_id ~ '[[:cntrl:]]'
     OR length(key) > 255 THEN
    RAISE EXCEPTION 'provider_delivery_id: 1 to 200 characters, no control characters'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO courier.events AS e (tenant_id, event_type, payload, idempotency_key, direction)
  VALUES (src.tenant_id, coalesce(src.event_type, event_type), coalesce(payload, '{}'), key, 'inbound')
  ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING e.id INTO new_event;
  IF new_event IS NULL THEN
    existed := true;
    SELECT e.id INTO new_event FROM courier.events e WHERE e.tenant_id = src.tenant_id AND e.idempotency_key = key;
  END IF;
  INSERT INTO courier.ingress_requests (source_id, tenant_id, accepted, provider_delivery_id, event_id, duplicate)
  VALUES (src.id, src.tenant_id, true, provider_delivery_id, new_event, existed);
  RETURN jsonb_build_object('id', new_event, 'duplicate', existed);
END
$$;

CREATE FUNCTION courier.api_ingress_reject(source_id text, reason text, provider_delivery_id text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  INSERT INTO courier.ingress_requests (source_id, tenant_id, accepted, reason, provider_delivery_id)
  SELECT s.id, s.tenant_id, false, left(reason, 500),
         left(regexp_replace(provider_delivery_id, '[[:cntrl:]]', '', 'g'), 255)
  FROM courier.ingress_sources s WHERE s.id = source_id;
  RETURN jsonb_build_object('recorded', FOUND);
END
$$;

-- The console's overview, for an operator (every tenant) or one tenant.
CREATE FUNCTION courier.api_overview(scope text) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT jsonb_build_object(
    'queue_depth', (SELECT count(*) FROM courier.delivery_queue q WHERE scope IS NULL OR q.tenant_id = scope),
    'oldest_due_at', (SELECT min(q.due_at) FROM courier.delivery_queue q
                      WHERE q.lease_owner IS NULL AND q.due_at <= now() AND (scope IS NULL OR q.tenant_id = scope)),
    'dead_letters', (SELECT count(*) FROM courier.delivery_dead_letters x JOIN courier.deliveries d ON d.id = x.delivery_id
                     WHERE scope IS NULL OR d.tenant_id = scope),
    'paused_subscriptions', (SELECT count(*) FROM courier.subscriptions s
                             WHERE s.paused_at IS NOT NULL AND s.active AND (api_overview.scope IS NULL OR s.tenant_id = api_overview.scope)),
    'unhealthy_connections', (SELECT count(*) FROM courier.connections c
                              WHERE c.health IN ('unhealthy', 'degraded') AND (scope IS NULL OR c.tenant_id = scope)),
    'open_escalations', (SELECT count(*) FROM courier.escalations e
                         WHERE e.acknowledged_at IS NULL AND (scope IS NULL OR e.tenant_id = scope)),
    'runs_dead_lettered', (SELECT count(*) FROM courier.runs r
                           WHERE r.status = 'dead_lettered' AND (scope IS NULL OR r.tenant_id = scope)))
$$;

-- Credentials through the API: pgcourierctl's credential create and rotate
-- call the same functions (create_credential, rotate_credential in
-- 40_integrations.sql); these add the caller's scope. The secret is sealed by the gateway, bound to the
-- credential id, and never read back: only fingerprints and metadata.
CREATE FUNCTION courier.api_credential(scope text, credential_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  result jsonb;
BEGIN
  SELECT jsonb_build_object(
           'id', c.id, 'tenant_id', c.tenant_id, 'name', c.name, 'status', c.status,
           'active_version', v.version, 'fingerprint', v.fingerprint, 'expires_at', v.expires_at,
           'created_at', c.created_at, 'updated_at', c.updated_at,
           'versions', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                   'version', x.version, 'status', x.status, 'fingerprint', x.fingerprint,
                                   'created_at', x.created_at, 'activated_at', x.activated_at,
                                   'retired_at', x.retired_at, 'expires_at', x.expires_at,
                                   'verification_error', x.verification_error) ORDER BY x.version DESC)
                                 FROM courier.credential_versions x WHERE x.credential_id = c.id), '[]'::jsonb),
           'connections', coalesce((SELECT jsonb_agg(k.id ORDER BY k.id) FROM courier.connections k
                                    WHERE k.credential_id = c.id), '[]'::jsonb))
  INTO result
  FROM courier.credentials c
  LEFT JOIN courier.credential_versions v ON v.credential_id = c.id AND v.status = 'active'
  WHERE c.id = credential_id AND (scope IS NULL OR c.tenant_id = scope);
  IF result IS NULL THEN
    RAISE EXCEPTION 'no credential %', credential_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN result;
END
$$;

-- A credential and its version 1, active (courier.create_credential) for the
-- token's tenant, or the one an operator token names.
CREATE FUNCTION courier.api_create_credential(scope text, tenant_id text, name text, expires_at timestamptz,
                                              credential_id text, sealed_secret text, fingerprint text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  PERFORM courier.create_credential(courier.api_tenant(scope, jsonb_build_object('tenant_id', tenant_id)), name,
                                    expires_at, credential_id, sealed_secret, fingerprint);
  RETURN courier.api_credential(scope, credential_id);
END
$$;

-- The next version, rotating (courier.rotate_credential), within the scope.
CREATE FUNCTION courier.api_rotate_credential(scope text, credential_id text, sealed_secret text, fingerprint text,
                                              expires_at timestamptz) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  next_version int;
BEGIN
  PERFORM 1 FROM courier.credentials c
  WHERE c.id = credential_id AND (scope IS NULL OR c.tenant_id = scope) FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no credential %', credential_id USING ERRCODE = 'no_data_found';
  END IF;
  next_version := courier.rotate_credential(credential_id, sealed_secret, fingerprint, expires_at);
  RETURN courier.api_credential(scope, credential_id) || jsonb_build_object('rotating_version', next_version);
END
$$;

-- Retire: no connection may use it any more (retire or re-point those first);
-- then it and its versions are revoked.
CREATE FUNCTION courier.api_retire_credential(scope text, credential_id text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  users text;
BEGIN
  PERFORM 1 FROM courier.credentials c
  WHERE c.id = credential_id AND (scope IS NULL OR c.tenant_id = scope) FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no credential %', credential_id USING ERRCODE = 'no_data_found';
  END IF;
  SELECT string_agg(k.id, ', ' ORDER BY k.id) INTO users FROM courier.connections k
  WHERE k.credential_id = api_retire_credential.credential_id AND k.status <> 'retired';
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'credential % is used by connection(s) %; retire them or give them another credential first',
      credential_id, users USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  UPDATE courier.credentials c SET status = 'revoked', updated_at = now() WHERE c.id = credential_id;
  UPDATE courier.credential_versions v SET status = 'revoked', retired_at = coalesce(v.retired_at, now())
  WHERE v.credential_id = api_retire_credential.credential_id AND v.status IN ('active', 'rotating', 'inactive');
  RETURN courier.api_credential(scope, credential_id);
END
$$;

-- Redeliver from a cursor (courier.redeliver_events) within the scope: the
-- cursor must be an event of the subscription's tenant (another tenant's
-- event id is answered as an unknown one). Body: {from_event?, since?,
-- max_events?}. {"events_processed": n, "next_cursor": id or null}.
CREATE FUNCTION courier.api_redeliver(scope text, subscription_id text, body jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  tenant text;
  result jsonb;
BEGIN
  PERFORM courier.api_check_body(body, ARRAY['from_event', 'since', 'max_events']);
  PERFORM courier.api_check_subscription(scope, subscription_id);
  SELECT s.tenant_id INTO tenant FROM courier.subscriptions s WHERE s.id = subscription_id;
  IF body ->> 'from_event' IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM courier.events e WHERE e.id = body ->> 'from_event' AND e.tenant_id = tenant) THEN
    RAISE EXCEPTION 'no event %', body ->> 'from_event' USING ERRCODE = 'no_data_found';
  END IF;
  IF (body ->> 'max_events')::integer NOT BETWEEN 1 AND 10000 THEN
    RAISE EXCEPTION 'max_events: 1 to 10000' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT to_jsonb(r) INTO result
  FROM courier.redeliver_events(subscription_id, body ->> 'from_event', (body ->> 'since')::timestamptz,
                                coalesce((body ->> 'max_events')::integer, 1000)) r;
  RETURN result;
END
$$;
