-- 60_catalog: the event side of issue 17. Payload filters and scopes of
-- subscriptions (evaluated by the fan-out of 10_core.sql), event labels, the
-- event catalog (courier.event_types) with its JSON Schema subset validator,
-- held by every insert of an event, and the change feed (event_feed()).
--
-- The columns these need are in the CREATE TABLEs of 10_core.sql
-- (subscriptions.filter, subscriptions.scope, events.labels,
-- events.feed_xid), the fan-out's two conditions in fan_out_event(), the
-- labels argument in publish(), and 'filter' / 'scope' in
-- update_subscription() (50_management.sql). Everything else is here.
--
-- Everything a tenant sends here (labels, filters, scopes, schemas) is
-- bounded in size before it is looked at further, and must be of the shape
-- described: nothing else is stored.

-- ---------------------------------------------------------------------------
-- Labels and scopes
-- ---------------------------------------------------------------------------

-- A label set: a JSON object of at most 32 labels, each key 1 to 64
-- characters of A-Z a-z 0-9 _ . : / - (not starting with . : / -), each value
-- a string of at most 256 characters without control characters, 4 KiB of
-- JSON at most. NULL is the empty set. Returns the labels.
CREATE FUNCTION courier.check_labels(labels jsonb, field text DEFAULT 'labels')
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  k text;
  v jsonb;
