-- 50_management: validation at the door and the management API.
--
-- Subscription and connection URLs and tenant ids come from tenants and
-- operators, through pgcourierctl, a future HTTP gateway, or plain SQL. The
-- rules they must meet are checked here, in the database, so that every
-- writer meets the same ones:
--   courier.check_endpoint_url(url, field)   URL syntax (below)
--   courier.check_tenant_id(tenant_id, field) the tenant id grammar
-- and BEFORE INSERT OR UPDATE triggers on courier.subscriptions (url,
-- tenant_id), courier.connections (base_url, token_url, tenant_id) and
-- courier.credentials (tenant_id) call them. pgcourierctl checks the same
-- rules before it writes (daemon/validate/, with the same wording), and more
-- that SQL cannot: host names converted to their IDNA ASCII form (libidn2),
-- IP literals in legacy spellings, and the named policy's endpoint rules
-- (require_https, allow lists) from the policies file. Whether a destination
-- may be contacted (loopback, private ranges, cloud metadata) is the policy's
-- business and is decided by the daemon before every request: these syntax
-- checks accept http://127.0.0.1/ (the test receivers live there).
--
-- The management API (SECURITY DEFINER, granted to courier_operator in
-- 90_roles.sql; pgcourierctl calls these, and so will an HTTP gateway):
--   courier.create_subscription(...)          a subscription and its first sealed secret
--   courier.update_subscription(id, changes)  PATCH semantics over the mutable fields
--   courier.rotate_subscription_secret(...)   add a sealed secret, expire the others after a grace period
--   courier.revoke_subscription_secrets(...)  revoke one secret, or all but the newest
-- Secrets are generated and sealed in C++ with the master key (the database
-- never sees one in plain text); these functions store what they are given.
--
-- The file is 50, not 25 as first planned: courier.connections and
-- courier.credentials are created in 40_integrations.sql, and their triggers
-- must come after them.

