-- 001_core: the public delivery contract of pgcourier (schema courier).
-- Producers call courier.publish() (or INSERT INTO courier.events) inside
-- their own transaction; pgcourierd claims due rows of courier.deliveries.

CREATE SCHEMA IF NOT EXISTS courier;

-- Readable, roughly time-ordered ids: prefix + 13 hex digits of microseconds
-- since the epoch + 16 random hex digits. Time order keeps btree inserts
-- near the right edge of the index instead of scattered over it.
CREATE FUNCTION courier.new_id(prefix text) RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT prefix
      || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 13, '0')
      || encode(substring(uuid_send(gen_random_uuid()) FROM 9 FOR 8), 'hex')
$$;

-- event_types entries: exact names ('order.created'), prefix patterns
-- ('order.*', matching 'order.created' and 'order.line.added') or '*'.
CREATE FUNCTION courier.event_type_matches(patterns text[], event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT EXISTS (
    SELECT 1 FROM unnest(patterns) AS p
    WHERE p = '*'
       OR p = event_type
       OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1)))
  )
$$;

CREATE TABLE courier.subscriptions (
  id            text PRIMARY KEY DEFAULT courier.new_id('sub_'),
  tenant_id     text NOT NULL CHECK (tenant_id <> ''),
  url           text NOT NULL CHECK (url <> ''),
  event_types   text[] NOT NULL CHECK (cardinality(event_types) > 0),
  policy        text NOT NULL DEFAULT 'default',
  active        boolean NOT NULL DEFAULT true,
  description   text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_active_tenant ON courier.subscriptions (tenant_id) WHERE active;

-- Signing secrets, sealed with AES-256-GCM under the master key (never
-- stored in plain text); last4 is for display only.
CREATE TABLE courier.subscription_secrets (
  id              text PRIMARY KEY DEFAULT courier.new_id('whs_'),
  subscription_id text NOT NULL REFERENCES courier.subscriptions (id) ON DELETE CASCADE,
  sealed_secret   text NOT NULL,
  last4           text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz,
  revoked_at      timestamptz
);
CREATE INDEX subscription_secrets_subscription ON courier.subscription_secrets (subscription_id);

CREATE TABLE courier.events (
  id              text PRIMARY KEY DEFAULT courier.new_id('evt_'),
  tenant_id       text NOT NULL CHECK (tenant_id <> ''),
  event_type      text NOT NULL CHECK (event_type <> ''),
  payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
  idempotency_key text,
  trace_id        text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX events_tenant_idempotency_key ON courier.events (tenant_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

CREATE TABLE courier.deliveries (
  id               text PRIMARY KEY DEFAULT courier.new_id('dlv_'),
  tenant_id        text NOT NULL,
  event_id         text NOT NULL REFERENCES courier.events (id),
  subscription_id  text NOT NULL REFERENCES courier.subscriptions (id),
  status           text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'delivering', 'delivered', 'retry_scheduled', 'failed', 'dead_lettered')),
  attempts         int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  lease_owner      text,
  lease_expires_at timestamptz,
  last_status_code int,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  UNIQUE (event_id, subscription_id),
  CHECK ((status = 'delivering') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
) WITH (fillfactor = 80);  -- room for HOT updates on the hot claim/complete path

-- The claim query's predicate, exactly: a partial index that only holds due-able rows,
-- so it stays small however many delivered rows the table keeps.
CREATE INDEX deliveries_due ON courier.deliveries (next_attempt_at)
  WHERE status IN ('pending', 'retry_scheduled');
-- The rescuer's predicate: leases that may have expired.
CREATE INDEX deliveries_leased ON courier.deliveries (lease_expires_at)
  WHERE status = 'delivering';
CREATE INDEX deliveries_subscription ON courier.deliveries (subscription_id, created_at);

-- One row per attempt, written once and never updated.
CREATE TABLE courier.delivery_attempts (
  delivery_id      text NOT NULL,
  attempt          int NOT NULL CHECK (attempt >= 1),
  started_at       timestamptz NOT NULL,
  duration_ms      double precision NOT NULL DEFAULT 0,
  status_code      int,
  outcome          text NOT NULL,
  error_class      text CHECK (error_class IN ('transient', 'rate_limited', 'auth', 'validation', 'poison')),
  retryable        boolean NOT NULL DEFAULT false,
  error_summary    text CHECK (octet_length(error_summary) <= 512),
  response_excerpt text CHECK (octet_length(response_excerpt) <= 65536),
  worker           text NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (delivery_id, attempt)
);

CREATE FUNCTION courier.forbid_attempt_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'courier.delivery_attempts rows are written once and never updated (delivery %, attempt %)',
    OLD.delivery_id, OLD.attempt USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER delivery_attempts_append_only BEFORE UPDATE ON courier.delivery_attempts
  FOR EACH ROW EXECUTE FUNCTION courier.forbid_attempt_changes();

-- Fan-out happens in the database so a plain INSERT INTO courier.events by a
-- producer behaves exactly like courier.publish().
CREATE FUNCTION courier.fan_out_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO courier.deliveries (tenant_id, event_id, subscription_id, next_attempt_at, created_at)
  SELECT NEW.tenant_id, NEW.id, s.id, now(), now()
  FROM courier.subscriptions s
  WHERE s.tenant_id = NEW.tenant_id
    AND s.active
    AND courier.event_type_matches(s.event_types, NEW.event_type);
  RETURN NULL;
END
$$;
CREATE TRIGGER events_fan_out AFTER INSERT ON courier.events
  FOR EACH ROW EXECUTE FUNCTION courier.fan_out_event();

-- Wake the daemons once per inserting statement; NOTIFY is sent at commit,
-- so a rolled-back transaction wakes nobody.
CREATE FUNCTION courier.notify_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('courier_deliveries', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_notify AFTER INSERT ON courier.deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION courier.notify_deliveries();

-- publish: insert one event and fan it out, in the caller's transaction.
-- The same (tenant_id, idempotency_key) returns the first event's id and creates nothing.
CREATE FUNCTION courier.publish(tenant_id text, event_type text, payload jsonb,
                                idempotency_key text DEFAULT NULL, trace_id text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  new_event_id text;
BEGIN
  IF publish.tenant_id IS NULL OR publish.tenant_id = '' THEN
    RAISE EXCEPTION 'courier.publish: tenant_id is required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF publish.event_type IS NULL OR publish.event_type = '' THEN
    RAISE EXCEPTION 'courier.publish: event_type is required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO courier.events AS e (tenant_id, event_type, payload, idempotency_key, trace_id)
  VALUES (publish.tenant_id, publish.event_type, coalesce(publish.payload, '{}'::jsonb),
          publish.idempotency_key, publish.trace_id)
  ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING e.id INTO new_event_id;
  IF new_event_id IS NULL THEN
    SELECT e.id INTO new_event_id FROM courier.events e
    WHERE e.tenant_id = publish.tenant_id AND e.idempotency_key = publish.idempotency_key;
  END IF;
  RETURN new_event_id;
END
$$;

-- Operator views.
CREATE VIEW courier.delivery_status AS
SELECT d.id, d.tenant_id, d.event_id, e.event_type, d.subscription_id, s.url, d.status, d.attempts,
       d.next_attempt_at, d.lease_owner, d.lease_expires_at, d.last_status_code, d.last_error,
       d.created_at, d.updated_at, d.completed_at
FROM courier.deliveries d
JOIN courier.events e ON e.id = d.event_id
JOIN courier.subscriptions s ON s.id = d.subscription_id;

CREATE VIEW courier.dead_letters AS
SELECT d.id AS delivery_id, d.tenant_id, d.subscription_id, s.url, d.attempts, d.last_status_code,
       d.last_error, d.completed_at AS dead_lettered_at,
       e.id AS event_id, e.event_type, e.payload, e.idempotency_key, e.trace_id, e.created_at AS event_created_at
FROM courier.deliveries d
JOIN courier.events e ON e.id = d.event_id
JOIN courier.subscriptions s ON s.id = d.subscription_id
WHERE d.status = 'dead_lettered';

CREATE VIEW courier.queue_summary AS
SELECT status, count(*) AS deliveries,
       count(*) FILTER (WHERE status IN ('pending', 'retry_scheduled') AND next_attempt_at <= now()) AS due_now,
       min(next_attempt_at) FILTER (WHERE status IN ('pending', 'retry_scheduled')) AS oldest_due_at
FROM courier.deliveries
GROUP BY status;