BEGIN
  IF labels IS NULL THEN
    RETURN '{}'::jsonb;
  END IF;
  IF jsonb_typeof(labels) <> 'object' THEN
    RAISE EXCEPTION '%: expected a JSON object of strings such as {"channel": "web"}, got a JSON %',
      field, jsonb_typeof(labels)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF octet_length(labels::text) > 4096 THEN
    RAISE EXCEPTION '%: % bytes of JSON; at most 4096 are allowed', field, octet_length(labels::text)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF (SELECT count(*) FROM jsonb_object_keys(labels)) > 32 THEN
    RAISE EXCEPTION '%: % labels; at most 32 are allowed', field, (SELECT count(*) FROM jsonb_object_keys(labels))
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR k, v IN SELECT key, value FROM jsonb_each(labels) LOOP
    IF k !~ '^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}$' THEN
      RAISE EXCEPTION '%: % is not a label name (1 to 64 characters of A-Z a-z 0-9 _ . : / -, not starting with . : / -)',
        field, courier.quote_untrusted(k)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(v) <> 'string' THEN
      RAISE EXCEPTION '%.%: expected a string, got a JSON %', field, k, jsonb_typeof(v)
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF length(v #>> '{}') > 256 OR (v #>> '{}') ~ '[\x01-\x1f\x7f]' THEN
      RAISE EXCEPTION '%.%: at most 256 characters, no control characters', field, k
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  RETURN labels;
END
$$;

-- A subscription's scope: a label set the event's labels must contain
-- (labels @> scope). NULL and {} both mean "no scope" and are stored as NULL.
CREATE FUNCTION courier.check_scope(scope jsonb, field text DEFAULT 'scope')
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  IF scope IS NULL OR scope = '{}'::jsonb THEN
    RETURN NULL;
  END IF;
  RETURN courier.check_labels(scope, field);
END
$$;

-- ---------------------------------------------------------------------------
-- Payload filters
-- ---------------------------------------------------------------------------

-- A subscription's filter: a jsonpath predicate over the payload, evaluated
-- at fan-out as `payload @@ filter`. NULL or '' means none. Refused:
-- * text that does not parse (PostgreSQL's own message, after "filter: ");
-- * more than 1024 characters;
-- * a path that is not a predicate ('$.amount', '$.amount ? (@ > 100)'):
--   `@@` of one is NULL for every payload (never a match), the classic
--   mistake; write '$.amount > 100' or 'exists($.amount ? (@ > 100))';
-- * variables ($x): the fan-out passes none, so the filter could never match.
-- Evaluation is bounded by the payload (max_payload_bytes) and the filter's
-- length; a predicate that fails on a payload (strict mode, a type error) is
-- no match.
CREATE FUNCTION courier.check_filter(filter text, field text DEFAULT 'filter')
RETURNS jsonpath
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  parsed jsonpath;
BEGIN
  IF filter IS NULL OR btrim(filter) = '' THEN
    RETURN NULL;
  END IF;
  IF length(filter) > 1024 THEN
    RAISE EXCEPTION '%: % characters; at most 1024 are allowed', field, length(filter)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    parsed := filter::jsonpath;
  EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION '%: %', field, SQLERRM
      USING ERRCODE = SQLSTATE, HINT = 'a jsonpath predicate over the payload, e.g. $.amount > 100';
  END;
  BEGIN
    PERFORM jsonb_path_match('{}'::jsonb, parsed);
  EXCEPTION
    WHEN SQLSTATE '22038' THEN  -- singleton_sql_json_item_required: not a predicate
      RAISE EXCEPTION '%: % is a path, not a predicate: it would match no event', field, courier.quote_untrusted(filter)
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'compare it (e.g. $.amount > 100, $.paid == true) or test for it (exists($.amount ? (@ > 100)))';
    WHEN SQLSTATE '42704' THEN  -- a variable
      RAISE EXCEPTION '%: %', field, SQLERRM
        USING ERRCODE = 'invalid_parameter_value', HINT = 'a filter takes no variables; write the value in the predicate';
    WHEN OTHERS THEN
      NULL;  -- an error of evaluation on {} (strict mode): the predicate itself is fine
  END;
  RETURN parsed;
END
$$;

-- ---------------------------------------------------------------------------
-- The event catalog
-- ---------------------------------------------------------------------------

-- Event types, per tenant or (tenant_id NULL) for every tenant. A tenant's
-- own type of a name wins over the global one. `schema` (optional) is a JSON
-- Schema of the subset below, which every event of the type is held to, at
-- insert; `specimen` (optional) is an example payload, valid against it, that
-- the console shows and `pgcourierctl event-type send-example` delivers.
CREATE TABLE courier.event_types (
  id          text PRIMARY KEY DEFAULT courier.new_id('evtype_'),
  tenant_id   text,
  name        text NOT NULL,
  description text,
  schema      jsonb,
  specimen    jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE NULLS NOT DISTINCT (tenant_id, name)
);
CREATE INDEX event_types_name ON courier.event_types (name, tenant_id);

-- The JSON Schema subset, checked when a schema is stored (a keyword outside
-- it is refused rather than ignored, so no schema appears to promise what is
-- not checked):
--   type                 a name or an array of names: object, array, string,
--                        number, integer, boolean, null
--   required             an array of property names
--   properties           an object of schemas
--   additionalProperties true or false
--   items                a schema, for every element of an array
--   enum                 an array of allowed values (compared as JSON)
--   minimum, maximum     numbers (inclusive)
--   minLength, maxLength whole numbers (characters)
--   title, description, $schema, $id, $comment, default, examples: annotations, not checked
-- At most 64 KiB of JSON, nested at most 32 schemas deep. Raises an error
-- naming the schema path; returns the schema.
CREATE FUNCTION courier.check_json_schema(schema jsonb, path text DEFAULT '#', depth integer DEFAULT 0)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  kw text;
  v jsonb;
  t jsonb;
  known constant text[] := ARRAY['type', 'required', 'properties', 'additionalProperties', 'items', 'enum',
                                 'minimum', 'maximum', 'minLength', 'maxLength',
                                 'title', 'description', '$schema', '$id', '$comment', 'default', 'examples'];
  types constant text[] := ARRAY['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'];
BEGIN
  IF depth = 0 AND octet_length(schema::text) > 65536 THEN
    RAISE EXCEPTION 'schema: % bytes of JSON; at most 65536 are allowed', octet_length(schema::text)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF depth > 32 THEN
    RAISE EXCEPTION 'schema: %: nested more than 32 schemas deep', path USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_typeof(schema) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'schema: %: expected a JSON object (a schema), got a JSON %', path, coalesce(jsonb_typeof(schema), 'null')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR kw, v IN SELECT key, value FROM jsonb_each(schema) LOOP
    IF kw <> ALL (known) THEN
      RAISE EXCEPTION 'schema: %/%: unsupported keyword; the supported subset is %', path, courier.quote_untrusted(kw),
        array_to_string(known[1:10], ', ')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    CASE kw
      WHEN 'type' THEN
        IF jsonb_typeof(v) = 'string' THEN
          v := jsonb_build_array(v);
        END IF;
        IF jsonb_typeof(v) <> 'array' OR jsonb_array_length(v) = 0 THEN
          RAISE EXCEPTION 'schema: %/type: expected a type name or an array of them', path
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR t IN SELECT value FROM jsonb_array_elements(v) LOOP
          IF jsonb_typeof(t) <> 'string' OR (t #>> '{}') <> ALL (types) THEN
            RAISE EXCEPTION 'schema: %/type: % is not one of %', path, left(t::text, 64), array_to_string(types, ', ')
              USING ERRCODE = 'invalid_parameter_value';
          END IF;
        END LOOP;
      WHEN 'required' THEN
        IF jsonb_typeof(v) <> 'array' OR EXISTS (SELECT 1 FROM jsonb_array_elements(v) e WHERE jsonb_typeof(e) <> 'string') THEN
          RAISE EXCEPTION 'schema: %/required: expected an array of property names', path
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
      WHEN 'properties' THEN
        IF jsonb_typeof(v) <> 'object' THEN
          RAISE EXCEPTION 'schema: %/properties: expected an object of schemas', path
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR kw, t IN SELECT key, value FROM jsonb_each(v) LOOP
          PERFORM courier.check_json_schema(t, path || '/properties/' || kw, depth + 1);
        END LOOP;
      WHEN 'additionalProperties' THEN
        IF jsonb_typeof(v) <> 'boolean' THEN
          RAISE EXCEPTION 'schema: %/additionalProperties: only true or false is supported', path
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
      WHEN 'items' THEN
        PERFORM courier.check_json_schema(v, path || '/items', depth + 1);
      WHEN 'enum' THEN
        IF jsonb_typeof(v) <> 'array' OR jsonb_array_length(v) = 0 THEN
          RAISE EXCEPTION 'schema: %/enum: expected a non-empty array of values', path
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
      WHEN 'minimum', 'maximum' THEN
        IF jsonb_typeof(v) <> 'number' THEN
          RAISE EXCEPTION 'schema: %/%: expected a number', path, kw USING ERRCODE = 'invalid_parameter_value';
        END IF;
      WHEN 'minLength', 'maxLength' THEN
        IF jsonb_typeof(v) <> 'number' OR (v::text)::numeric <> trunc((v::text)::numeric) OR (v::text)::numeric < 0 THEN
          RAISE EXCEPTION 'schema: %/%: expected a whole number of 0 or more', path, kw
            USING ERRCODE = 'invalid_parameter_value';
        END IF;
      ELSE
        NULL;  -- annotations
    END CASE;
  END LOOP;
  RETURN schema;
END
$$;

-- The first way `instance` fails `schema` (a schema check_json_schema accepts),
-- as 'PATH: what was expected' with PATH in jsonpath notation ($.amount,
-- $.lines[2].sku); NULL when it conforms. Pure; anyone may call it.
CREATE FUNCTION courier.json_schema_error(schema jsonb, instance jsonb, path text DEFAULT '$')
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  actual text := jsonb_typeof(instance);
  types jsonb;
  k text;
  sub jsonb;
  err text;
  i integer;
  n numeric;
BEGIN
  IF schema ? 'type' THEN
    types := CASE WHEN jsonb_typeof(schema -> 'type') = 'string' THEN jsonb_build_array(schema -> 'type')
                  ELSE schema -> 'type' END;
    IF NOT (types ? actual
            OR (actual = 'number' AND types ? 'integer' AND (instance::text)::numeric = trunc((instance::text)::numeric))) THEN
      RETURN path || ': expected ' || (SELECT string_agg(t, ' or ') FROM jsonb_array_elements_text(types) t)
             || ', got ' || CASE WHEN actual = 'number' AND types ? 'integer' THEN 'a fraction' ELSE actual END;
    END IF;
  END IF;
  IF schema ? 'enum' AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(schema -> 'enum') e WHERE e.value = instance) THEN
    RETURN path || ': expected one of ' || left((schema -> 'enum')::text, 200);
  END IF;
  IF actual = 'number' THEN
    n := (instance::text)::numeric;
    IF schema ? 'minimum' AND n < ((schema ->> 'minimum')::numeric) THEN
      RETURN path || ': expected at least ' || (schema ->> 'minimum');
    END IF;
    IF schema ? 'maximum' AND n > ((schema ->> 'maximum')::numeric) THEN
      RETURN path || ': expected at most ' || (schema ->> 'maximum');
    END IF;
  ELSIF actual = 'string' THEN
    IF schema ? 'minLength' AND length(instance #>> '{}') < (schema ->> 'minLength')::numeric THEN
      RETURN path || ': expected at least ' || (schema ->> 'minLength') || ' characters';
    END IF;
    IF schema ? 'maxLength' AND length(instance #>> '{}') > (schema ->> 'maxLength')::numeric THEN
      RETURN path || ': expected at most ' || (schema ->> 'maxLength') || ' characters';
    END IF;
  ELSIF actual = 'object' THEN
    IF schema ? 'required' THEN
      FOR k IN SELECT jsonb_array_elements_text(schema -> 'required') LOOP
        IF NOT instance ? k THEN
          RETURN courier.json_path_step(path, k) || ': required';
        END IF;
      END LOOP;
    END IF;
    IF schema ? 'properties' THEN
      FOR k, sub IN SELECT key, s.value FROM jsonb_each(schema -> 'properties') s LOOP
        IF instance ? k THEN
          err := courier.json_schema_error(sub, instance -> k, courier.json_path_step(path, k));
          IF err IS NOT NULL THEN
            RETURN err;
          END IF;
        END IF;
      END LOOP;
    END IF;
    IF schema -> 'additionalProperties' = 'false'::jsonb THEN
      SELECT key INTO k FROM jsonb_object_keys(instance) key
      WHERE NOT coalesce(schema -> 'properties', '{}'::jsonb) ? key ORDER BY key LIMIT 1;
      IF k IS NOT NULL THEN
        RETURN courier.json_path_step(path, k) || ': not allowed (additionalProperties is false)';
      END IF;
    END IF;
  ELSIF actual = 'array' AND schema ? 'items' THEN
    FOR i IN 0 .. jsonb_array_length(instance) - 1 LOOP
      err := courier.json_schema_error(schema -> 'items', instance -> i, path || '[' || i || ']');
      IF err IS NOT NULL THEN
        RETURN err;
      END IF;
    END LOOP;
  END IF;
  RETURN NULL;
END
$$;

-- path.key, or path."key" when key is not a plain name (jsonpath quoting).
CREATE FUNCTION courier.json_path_step(path text, key text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  RETURN path || CASE WHEN key ~ '^[A-Za-z_][A-Za-z0-9_]*$' THEN '.' || key ELSE '.' || to_json(key)::text END;
END
$$;

-- Every writer of courier.event_types meets the checks: a tenant id (or
-- NULL), an exact name (no pattern), a schema of the subset, a specimen that
-- the schema accepts and that is no larger than a payload may be.
CREATE FUNCTION courier.check_event_type_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  err text;
  max_bytes bigint;
BEGIN
  IF NEW.tenant_id IS NOT NULL THEN
    PERFORM courier.check_tenant_id(NEW.tenant_id);
  END IF;
  PERFORM courier.check_event_types(ARRAY[NEW.name], 'name');
  IF NEW.name ~ '\*' THEN
    RAISE EXCEPTION 'name: % is a pattern; an event type has an exact name such as order.created',
      courier.quote_untrusted(NEW.name)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF length(NEW.description) > 2000 THEN
    RAISE EXCEPTION 'description: at most 2000 characters' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NEW.schema IS NOT NULL THEN
    PERFORM courier.check_json_schema(NEW.schema);
  END IF;
  IF NEW.specimen IS NOT NULL THEN
    SELECT s.value INTO max_bytes FROM courier.settings s WHERE s.name = 'max_payload_bytes';
    IF octet_length(NEW.specimen::text) > max_bytes THEN
      RAISE EXCEPTION 'specimen: % bytes, over the payload limit of % bytes', octet_length(NEW.specimen::text), max_bytes
        USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF NEW.schema IS NOT NULL THEN
      err := courier.json_schema_error(NEW.schema, NEW.specimen);
      IF err IS NOT NULL THEN
        RAISE EXCEPTION 'specimen: does not match the schema: %', err USING ERRCODE = 'check_violation';
      END IF;
    END IF;
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
CREATE TRIGGER event_types_check BEFORE INSERT OR UPDATE ON courier.event_types
  FOR EACH ROW EXECUTE FUNCTION courier.check_event_type_row();

-- The schema an event of `event_type` published by `tenant_id` is held to:
-- the tenant's own type of that name, else the global one; NULL when neither
-- has a schema.
CREATE FUNCTION courier.event_type_schema(tenant_id text, event_type text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  RETURN (SELECT t.schema FROM courier.event_types t
          WHERE t.name = event_type AND (t.tenant_id = tenant_id OR t.tenant_id IS NULL)
          ORDER BY t.tenant_id NULLS LAST LIMIT 1);
END
$$;

-- Register (or with replace, change) an event type; returns its id.
CREATE FUNCTION courier.create_event_type(name text, tenant_id text DEFAULT NULL, description text DEFAULT NULL,
                                          schema jsonb DEFAULT NULL, specimen jsonb DEFAULT NULL,
                                          replace boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  created text;
BEGIN
  IF replace THEN
    INSERT INTO courier.event_types AS t (tenant_id, name, description, schema, specimen)
    VALUES (tenant_id, name, nullif(description, ''), schema, specimen)
    ON CONFLICT ON CONSTRAINT event_types_tenant_id_name_key DO UPDATE
      SET description = EXCLUDED.description, schema = EXCLUDED.schema, specimen = EXCLUDED.specimen
    RETURNING t.id INTO created;
  ELSE
    IF EXISTS (SELECT 1 FROM courier.event_types t WHERE t.name = name AND t.tenant_id IS NOT DISTINCT FROM tenant_id) THEN
      RAISE EXCEPTION 'name: event type % is already registered %', courier.quote_untrusted(name),
        CASE WHEN tenant_id IS NULL THEN 'globally' ELSE 'for tenant ' || tenant_id END
        USING ERRCODE = 'unique_violation', HINT = 'replace it with replace => true (pgcourierctl event-type create --replace)';
    END IF;
    INSERT INTO courier.event_types AS t (tenant_id, name, description, schema, specimen)
    VALUES (tenant_id, name, nullif(description, ''), schema, specimen)
    RETURNING t.id INTO created;
  END IF;
  RETURN created;
END
$$;

-- The specimen of `event_type` (the subscription's tenant's own type, else
-- the global one), published as an event of that tenant and delivered to
-- `subscription_id` only, for testing a receiver. Its labels are the
-- subscription's scope plus "courier.example": "true" (so it shows as an
-- example in the feed); the filter does not apply. Returns the event id.
CREATE FUNCTION courier.send_example(event_type text, subscription_id text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  sub courier.subscriptions;
  specimen jsonb;
  found_type boolean;
  new_event text;
BEGIN
  SELECT * INTO sub FROM courier.subscriptions s WHERE s.id = subscription_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no subscription %', subscription_id USING ERRCODE = 'no_data_found';
  END IF;
  IF NOT sub.active THEN
    RAISE EXCEPTION 'subscription % is disabled; resume it first', subscription_id
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT true, t.specimen INTO found_type, specimen FROM courier.event_types t
  WHERE t.name = event_type AND (t.tenant_id = sub.tenant_id OR t.tenant_id IS NULL)
  ORDER BY t.tenant_id NULLS LAST LIMIT 1;
  IF found_type IS NULL THEN
    RAISE EXCEPTION 'no event type % for tenant %', courier.quote_untrusted(event_type), sub.tenant_id
      USING ERRCODE = 'no_data_found';
  END IF;
  IF specimen IS NULL THEN
    RAISE EXCEPTION 'event type % has no specimen', courier.quote_untrusted(event_type)
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'pgcourierctl event-type create --replace ... --specimen JSON';
  END IF;
  INSERT INTO courier.events AS e (tenant_id, event_type, payload, labels)
  VALUES (sub.tenant_id, event_type, specimen, coalesce(sub.scope, '{}'::jsonb) || '{"courier.example": "true"}'::jsonb)
  RETURNING e.id INTO new_event;
  -- The fan-out gave it to every matching subscription: keep only this one's
  -- (the queue's triggers drop the others' rows, before anyone could claim them).
  DELETE FROM courier.deliveries d WHERE d.event_id = new_event AND d.subscription_id <> sub.id;
  IF NOT EXISTS (SELECT 1 FROM courier.deliveries d WHERE d.event_id = new_event) THEN
    INSERT INTO courier.deliveries (tenant_id, event_id, subscription_id, next_attempt_at, payload_bytes)
    SELECT sub.tenant_id, new_event, sub.id,
           CASE WHEN sub.paused_at IS NULL THEN now() ELSE 'infinity'::timestamptz END, e.payload_bytes
    FROM courier.events e WHERE e.id = new_event;
  END IF;
  RETURN new_event;
END
$$;

-- Events: labels checked, the payload held to its type's schema. A BEFORE
-- INSERT trigger, so a plain INSERT meets it as publish() does; it fires after
-- events_check_tenant (90_roles.sql: triggers fire in name order), so a role
-- learns nothing of another tenant's catalog.
CREATE FUNCTION courier.validate_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  schema jsonb;
  err text;
BEGIN
  -- The feed's order is the inserting transaction, whatever a plain INSERT says.
  NEW.feed_xid := pg_current_xact_id();
  NEW.labels := courier.check_labels(NEW.labels, 'courier.events.labels');
  schema := courier.event_type_schema(NEW.tenant_id, NEW.event_type);
  IF schema IS NOT NULL THEN
    err := courier.json_schema_error(schema, NEW.payload);
    IF err IS NOT NULL THEN
      RAISE EXCEPTION 'courier.events.payload does not match the schema of event type %: %',
        courier.quote_untrusted(NEW.event_type), err
        USING ERRCODE = 'check_violation',
              HINT = 'pgcourierctl event-type show NAME prints the schema';
    END IF;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER events_validate BEFORE INSERT ON courier.events
  FOR EACH ROW EXECUTE FUNCTION courier.validate_event();

-- Subscriptions: the filter and scope of every writer are checked (a plain
-- INSERT too), and where a tenant uses the catalog (it has registered at
-- least one event type of its own), every event type of a subscription must
-- be known: registered for it or globally, or a pattern ('order.*', '*')
-- matching at least one that is. Global types alone do not switch the rule
-- on for a tenant. An UPDATE is checked only for what it changes (so a
-- subscription from before the tenant's catalog can still change its URL).
CREATE FUNCTION courier.check_subscription_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  p text;
BEGIN
  IF NEW.filter IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.filter::text IS DISTINCT FROM OLD.filter::text) THEN
    NEW.filter := courier.check_filter(NEW.filter::text);
  END IF;
  NEW.scope := courier.check_scope(NEW.scope);
  IF (TG_OP = 'INSERT' OR NEW.event_types IS DISTINCT FROM OLD.event_types OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id)
     AND EXISTS (SELECT 1 FROM courier.event_types t WHERE t.tenant_id = NEW.tenant_id) THEN
    FOREACH p IN ARRAY NEW.event_types LOOP
      IF p <> '*' AND NOT EXISTS (SELECT 1 FROM courier.event_types t
                                  WHERE (t.tenant_id = NEW.tenant_id OR t.tenant_id IS NULL)
                                    AND courier.event_type_matches(ARRAY[p], t.name)) THEN
        RAISE EXCEPTION 'event_types: % is not an event type of tenant % (it uses the event catalog)',
          courier.quote_untrusted(p), NEW.tenant_id
          USING ERRCODE = 'invalid_parameter_value',
                HINT = 'pgcourierctl event-type list --tenant ' || NEW.tenant_id || ' shows them; register it with event-type create';
      END IF;
    END LOOP;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER subscriptions_check_events BEFORE INSERT OR UPDATE OF tenant_id, event_types, filter, scope
  ON courier.subscriptions
  FOR EACH ROW EXECUTE FUNCTION courier.check_subscription_events();

-- ---------------------------------------------------------------------------
-- The change feed
-- ---------------------------------------------------------------------------

-- A tenant's stored events, page by page, in a stable order with a cursor.
-- The order is (feed_xid, id): feed_xid is the inserting transaction's id
-- (events.feed_xid, 10_core.sql). Only events of transactions older than
-- every transaction still running are returned (feed_xid below the
-- snapshot's xmin), so an event committed later can never appear behind a
-- cursor already handed out: created_at could not promise that, a
-- transaction's rows carry its start time and may commit long after later
-- ones. The price: a page waits for the oldest open writing transaction
-- of the cluster (snapshots are cluster-wide; read-only ones do not count).
--
-- after_cursor: the `cursor` of the last row read (NULL: from the start).
-- max_rows 1 to 10000. event_type_prefix: types starting with it. labels: the
-- events' labels must contain these. since / until: created_at bounds
-- (since inclusive, until exclusive). Each row carries its own cursor; the
-- last row's continues the feed.
CREATE FUNCTION courier.event_feed(tenant_id text, after_cursor text DEFAULT NULL, max_rows integer DEFAULT 100,
                                   event_type_prefix text DEFAULT NULL, labels jsonb DEFAULT NULL,
                                   since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL)
RETURNS TABLE (cursor text, id text, event_type text, payload jsonb, event_labels jsonb, idempotency_key text,
               trace_id text, ordering_key text, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  after_xid xid8;
  after_id text;
  wanted jsonb := courier.check_labels(labels, 'labels');
BEGIN
  IF tenant_id IS NULL OR tenant_id = '' THEN
    RAISE EXCEPTION 'tenant_id: required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 10000 THEN
    RAISE EXCEPTION 'max_rows: expected 1 to 10000, got %', max_rows USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF after_cursor IS NOT NULL AND after_cursor <> '' THEN
    IF after_cursor !~ '^[0-9]{1,20}:[A-Za-z0-9_][A-Za-z0-9_.:~-]{0,254}$' THEN
      RAISE EXCEPTION 'after_cursor: % is not a cursor of event_feed (XID:EVENT_ID)', courier.quote_untrusted(left(after_cursor, 300))
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    after_xid := split_part(after_cursor, ':', 1)::xid8;
    after_id := substr(after_cursor, position(':' IN after_cursor) + 1);
  END IF;
  RETURN QUERY
  SELECT e.feed_xid::text || ':' || e.id, e.id, e.event_type, e.payload, e.labels, e.idempotency_key, e.trace_id,
         e.ordering_key, e.created_at
  FROM courier.events e
  WHERE e.tenant_id = tenant_id
    AND e.feed_xid < pg_snapshot_xmin(pg_current_snapshot())
    AND (after_xid IS NULL OR (e.feed_xid, e.id) > (after_xid, after_id))
    AND (event_type_prefix IS NULL OR starts_with(e.event_type, event_type_prefix))
    AND (wanted = '{}'::jsonb OR e.labels @> wanted)
    AND (since IS NULL OR e.created_at >= since)
    AND (until IS NULL OR e.created_at < until)
  ORDER BY e.feed_xid, e.id
  LIMIT max_rows;
END
$$;
CREATE INDEX events_feed ON courier.events (tenant_id, feed_xid, id);

-- ---------------------------------------------------------------------------
-- Export and import (NDJSON, pgcourierctl export / import)
-- ---------------------------------------------------------------------------

-- A cursor of the pages below: DIGITS:ID (a transaction id or a time in
-- microseconds, then a row id). Returns the two parts; refuses anything else.
CREATE FUNCTION courier.parse_cursor(cursor text, field text DEFAULT 'after_cursor', OUT cursor_position numeric, OUT row_id text)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  IF cursor IS NULL OR cursor = '' THEN
    RETURN;
  END IF;
  IF cursor !~ '^[0-9]{1,20}:[A-Za-z0-9_][A-Za-z0-9_.:~-]{0,254}$' THEN
    RAISE EXCEPTION '%: % is not a cursor (DIGITS:ID, as the previous page ended with)', field,
      courier.quote_untrusted(left(cursor, 300))
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  cursor_position := split_part(cursor, ':', 1)::numeric;
  row_id := substr(cursor, position(':' IN cursor) + 1);
END
$$;

-- A tenant's deliveries, page by page, each as one JSON object, in the
-- order of their events in the feed (a delivery is created in its event's
-- transaction, so the feed's guarantee holds for them too), then by id.
-- Each row's state is as read now.
CREATE FUNCTION courier.export_deliveries(tenant_id text, after_cursor text DEFAULT NULL, max_rows integer DEFAULT 1000,
                                          since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL)
RETURNS TABLE (cursor text, line jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  after_xid xid8;
  after_id text;
  c record;
BEGIN
  IF max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 10000 THEN
    RAISE EXCEPTION 'max_rows: expected 1 to 10000, got %', max_rows USING ERRCODE = 'invalid_parameter_value';
  END IF;
  c := courier.parse_cursor(after_cursor);
  after_xid := c.cursor_position::text::xid8;
  after_id := c.row_id;
  RETURN QUERY
  SELECT e.feed_xid::text || ':' || d.id,
         jsonb_build_object('id', d.id, 'tenant_id', d.tenant_id, 'event_id', d.event_id, 'event_type', e.event_type,
                            'subscription_id', d.subscription_id, 'status', d.status, 'attempts', d.attempts,
                            'last_status_code', d.last_status_code, 'last_error', d.last_error,
                            'created_at', d.created_at, 'completed_at', d.completed_at,
                            'cursor', e.feed_xid::text || ':' || d.id)
  FROM courier.events e
  JOIN courier.deliveries d ON d.event_id = e.id
  WHERE e.tenant_id = tenant_id
    AND e.feed_xid < pg_snapshot_xmin(pg_current_snapshot())
    AND (after_xid IS NULL OR (e.feed_xid, d.id) > (after_xid, after_id))
    AND (since IS NULL OR d.created_at >= since)
    AND (until IS NULL OR d.created_at < until)
  ORDER BY e.feed_xid, d.id
  LIMIT max_rows;
END
$$;

-- Dead letters (tenant_id or subscription_id NULL: all), page by page, in
-- the order they were dead-lettered, each as one JSON object: the delivery,
-- its event's envelope and the last failure. The cursor is the time of
-- dead-lettering in microseconds and the delivery id.
CREATE FUNCTION courier.dead_letter_page(tenant_id text DEFAULT NULL, subscription_id text DEFAULT NULL,
                                         after_cursor text DEFAULT NULL, max_rows integer DEFAULT 1000,
                                         since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL)
RETURNS TABLE (cursor text, line jsonb)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  c record;
  after_at timestamptz;
BEGIN
  IF max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 10000 THEN
    RAISE EXCEPTION 'max_rows: expected 1 to 10000, got %', max_rows USING ERRCODE = 'invalid_parameter_value';
  END IF;
  c := courier.parse_cursor(after_cursor);
  after_at := timestamptz 'epoch' + (c.cursor_position::bigint / 1000000) * interval '1 second'
              + (c.cursor_position::bigint % 1000000) * interval '1 microsecond';
  RETURN QUERY
  SELECT k.cur,
         jsonb_build_object('delivery_id', d.id, 'tenant_id', d.tenant_id, 'subscription_id', d.subscription_id,
                            'url', courier.redact_url(s.url), 'attempts', d.attempts,
                            'last_status_code', d.last_status_code, 'last_error', d.last_error,
                            'dead_lettered_at', x.dead_lettered_at,
                            'event', jsonb_build_object('id', e.id, 'type', e.event_type, 'payload', e.payload,
                                                        'labels', e.labels, 'idempotency_key', e.idempotency_key,
                                                        'trace_id', e.trace_id, 'created_at', e.created_at),
                            'cursor', k.cur)
  FROM courier.delivery_dead_letters x
  JOIN courier.deliveries d ON d.id = x.delivery_id
  JOIN courier.events e ON e.id = d.event_id
  JOIN courier.subscriptions s ON s.id = d.subscription_id
  CROSS JOIN LATERAL (SELECT (trunc(extract(epoch FROM x.dead_lettered_at) * 1000000))::bigint::text || ':' || x.delivery_id AS cur) k
  WHERE (tenant_id IS NULL OR x.tenant_id = tenant_id)
    AND (subscription_id IS NULL OR x.subscription_id = subscription_id)
    AND (after_at IS NULL OR (x.dead_lettered_at, x.delivery_id) > (after_at, c.row_id))
    AND (since IS NULL OR x.dead_lettered_at >= since)
    AND (until IS NULL OR x.dead_lettered_at < until)
  ORDER BY x.dead_lettered_at, x.delivery_id
  LIMIT max_rows;
END
$$;

-- One dead letter as dead_letter_page() shows it, with its attempts
-- (oldest first); NULL when `delivery_id` is not dead-lettered.
CREATE FUNCTION courier.show_dead_letter(delivery_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
BEGIN
  RETURN (
    SELECT jsonb_build_object('delivery_id', d.id, 'tenant_id', d.tenant_id, 'subscription_id', d.subscription_id,
                              'url', courier.redact_url(s.url), 'attempts', d.attempts,
                              'last_status_code', d.last_status_code, 'last_error', d.last_error,
                              'dead_lettered_at', x.dead_lettered_at,
                              'event', jsonb_build_object('id', e.id, 'type', e.event_type, 'payload', e.payload,
                                                          'labels', e.labels, 'idempotency_key', e.idempotency_key,
                                                          'trace_id', e.trace_id, 'created_at', e.created_at),
                              'timeline', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                             'attempt', t.attempt, 'started_at', t.started_at,
                                             'duration_ms', t.duration_ms, 'status_code', t.status_code,
                                             'outcome', t.outcome, 'error_class', t.error_class,
                                             'retryable', t.retryable, 'error_summary', t.error_summary,
                                             'worker', t.worker) ORDER BY t.attempt), '[]'::jsonb)
                                           FROM courier.delivery_timeline t WHERE t.delivery_id = d.id))
    FROM courier.delivery_dead_letters x
    JOIN courier.deliveries d ON d.id = x.delivery_id
    JOIN courier.events e ON e.id = d.event_id
    JOIN courier.subscriptions s ON s.id = d.subscription_id
    WHERE x.delivery_id = delivery_id);
END
$$;

-- One line of an NDJSON export of events, published for `tenant_id`:
-- 'imported', 'duplicate' (an event of that id, or of that idempotency key,
-- exists: nothing is written, so an import can be run again from any line),
-- or 'cursor' (the export's closing {"cursor": ...} line, skipped). Anything
-- else raises an error naming what is wrong (the caller reports the line and
-- goes on): not JSON, not an object, no type, another tenant's event. Kept:
-- id, type, payload, labels, idempotency_key, trace_id, ordering_key and
-- created_at; the event fans out to the subscriptions of this database.
CREATE FUNCTION courier.import_event(tenant_id text, line text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  j jsonb;
  inserted text;
BEGIN
  IF octet_length(line) > 2 * (SELECT s.value FROM courier.settings s WHERE s.name = 'max_payload_bytes') + 65536 THEN
    RAISE EXCEPTION 'line: % bytes, larger than any event may be', octet_length(line)
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  BEGIN
    j := line::jsonb;
  EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'not JSON: %', SQLERRM USING ERRCODE = 'invalid_text_representation';
  END;
  IF jsonb_typeof(j) <> 'object' THEN
    RAISE EXCEPTION 'expected a JSON object (an event), got a JSON %', jsonb_typeof(j)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF j ? 'cursor' AND NOT j ? 'type' THEN
    RETURN 'cursor';
  END IF;
  IF jsonb_typeof(j -> 'type') IS DISTINCT FROM 'string' THEN
    RAISE EXCEPTION 'type: expected the event type as a string' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF j ? 'tenant_id' AND j ->> 'tenant_id' IS DISTINCT FROM tenant_id THEN
    RAISE EXCEPTION 'tenant_id: the event is of tenant %, not %', courier.quote_untrusted(j ->> 'tenant_id'), tenant_id
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH inserted IN ARRAY ARRAY['id', 'idempotency_key', 'trace_id', 'ordering_key', 'created_at'] LOOP
    IF jsonb_typeof(j -> inserted) NOT IN ('string', 'null') THEN
      RAISE EXCEPTION '%: expected a string or null', inserted USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  inserted := NULL;
  INSERT INTO courier.events AS e (id, tenant_id, event_type, payload, labels, idempotency_key, trace_id, ordering_key,
                                   created_at)
  VALUES (coalesce(j ->> 'id', courier.new_id('evt_')), tenant_id, j ->> 'type', coalesce(j -> 'payload', '{}'::jsonb),
          coalesce(j -> 'labels', '{}'::jsonb), j ->> 'idempotency_key', j ->> 'trace_id', j ->> 'ordering_key',
          coalesce((j ->> 'created_at')::timestamptz, now()))
  ON CONFLICT DO NOTHING
  RETURNING e.id INTO inserted;
  RETURN CASE WHEN inserted IS NULL THEN 'duplicate' ELSE 'imported' END;
END
$$;

-- ---------------------------------------------------------------------------
-- v1a (ed25519) signing keys
-- ---------------------------------------------------------------------------

-- Adds a signing key to a subscription, like rotate_subscription_secret()
-- (whose rows it returns; the other active secrets expire after `grace`),
-- and records its public key when it is a v1a key: `sealed_secret` is then
-- the whsk_ private key sealed with the master key (pgcourierctl generates
-- the pair) and `public_key` its whpk_ form, which is shown; last4 is the
-- public key's. With public_key NULL it is rotate_subscription_secret() for a
-- v1 secret, and secret_last4 is needed. Deliveries are signed with every
-- active key, so a move from v1 to v1a (or back) has the same grace period.
CREATE FUNCTION courier.rotate_subscription_key(subscription_id text, sealed_secret text, public_key text DEFAULT NULL,
                                                grace interval DEFAULT interval '24 hours',
                                                secret_last4 text DEFAULT NULL)
RETURNS TABLE (id text, last4 text, created_at timestamptz, expires_at timestamptz, change text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_column
BEGIN
  IF rotate_subscription_key.public_key IS NOT NULL
     AND rotate_subscription_key.public_key !~ '^whpk_[A-Za-z0-9+/]{43}=$' THEN
    RAISE EXCEPTION 'public_key: expected whpk_ and the base64 of a 32-byte ed25519 public key'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN QUERY
  SELECT r.id, r.last4, r.created_at, r.expires_at, r.change
  FROM courier.rotate_subscription_secret(rotate_subscription_key.subscription_id, rotate_subscription_key.sealed_secret,
                                          coalesce(right(rotate_subscription_key.public_key, 4),
                                                   rotate_subscription_key.secret_last4),
                                          rotate_subscription_key.grace) r;
  IF rotate_subscription_key.public_key IS NOT NULL THEN
    UPDATE courier.subscription_secrets x SET public_key = rotate_subscription_key.public_key
    WHERE x.subscription_id = rotate_subscription_key.subscription_id
      AND x.sealed_secret = rotate_subscription_key.sealed_secret;
  END IF;
END
$$;

-- import_event() for many lines in one call (pgcourierctl sends batches of
-- 500): one row per line, in order, with 'imported', 'duplicate', 'cursor'
-- or 'rejected' and the reason. A rejected line is rolled back on its own
-- (an exception block per line) and the others are kept.
CREATE FUNCTION courier.import_events(tenant_id text, lines text[])
RETURNS TABLE (line_index integer, status text, reason text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_variable
DECLARE
  i integer;
BEGIN
  IF cardinality(lines) > 10000 THEN
    RAISE EXCEPTION 'lines: at most 10000 per call' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR i IN 1 .. coalesce(cardinality(lines), 0) LOOP
    line_index := i;
    reason := NULL;
    BEGIN
      status := courier.import_event(tenant_id, lines[i]);
    EXCEPTION WHEN OTHERS THEN
      status := 'rejected';
      reason := SQLERRM;
    END;
    RETURN NEXT;
  END LOOP;
END
$$;