-- Untrusted text for an error message: as a JSON string (control characters
-- escaped, quotes around it), cut after 64 characters.
CREATE FUNCTION courier.quote_untrusted(value text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN length(value) > 64 THEN to_json(left(value, 64))::text || '...'
            ELSE to_json(value)::text END;

-- The grammar of tenant ids (and of operator-chosen ids): 1 to 128
-- characters, ASCII letters, digits, '.', '_', ':' and '-', starting with a
-- letter or digit. Tight on purpose: tenant ids end up in log lines, metrics
-- filters, settings files (tenants: [...]) and URLs of a gateway.
CREATE FUNCTION courier.check_identifier(value text, field text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF value IS NULL OR value ~ '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' THEN
    RETURN value;
  END IF;
  RAISE EXCEPTION '%: % is not valid: 1 to 128 characters (letters, digits, ''.'', ''_'', '':'' and ''-''), starting with a letter or digit',
    field, courier.quote_untrusted(value)
    USING ERRCODE = 'invalid_parameter_value';
END
$$;

CREATE FUNCTION courier.check_tenant_id(tenant_id text, field text DEFAULT 'tenant_id')
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
RETURN courier.check_identifier(tenant_id, field);

-- An absolute http(s) URL that the daemon can send to, checked in this order
-- (the first problem is reported, naming `field`; SQLSTATE 22023):
--   at most 2048 bytes; no control characters; no spaces;
--   scheme http or https (any case), then "//";
--   no user:password@ (receivers verify the Standard Webhooks signature instead);
--   no backslash; no fragment (#...);
--   a host: a bracketed IPv6 literal, or ASCII letters, digits, '-', '_' and
--   '.' in labels of 1 to 63 characters, 253 at most, no trailing dot, an
--   IPv4 address only as a dotted quad; a non-ASCII host is refused with a
--   hint to store its IDNA ASCII form;
--   an optional port from 1 to 65535;
--   no other non-ASCII character (percent-encode it).
-- Returns url unchanged (NULL stays NULL: NOT NULL is the column's business).
CREATE FUNCTION courier.check_endpoint_url(url text, field text DEFAULT 'url')
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  scheme text;
  rest text;
  authority text;
  host text;
  port text;
  parts text[];
  bad text;
  label text;
BEGIN
  IF url IS NULL THEN
    RETURN NULL;
  END IF;
  IF octet_length(url) > 2048 THEN
    RAISE EXCEPTION '%: the URL is % bytes long; at most 2048 are allowed', field, octet_length(url)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  bad := substring(url FROM '[\x01-\x1f\x7f]');
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION '%: the URL contains the control character U+%; percent-encode data in a URL',
      field, lpad(upper(to_hex(ascii(bad))), 4, '0')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF position(' ' IN url) > 0 THEN
    RAISE EXCEPTION '%: the URL contains a space; percent-encode it as %%20', field
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  parts := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*):(.*)$');
  IF parts IS NULL THEN
    RAISE EXCEPTION '%: % is not an absolute URL; expected http://HOST/PATH or https://HOST/PATH',
      field, courier.quote_untrusted(url)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  scheme := lower(parts[1]);
  rest := parts[2];
  IF scheme NOT IN ('http', 'https') THEN
    RAISE EXCEPTION '%: scheme % is not allowed; only http and https are', field, courier.quote_untrusted(scheme)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NOT starts_with(rest, '//') THEN
    RAISE EXCEPTION '%: expected // after %:', field, scheme
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  rest := substr(rest, 3);
  authority := substring(rest FROM '^[^/?#]*');
  IF position('@' IN authority) > 0 THEN
    RAISE EXCEPTION '%: user:password@ is not allowed in a URL (it would be stored and shown in plain text)', field
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Receivers authenticate pgcourier by verifying the Standard Webhooks signature '
                   '(webhook-signature header) with their signing secret; put no credentials in the URL.';
  END IF;
  IF position(E'\\' IN url) > 0 THEN
    RAISE EXCEPTION '%: the URL contains a backslash; percent-encode it as %%5C', field
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF position('#' IN url) > 0 THEN
    RAISE EXCEPTION '%: the URL has a fragment (#...), which is never sent to a receiver; remove it', field
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF starts_with(authority, '[') THEN
    parts := regexp_match(authority, '^\[([0-9A-Fa-f:.]*)\](:(.*))?$');
    IF parts IS NULL OR parts[1] = '' OR position(':' IN parts[1]) = 0 THEN
      RAISE EXCEPTION '%: host % is not a valid IPv6 literal', field, courier.quote_untrusted(authority)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    host := parts[1];
    port := parts[3];
  ELSE
    host := split_part(authority, ':', 1);
    port := CASE WHEN position(':' IN authority) > 0 THEN substr(authority, position(':' IN authority) + 1) END;
    IF host = '' THEN
      RAISE EXCEPTION '%: the URL has no host', field
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF host ~ '[^\x01-\x7f]' THEN
      RAISE EXCEPTION '%: host % is not ASCII; store its IDNA ASCII (punycode) form', field, courier.quote_untrusted(host)
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'pgcourierctl converts host names to that form (bücher.example becomes xn--bcher-kva.example).';
    END IF;
    IF host !~ '^[A-Za-z0-9._-]+$' THEN
      RAISE EXCEPTION '%: host % is not a valid host name (ASCII letters, digits, ''-'', ''_'' and ''.'')',
        field, courier.quote_untrusted(host)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF right(host, 1) = '.' THEN
      RAISE EXCEPTION '%: host % ends with a dot; write it without the dot', field, courier.quote_untrusted(host)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF length(host) > 253 THEN
      RAISE EXCEPTION '%: host name is % characters long; at most 253 are allowed', field, length(host)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH label IN ARRAY string_to_array(host, '.') LOOP
      IF label = '' OR length(label) > 63 THEN
        RAISE EXCEPTION '%: host % has an empty label or one longer than 63 characters', field,
          courier.quote_untrusted(host)
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
    END LOOP;
    -- A last label of digits (or 0x and hex) is an IP address: only the
    -- dotted quad is accepted, not the legacy forms curl and browsers also
    -- read (2130706433, 0x7f.1, 127.1 are all 127.0.0.1).
    label := split_part(host, '.', -1);
    IF label ~* '^([0-9]+|0x[0-9a-f]*)$' AND host !~
       '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$' THEN
      RAISE EXCEPTION '%: host % is an IP address in a legacy spelling (or not a valid one); write it as a dotted quad such as 127.0.0.1',
        field, courier.quote_untrusted(host)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;
  IF port IS NOT NULL AND (port !~ '^[0-9]{1,5}$' OR port::integer NOT BETWEEN 1 AND 65535) THEN
    RAISE EXCEPTION '%: port % is not a number from 1 to 65535', field, courier.quote_untrusted(port)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  bad := substring(url FROM '[^\x01-\x7f]');
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION '%: the URL contains the non-ASCII character % in its path or query; percent-encode it (UTF-8)',
      field, to_json(bad)::text
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN url;
END
$$;

-- Event types of a subscription: at least one, each a non-empty name or
-- pattern ('order.created', 'order.*', '*') without control characters or
-- surrounding spaces, at most 256 characters.
CREATE FUNCTION courier.check_event_types(event_types text[], field text DEFAULT 'event_types')
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t text;
BEGIN
  IF event_types IS NULL OR cardinality(event_types) = 0 THEN
    RAISE EXCEPTION '%: at least one event type is needed (a name such as order.created, a prefix order.*, or *)', field
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH t IN ARRAY event_types LOOP
    IF t IS NULL OR t = '' OR t ~ '[\x01-\x1f\x7f]' OR t <> btrim(t) OR length(t) > 256 THEN
      RAISE EXCEPTION '%: % is not an event type (1 to 256 characters, no control characters or surrounding spaces)',
        field, coalesce(courier.quote_untrusted(t), 'null')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  RETURN event_types;
END
$$;

-- A policy name (a key of the policies file; whether it exists there is
-- checked by pgcourierctl, which can read the file).
CREATE FUNCTION courier.check_policy_name(policy text, field text DEFAULT 'policy')
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF policy IS NULL OR policy = '' OR policy ~ '[\x01-\x1f\x7f]' OR length(policy) > 128 THEN
    RAISE EXCEPTION '%: % is not a policy name (1 to 128 characters, no control characters)',
      field, coalesce(courier.quote_untrusted(policy), 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN policy;
END
$$;

-- The triggers: every writer meets the checks, whatever it called.
-- UPDATE OF the checked columns only: the daemon's frequent updates of
-- counters and health never run them.
CREATE FUNCTION courier.check_subscription_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  PERFORM courier.check_tenant_id(NEW.tenant_id);
  PERFORM courier.check_endpoint_url(NEW.url, 'url');
  RETURN NEW;
END
$$;
CREATE TRIGGER subscriptions_check BEFORE INSERT OR UPDATE OF tenant_id, url ON courier.subscriptions
  FOR EACH ROW EXECUTE FUNCTION courier.check_subscription_row();

CREATE FUNCTION courier.check_connection_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  PERFORM courier.check_tenant_id(NEW.tenant_id);
  PERFORM courier.check_endpoint_url(NEW.base_url, 'base_url');
  PERFORM courier.check_endpoint_url(NEW.token_url, 'token_url');
  RETURN NEW;
END
$$;
CREATE TRIGGER connections_check BEFORE INSERT OR UPDATE OF tenant_id, base_url, token_url ON courier.connections
  FOR EACH ROW EXECUTE FUNCTION courier.check_connection_row();

CREATE FUNCTION courier.check_credential_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  PERFORM courier.check_tenant_id(NEW.tenant_id);
  RETURN NEW;
END
$$;
CREATE TRIGGER credentials_check BEFORE INSERT OR UPDATE OF tenant_id ON courier.credentials
  FOR EACH ROW EXECUTE FUNCTION courier.check_credential_row();

-- A sealed signing secret as signing::SecretBox::Seal writes it (v1: + base64)
-- and its last 4 characters for display.
CREATE FUNCTION courier.check_sealed_secret(sealed_secret text, secret_last4 text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF sealed_secret IS NULL OR sealed_secret !~ '^v1:[A-Za-z0-9+/]+={0,2}$' THEN
    RAISE EXCEPTION 'sealed_secret: expected a secret sealed with the master key (v1:BASE64), as pgcourierctl writes it'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF secret_last4 IS NULL OR length(secret_last4) <> 4 OR secret_last4 ~ '[^A-Za-z0-9+/=_-]' THEN
    RAISE EXCEPTION 'secret_last4: expected the last 4 characters of the secret'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
END
$$;

-- A subscription and its first signing secret, in one transaction; returns
-- its id. The secret is sealed by the caller bound to the subscription id (the
-- id is the associated data of AES-GCM), so a sealed secret needs the id it
-- was sealed for: take one from courier.new_id('sub_') first. Without a
-- secret the subscription's deliveries are held until one is added
-- (rotate_subscription_secret).
CREATE FUNCTION courier.create_subscription(
    tenant_id text, url text, event_types text[],
    sealed_secret text DEFAULT NULL, secret_last4 text DEFAULT NULL,
    policy text DEFAULT 'default', description text DEFAULT NULL, subscription_id text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  created text;
BEGIN
  PERFORM courier.check_tenant_id(tenant_id);
  PERFORM courier.check_endpoint_url(url, 'url');
  PERFORM courier.check_event_types(event_types);
  PERFORM courier.check_policy_name(policy);
  PERFORM courier.check_identifier(subscription_id, 'subscription_id');
  IF sealed_secret IS NOT NULL OR secret_last4 IS NOT NULL THEN
    PERFORM courier.check_sealed_secret(sealed_secret, secret_last4);
    IF subscription_id IS NULL THEN
      RAISE EXCEPTION 'subscription_id: needed with sealed_secret, which is sealed bound to the subscription id'
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Take an id from courier.new_id(''sub_''), seal the secret for it, then create the subscription.';
    END IF;
  END IF;
  IF subscription_id IS NOT NULL AND EXISTS (SELECT 1 FROM courier.subscriptions s WHERE s.id = subscription_id) THEN
    RAISE EXCEPTION 'subscription_id: a subscription % already exists', subscription_id
      USING ERRCODE = 'unique_violation';
  END IF;
  INSERT INTO courier.subscriptions AS s (id, tenant_id, url, event_types, policy, description)
  VALUES (coalesce(subscription_id, courier.new_id('sub_')), tenant_id, url, event_types, policy,
          nullif(description, ''))
  RETURNING s.id INTO created;
  IF sealed_secret IS NOT NULL THEN
    INSERT INTO courier.subscription_secrets (subscription_id, sealed_secret, last4)
    VALUES (created, sealed_secret, secret_last4);
  END IF;
  RETURN created;
END
$$;

-- PATCH a subscription: every key of `changes` (a JSON object) is a field to
-- change; a null value clears a field that may be NULL (description,
-- ordering_key_field and the limits, which then fall back to the policy's).
-- An unknown key is an error naming it; so is a value of the wrong type.
-- Returns the updated row; raises no_data_found for an unknown id.
--
-- Extension point: a new mutable field is one name in `mutable` and one block
-- below, and one row of the field table in tools/ctl/subscriptions.cpp (as
-- the event filter and scope of 60_catalog.sql were added).
CREATE FUNCTION courier.update_subscription(subscription_id text, changes jsonb)
RETURNS courier.subscriptions
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  mutable constant text[] := ARRAY['url', 'event_types', 'policy', 'description', 'ordering', 'ordering_key_field',
                                   'max_in_flight', 'rate_limit_per_second', 'rate_limit_burst',
                                   'filter', 'scope'];  -- the last two: 60_catalog.sql
  unknown text;
  v jsonb;
  expected text;
  s courier.subscriptions;
BEGIN
  IF changes IS NULL OR jsonb_typeof(changes) <> 'object' THEN
    RAISE EXCEPTION 'changes: expected a JSON object of the fields to change, e.g. {"url": "https://..."}'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT string_agg(to_json(k)::text, ', ' ORDER BY k) INTO unknown
  FROM jsonb_object_keys(changes) AS k WHERE k <> ALL (mutable);
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION 'changes: unknown field %; the fields that can change are %', unknown, array_to_string(mutable, ', ')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT * INTO s FROM courier.subscriptions x WHERE x.id = subscription_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no subscription %', subscription_id USING ERRCODE = 'no_data_found';
  END IF;

  -- Fields that may not be cleared: a string (url, policy, ordering) or an array (event_types).
  FOREACH unknown IN ARRAY ARRAY['url', 'event_types', 'policy', 'ordering'] LOOP
    IF changes ? unknown AND jsonb_typeof(changes -> unknown) = 'null' THEN
      RAISE EXCEPTION '%: cannot be cleared (null); give a value', unknown USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  -- Every other present value: null, or of its field's JSON type.
  FOR unknown, v IN SELECT key, value FROM jsonb_each(changes) LOOP
    expected := CASE WHEN unknown = 'event_types' THEN 'array'
                     WHEN unknown = 'scope' THEN 'object'
                     WHEN unknown IN ('max_in_flight', 'rate_limit_per_second', 'rate_limit_burst') THEN 'number'
                     ELSE 'string' END;
    IF jsonb_typeof(v) <> 'null' AND jsonb_typeof(v) <> expected THEN
      RAISE EXCEPTION '%: expected a JSON %, got %', unknown,
        replace(replace(replace(expected, 'array', 'array of strings'), 'object', 'object of strings'), 'number',
                CASE WHEN unknown = 'rate_limit_per_second' THEN 'number' ELSE 'whole number' END),
        left(v::text, 64)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;

  IF changes ? 'url' THEN
    s.url := courier.check_endpoint_url(changes ->> 'url', 'url');
  END IF;
  IF changes ? 'event_types' THEN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(changes -> 'event_types') e WHERE jsonb_typeof(e) <> 'string') THEN
      RAISE EXCEPTION 'event_types: expected a JSON array of strings' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s.event_types := courier.check_event_types(ARRAY(SELECT jsonb_array_elements_text(changes -> 'event_types')));
  END IF;
  IF changes ? 'policy' THEN
    s.policy := courier.check_policy_name(changes ->> 'policy');
  END IF;
  IF changes ? 'description' THEN
    s.description := nullif(changes ->> 'description', '');
  END IF;
  IF changes ? 'ordering' THEN
    IF changes ->> 'ordering' NOT IN ('none', 'fifo') THEN
      RAISE EXCEPTION 'ordering: expected none or fifo, got %', courier.quote_untrusted(changes ->> 'ordering')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s.ordering := changes ->> 'ordering';
  END IF;
  IF changes ? 'ordering_key_field' THEN
    s.ordering_key_field := nullif(changes ->> 'ordering_key_field', '');
    IF s.ordering_key_field ~ '[\x01-\x1f\x7f]' OR length(s.ordering_key_field) > 128 THEN
      RAISE EXCEPTION 'ordering_key_field: expected the name of a top-level payload field (at most 128 characters)'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;
  FOREACH unknown IN ARRAY ARRAY['max_in_flight', 'rate_limit_burst'] LOOP
    IF changes ? unknown AND jsonb_typeof(changes -> unknown) = 'number'
       AND ((changes ->> unknown)::numeric <> trunc((changes ->> unknown)::numeric)
            OR (changes ->> unknown)::numeric NOT BETWEEN 1 AND 1000000) THEN
      RAISE EXCEPTION '%: expected a whole number from 1 to 1000000, got %', unknown, changes ->> unknown
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  IF changes ? 'max_in_flight' THEN
    s.max_in_flight := (changes ->> 'max_in_flight')::integer;
  END IF;
  IF changes ? 'rate_limit_burst' THEN
    s.rate_limit_burst := (changes ->> 'rate_limit_burst')::integer;
  END IF;
  IF changes ? 'rate_limit_per_second' THEN
    IF (changes ->> 'rate_limit_per_second')::numeric NOT BETWEEN 0.000001 AND 1000000 THEN
      RAISE EXCEPTION 'rate_limit_per_second: expected requests per second, above 0 and at most 1000000, got %',
        changes ->> 'rate_limit_per_second'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s.rate_limit_per_second := (changes ->> 'rate_limit_per_second')::double precision;
  END IF;
  -- The event filter and scope (60_catalog.sql checks them; null clears).
  IF changes ? 'filter' THEN
    s.filter := courier.check_filter(changes ->> 'filter');
  END IF;
  IF changes ? 'scope' THEN
    s.scope := courier.check_scope(CASE WHEN jsonb_typeof(changes -> 'scope') = 'object' THEN changes -> 'scope' END);
  END IF;

  UPDATE courier.subscriptions x
  SET url = s.url, event_types = s.event_types, policy = s.policy, description = s.description,
      ordering = s.ordering, ordering_key_field = s.ordering_key_field, max_in_flight = s.max_in_flight,
      rate_limit_per_second = s.rate_limit_per_second, rate_limit_burst = s.rate_limit_burst,
      filter = s.filter, scope = s.scope, updated_at = now()
  WHERE x.id = subscription_id
  RETURNING x.* INTO s;
  RETURN s;
END
$$;

-- A new signing secret (sealed by the caller, bound to the subscription id);
-- the other active secrets expire after `grace` unless they already expire
-- earlier. Deliveries are signed with every active secret, so receivers can
-- switch during the grace period. Returns the new secret ('created'), the
-- secrets now expiring ('expiring') and those keeping an earlier expiry
-- ('kept'), each group newest first; raises no_data_found for an unknown id.
CREATE FUNCTION courier.rotate_subscription_secret(subscription_id text, sealed_secret text, secret_last4 text,
                                                   grace interval DEFAULT interval '24 hours')
RETURNS TABLE (id text, last4 text, created_at timestamptz, expires_at timestamptz, change text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_column
DECLARE
  sub_id constant text := rotate_subscription_secret.subscription_id;
  grace_until constant timestamptz := now() + rotate_subscription_secret.grace;
  created courier.subscription_secrets;
BEGIN
  PERFORM 1 FROM courier.subscriptions s WHERE s.id = sub_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no subscription %', sub_id USING ERRCODE = 'no_data_found';
  END IF;
  IF rotate_subscription_secret.grace IS NULL OR rotate_subscription_secret.grace < interval '0' THEN
    RAISE EXCEPTION 'grace: expected a period of 0 or more (e.g. 24 hours)' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM courier.check_sealed_secret(rotate_subscription_secret.sealed_secret, rotate_subscription_secret.secret_last4);
  INSERT INTO courier.subscription_secrets AS x (subscription_id, sealed_secret, last4)
  VALUES (sub_id, rotate_subscription_secret.sealed_secret, rotate_subscription_secret.secret_last4)
  RETURNING x.* INTO created;
  RETURN QUERY
  WITH expiring AS (
    UPDATE courier.subscription_secrets x SET expires_at = grace_until
    WHERE x.subscription_id = sub_id AND x.id <> created.id AND x.revoked_at IS NULL
      AND (x.expires_at IS NULL OR x.expires_at > grace_until)
    RETURNING x.id, x.last4, x.created_at, x.expires_at
  ), listed AS (
    SELECT created.id, created.last4, created.created_at, created.expires_at, 'created' AS change, 1 AS rank
    UNION ALL
    SELECT e.id, e.last4, e.created_at, e.expires_at, 'expiring', 2 FROM expiring e
    UNION ALL
    -- the outer query sees the rows as they were before the UPDATE above
    SELECT x.id, x.last4, x.created_at, x.expires_at, 'kept', 3
    FROM courier.subscription_secrets x
    WHERE x.subscription_id = sub_id AND x.id <> created.id AND x.revoked_at IS NULL
      AND (x.expires_at IS NULL OR x.expires_at > now()) AND x.id NOT IN (SELECT e.id FROM expiring e)
  )
  SELECT l.id, l.last4, l.created_at, l.expires_at, l.change FROM listed l ORDER BY l.rank, l.created_at DESC, l.id DESC;
END
$$;

-- Revokes `secret_id`, or with NULL every active secret but the newest.
-- Returns the revoked secrets ('revoked') and then the active ones left
-- ('active'), newest first. Refuses (SQLSTATE 55000) to revoke a secret that
-- is not active or the last active one (the subscription could sign nothing);
-- raises no_data_found for an unknown subscription or secret.
CREATE FUNCTION courier.revoke_subscription_secrets(subscription_id text, secret_id text DEFAULT NULL)
RETURNS TABLE (id text, last4 text, created_at timestamptz, expires_at timestamptz, change text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_column
DECLARE
  sub_id constant text := revoke_subscription_secrets.subscription_id;
  one constant text := revoke_subscription_secrets.secret_id;
  active_now boolean;
  newest text;
BEGIN
  PERFORM 1 FROM courier.subscriptions s WHERE s.id = sub_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no subscription %', sub_id USING ERRCODE = 'no_data_found';
  END IF;
  SELECT x.id INTO newest FROM courier.subscription_secrets x
  WHERE x.subscription_id = sub_id AND x.revoked_at IS NULL AND (x.expires_at IS NULL OR x.expires_at > now())
  ORDER BY x.created_at DESC, x.id DESC LIMIT 1;
  IF one IS NOT NULL THEN
    SELECT x.revoked_at IS NULL AND (x.expires_at IS NULL OR x.expires_at > now()) INTO active_now
    FROM courier.subscription_secrets x WHERE x.subscription_id = sub_id AND x.id = one;
    IF NOT FOUND THEN
      RAISE EXCEPTION '% has no secret %', sub_id, one USING ERRCODE = 'no_data_found';
    END IF;
    IF NOT active_now THEN
      RAISE EXCEPTION 'secret % of % is already revoked or expired', one, sub_id
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF (SELECT count(*) FROM courier.subscription_secrets x
        WHERE x.subscription_id = sub_id AND x.revoked_at IS NULL AND (x.expires_at IS NULL OR x.expires_at > now())) <= 1 THEN
      RAISE EXCEPTION 'refusing to revoke %: it is the last active secret of %', one, sub_id
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = format('Add one first: pgcourierctl subscription rotate-secret %s', sub_id);
    END IF;
  END IF;
  RETURN QUERY
  WITH revoked AS (
    UPDATE courier.subscription_secrets x SET revoked_at = now()
    WHERE x.subscription_id = sub_id AND x.revoked_at IS NULL AND (x.expires_at IS NULL OR x.expires_at > now())
      AND CASE WHEN one IS NULL THEN x.id <> newest ELSE x.id = one END
    RETURNING x.id, x.last4, x.created_at, x.expires_at
  )
  SELECT r.id, r.last4, r.created_at, r.expires_at, 'revoked'::text FROM revoked r ORDER BY r.created_at DESC, r.id DESC;
  RETURN QUERY
  SELECT x.id, x.last4, x.created_at, x.expires_at, 'active'::text FROM courier.subscription_secrets x
  WHERE x.subscription_id = sub_id AND x.revoked_at IS NULL AND (x.expires_at IS NULL OR x.expires_at > now())
  ORDER BY x.created_at DESC, x.id DESC;
END
$$;
