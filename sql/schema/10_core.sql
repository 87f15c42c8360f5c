-- 10_core: the public delivery contract of pgcourier (schema courier): ids,
-- subscriptions and their signing secrets, events, deliveries and their
-- attempts (partitioned by day), the fan-out of an event to its deliveries,
-- courier.publish() and the NOTIFY that wakes the daemons.
-- Producers call courier.publish() (or INSERT INTO courier.events) inside
-- their own transaction; pgcourierd claims due rows of courier.deliveries.
-- Who may call or read what is granted in 90_roles.sql.

CREATE SCHEMA IF NOT EXISTS courier;

-- Readable, roughly time-ordered ids: prefix + 13 hex digits of microseconds
-- since the epoch + 16 random hex digits. Time order keeps btree inserts
-- near the right edge of the index instead of scattered over it.
--
-- new_id gives every event, delivery, outbox row... its id, so it must cost
-- nothing per call. A LANGUAGE sql function with SET search_path is never
-- inlined, and each call saves and restores the setting: 4.5 us per call
-- here, against 1.7 us for the same expression written out (SELECT
-- count(courier.new_id('x')) FROM generate_series(1, 100000), this 2-core
-- machine); on the completion path that was a third of the cost of each
-- outbox row. A SQL-standard body (RETURN ...) is parsed once, now, with the
-- search_path below: its functions and operators are bound to pg_catalog for
-- good, so no caller's search_path can redirect them, and the planner inlines
-- it like the written-out expression. No SET clause is needed.
--
-- SET LOCAL lasts until the end of the migration's transaction, i.e. for every
-- later statement of this baseline: right after the function the search_path
-- goes back to the connection's default (the migrate runner sets none), with
-- SET LOCAL again rather than RESET so nothing outlives the transaction.
-- tests/pg/schema_test.cpp checks new_id is inlined and search_path-proof.
SET LOCAL search_path = pg_catalog;
CREATE FUNCTION courier.new_id(prefix text) RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE
RETURN prefix
    || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 13, '0')
    || encode(substring(uuid_send(gen_random_uuid()) FROM 9 FOR 8), 'hex');

-- What an operator is shown of a URL or a run's path: user:password@ becomes
-- ***@ and the query string and fragment become ?*** (tokens live there). The
-- same rule as the daemon's RedactUrls / RedactPath (daemon/retry/text.hpp);
-- every operator view goes through these. SQL-standard bodies, bound to
-- pg_catalog like new_id.
CREATE FUNCTION courier.redact_url(url text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN regexp_replace(regexp_replace(url, '^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@', '\1***@'), '[?#].*$', '?***');
CREATE FUNCTION courier.redact_path(path text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN regexp_replace(path, '[?#].*$', '?***');
SET LOCAL search_path TO DEFAULT;

-- event_types entries: exact names ('order.created'), prefix patterns
-- ('order.*', matching 'order.created' and 'order.line.added') or '*'.
-- '*' matches every type, 'order.*' every type starting with 'order.', any
-- other pattern only itself.
-- plpgsql, not LANGUAGE sql: it runs once per subscription of the tenant in
-- the fan-out, and a LANGUAGE sql function with SET search_path is never
-- inlined and its query is planned again on every call, while a plpgsql
-- function's plans are cached per session (the producer path measurements are
-- with caller_may_publish in 90_roles.sql).
CREATE FUNCTION courier.event_type_matches(patterns text[], event_type text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  p text;
BEGIN
  FOREACH p IN ARRAY coalesce(patterns, '{}') LOOP
    IF p = '*' OR p = event_type OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1))) THEN
      RETURN true;
    END IF;
  END LOOP;
  RETURN false;
END
$$;

-- Subscriptions. The operating columns (pause, disable, health counters,
-- limits, ordering) follow the first ones: this is the column order of
-- existing databases, and plpgsql row variables (courier.subscriptions in
-- redeliver_events) and SELECT * depend on it. Appending is the only way to
-- add a column later anyway.
CREATE TABLE courier.subscriptions (
  id            text PRIMARY KEY DEFAULT courier.new_id('sub_'),
  tenant_id     text NOT NULL CHECK (tenant_id <> ''),
  url           text NOT NULL CHECK (url <> ''),
  event_types   text[] NOT NULL CHECK (cardinality(event_types) > 0),
  policy        text NOT NULL DEFAULT 'default',
  active        boolean NOT NULL DEFAULT true,
  description   text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  -- Operating state: see 20_subscriptions.sql.
  paused_at            timestamptz,
  pause_reason         text,
  disabled_at          timestamptz,
  disabled_reason      text,
  consecutive_failures int NOT NULL DEFAULT 0,
  failing_since        timestamptz,  -- first failure after the last success
  last_success_at      timestamptz,
  last_failure_at      timestamptz,
  last_error           text,
  -- Limits; NULL = the policy's (or none).
  max_in_flight        int CHECK (max_in_flight > 0),
  rate_limit_per_second double precision CHECK (rate_limit_per_second > 0),
  rate_limit_burst     int CHECK (rate_limit_burst > 0),
  -- FIFO per ordering key: a delivery is not sent before the earlier one with
  -- the same key is delivered, failed or dead-lettered.
  ordering             text NOT NULL DEFAULT 'none' CHECK (ordering IN ('none', 'fifo')),
  -- Where the key comes from when the event has no ordering_key: a top-level
  -- payload field name (e.g. 'order_id').
  ordering_key_field   text,
  -- Event filters and scopes (checked and explained in 60_catalog.sql): a
  -- jsonpath predicate over the payload, and label pairs every event must carry.
  filter               jsonpath,
  scope                jsonb
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
  revoked_at      timestamptz,
  -- A v1a (ed25519) key's public key, whpk_ + base64, shown to receivers;
  -- NULL for a v1 (HMAC) secret (60_catalog.sql: rotate_subscription_key()).
  public_key      text CHECK (public_key ~ '^whpk_[A-Za-z0-9+/]{43}=$')
);
CREATE INDEX subscription_secrets_subscription ON courier.subscription_secrets (subscription_id);

-- Limits every writer meets, set by the schema owner (a producer cannot
-- change them, unlike a session setting). max_payload_bytes: the largest
-- event payload a producer may publish (its jsonb size); 1 MiB by default.
CREATE TABLE courier.settings (
  name  text PRIMARY KEY CHECK (name IN ('max_payload_bytes')),
  value bigint NOT NULL CHECK (value > 0)
);
INSERT INTO courier.settings VALUES ('max_payload_bytes', 1048576);

CREATE TABLE courier.events (
  id              text PRIMARY KEY DEFAULT courier.new_id('evt_'),
  tenant_id       text NOT NULL CHECK (tenant_id <> ''),
  event_type      text NOT NULL CHECK (event_type <> ''),
  payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
  idempotency_key text,
  trace_id        text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  ordering_key    text,
  -- The payload's size, measured at insert (90_roles.sql: events_check_tenant
  -- refuses one over settings.max_payload_bytes): the daemon bounds every
  -- claim in bytes before it fetches a payload.
  payload_bytes   int NOT NULL DEFAULT 0 CHECK (payload_bytes >= 0),
  -- Labels (a JSON object of strings, checked in 60_catalog.sql) that
  -- subscriptions' scopes select on.
  labels          jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- The inserting transaction: the change feed's order (event_feed(), 60_catalog.sql).
  feed_xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  -- inbound: received by pgcourier-gateway's ingress (80_gateway.sql), verified, then fanned out like any other.
  direction       text NOT NULL DEFAULT 'outbound' CHECK (direction IN ('outbound', 'inbound'))
);
CREATE UNIQUE INDEX events_tenant_idempotency_key ON courier.events (tenant_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

-- Deliveries: one per (event, subscription), the record of its state:
-- status, attempts, next attempt, last result. What is being worked on right
-- now (the lease) is not here but in courier.delivery_queue (below): a claim
-- and a heartbeat write only the queue's narrow row, and no index of this
-- table covers a column that changes after the insert, so the updates it does
-- get (one per attempt) are HOT (heap only, no index entries), with room left
-- on each page by the fillfactor.
--
-- status is pending (no attempt yet), retry_scheduled, or one of the terminal
-- delivered, failed, dead_lettered. 'delivering' is what courier.delivery_status
-- shows while a daemon holds the lease (the row here keeps pending or
-- retry_scheduled meanwhile).
CREATE TABLE courier.deliveries (
  id               text PRIMARY KEY DEFAULT courier.new_id('dlv_'),
  tenant_id        text NOT NULL,
  event_id         text NOT NULL REFERENCES courier.events (id),
  subscription_id  text NOT NULL REFERENCES courier.subscriptions (id),
  status           text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'delivered', 'retry_scheduled', 'failed', 'dead_lettered')),
  attempts         int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_status_code int,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  ordering_key     text,
  -- Attempts made before the last replay: the policy's max_attempts counts
  -- from here, so a replayed delivery gets a fresh set of attempts while its
  -- attempt numbers keep increasing.
  attempt_budget_base int NOT NULL DEFAULT 0 CHECK (attempt_budget_base >= 0),
  payload_bytes    int NOT NULL DEFAULT 0,  -- its event's, for the queue
  UNIQUE (event_id, subscription_id)
) WITH (
  -- Half of each page is left free at insert: every row of a page can then be
  -- updated in place once (its attempt), and the dead versions are pruned
  -- before the next.
  fillfactor = 50,
  -- Vacuum the queue tables early (courier.delivery_queue and courier.runs
  -- have the same settings). Every delivery leaves dead row versions behind
  -- (claim, outcome, prune), and the claim-path indexes take new keys at their
  -- right end while their left pages empty out: those pages are reused only
  -- after a VACUUM. With the default thresholds (20 % of the table dead) a busy
  -- queue waits long for it and the indexes grow meanwhile (bench/run health).
  -- A vacuum after 1 % + 1,000 dead rows, without cost-based sleeping, keeps
  -- them small; autovacuum_naptime (postgresql.conf, default 1 min) decides how
  -- soon a worker looks: the README recommends 10 s for a busy queue.
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 0
);
-- A subscription's deliveries (replay, redeliver, inspection), and retention
-- by age: both on columns that never change.
CREATE INDEX deliveries_subscription ON courier.deliveries (subscription_id, created_at);
CREATE INDEX deliveries_created ON courier.deliveries (created_at);

-- The due work: one narrow row per unfinished delivery, with the lease of
-- the daemon working on it. Kept by the triggers below from every write of
-- courier.deliveries (so every writer keeps it right), except the daemon's
-- outcome statement, which writes it itself; claims and heartbeats write its
-- lease columns only. due_at is the next attempt ('infinity': held until the
-- subscription is resumed); retry tells first attempts from retries, so that
-- a storm of due retries cannot hide new events (the claim looks for both);
-- attempts and the budget base are the delivery's (the outcome's fence, and
-- what a claim returns without reading the delivery). No index holds
-- lease_expires_at: a heartbeat, which moves it, is a HOT update; the
-- rescuer scans the leased rows.
CREATE TABLE courier.delivery_queue (
  delivery_id         text PRIMARY KEY,
  event_id            text NOT NULL,
  subscription_id     text NOT NULL,
  tenant_id           text NOT NULL,
  due_at              timestamptz NOT NULL,
  retry               boolean NOT NULL,
  attempts            int NOT NULL,
  attempt_budget_base int NOT NULL,
  lease_owner         text,
  lease_expires_at    timestamptz,
  payload_bytes       int NOT NULL,
  ordering_key        text,
  created_at          timestamptz NOT NULL,
  CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
) WITH (
  fillfactor = 70,
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_cost_delay = 0
);
-- The claim's two ways in (claim_due.sql). First attempts by subscription,
-- oldest first: the claim visits the subscriptions with work in turn (a
-- skip scan of this index), so a subscription's backlog cannot hide another's
-- new event. Retries by due time (a scheduled retry is due later; held rows
-- are 'infinity'). Migration 003 turns delivery_queue_first newest first
-- (due_at DESC, delivery_id DESC): see sql/migrations/003_queue_newest_first.up.sql.
CREATE INDEX delivery_queue_first ON courier.delivery_queue (subscription_id, due_at)
  WHERE lease_owner IS NULL AND NOT retry AND due_at <> 'infinity';
CREATE INDEX delivery_queue_retry ON courier.delivery_queue (due_at) WHERE lease_owner IS NULL AND retry;
-- The leased rows (the rescuer scans them all; outcomes and heartbeats find
-- theirs by id). Keyed by the id, not the owner: the outcome's join is then
-- one probe per row whichever index the planner takes, and a heartbeat,
-- which moves only lease_expires_at, stays a HOT update.
CREATE INDEX delivery_queue_leased ON courier.delivery_queue (delivery_id) WHERE lease_owner IS NOT NULL;
-- A subscription's held rows (resume, held counts). Only the held ones: a
-- claim's update (which leaves due_at alone) then adds no entry here.
CREATE INDEX delivery_queue_held ON courier.delivery_queue (subscription_id) WHERE due_at = 'infinity';
-- The FIFO check of the claim: an earlier unfinished delivery with the same key.
CREATE INDEX delivery_queue_fifo ON courier.delivery_queue (subscription_id, ordering_key, created_at, delivery_id)
  WHERE ordering_key IS NOT NULL;

-- Dead-lettered deliveries, kept by the same triggers: the dead-letter view
-- and the metrics count them here, without an index on deliveries.status
-- (which would make every status change a non-HOT update).
CREATE TABLE courier.delivery_dead_letters (
  delivery_id      text PRIMARY KEY,
  tenant_id        text NOT NULL,
  subscription_id  text NOT NULL,
  dead_lettered_at timestamptz NOT NULL
);
CREATE INDEX delivery_dead_letters_at ON courier.delivery_dead_letters (dead_lettered_at);

-- The queue follows courier.deliveries, whoever writes it (the daemon, the
-- operator functions, an administrator's UPDATE): set-based, one statement
-- per writing statement, from its transition tables. A transition table has
-- no statistics, and the planner's guess made it scan the whole queue to join
-- a batch of 256 rows (96 ms instead of 2); so these functions probe the
-- queue by its primary key (enable_seqscan = off for their statements only).
CREATE FUNCTION courier.queue_inserted_deliveries() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp
  SET enable_seqscan = off AS $$
BEGIN
  INSERT INTO courier.delivery_queue (delivery_id, event_id, subscription_id, tenant_id, due_at, retry, attempts,
                                      attempt_budget_base, payload_bytes, ordering_key, created_at)
  SELECT n.id, n.event_id, n.subscription_id, n.tenant_id, n.next_attempt_at, n.attempts > n.attempt_budget_base,
         n.attempts, n.attempt_budget_base, n.payload_bytes, n.ordering_key, n.created_at
  FROM inserted n
  WHERE n.status IN ('pending', 'retry_scheduled');
  INSERT INTO courier.delivery_dead_letters (delivery_id, tenant_id, subscription_id, dead_lettered_at)
  SELECT n.id, n.tenant_id, n.subscription_id, coalesce(n.completed_at, now())
  FROM inserted n WHERE n.status = 'dead_lettered';
  RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_queue_insert AFTER INSERT ON courier.deliveries
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION courier.queue_inserted_deliveries();

-- An update: a finished delivery leaves the queue; an unfinished one takes
-- its new due time and attempt count, and loses its lease when an attempt was
-- recorded (attempts changed) -- otherwise its lease stays, whoever updated
-- the row; a finished one that is unfinished again (replay, redelivery)
-- comes back.
--
-- The daemon's outcome statement (record_outcomes) writes the queue rows
-- itself, in the statement that checks its fence, and says so with
-- courier.queue_maintained = 'on' for its transaction: this trigger then has
-- nothing left to do. (Only roles that may UPDATE courier.deliveries can use
-- that: the daemon, for its outcome columns, and the owner.)
CREATE FUNCTION courier.queue_updated_deliveries() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp
  SET enable_seqscan = off AS $$
BEGIN
  IF current_setting('courier.queue_maintained', true) = 'on' THEN
    RETURN NULL;
  END IF;
  DELETE FROM courier.delivery_queue q USING updated n
  WHERE q.delivery_id = n.id AND n.status IN ('delivered', 'failed', 'dead_lettered');
  UPDATE courier.delivery_queue q
  SET due_at = n.next_attempt_at, retry = n.attempts > n.attempt_budget_base, attempts = n.attempts,
      attempt_budget_base = n.attempt_budget_base,
      lease_owner = CASE WHEN n.attempts = q.attempts THEN q.lease_owner END,
      lease_expires_at = CASE WHEN n.attempts = q.attempts THEN q.lease_expires_at END
  FROM updated n
  WHERE q.delivery_id = n.id AND n.status IN ('pending', 'retry_scheduled')
    AND (q.due_at, q.attempts, q.attempt_budget_base) IS DISTINCT FROM (n.next_attempt_at, n.attempts, n.attempt_budget_base);
  INSERT INTO courier.delivery_queue (delivery_id, event_id, subscription_id, tenant_id, due_at, retry, attempts,
                                      attempt_budget_base, payload_bytes, ordering_key, created_at)
  SELECT n.id, n.event_id, n.subscription_id, n.tenant_id, n.next_attempt_at, n.attempts > n.attempt_budget_base,
         n.attempts, n.attempt_budget_base, n.payload_bytes, n.ordering_key, n.created_at
  FROM updated n JOIN previous o ON o.id = n.id
  WHERE n.status IN ('pending', 'retry_scheduled') AND o.status IN ('delivered', 'failed', 'dead_lettered')
  ON CONFLICT (delivery_id) DO NOTHING;
  -- Dead letters in (or their time corrected), replayed ones out.
  INSERT INTO courier.delivery_dead_letters AS x (delivery_id, tenant_id, subscription_id, dead_lettered_at)
  SELECT n.id, n.tenant_id, n.subscription_id, coalesce(n.completed_at, now())
  FROM updated n WHERE n.status = 'dead_lettered'
  ON CONFLICT (delivery_id) DO UPDATE SET dead_lettered_at = excluded.dead_lettered_at
    WHERE x.dead_lettered_at IS DISTINCT FROM excluded.dead_lettered_at;
  DELETE FROM courier.delivery_dead_letters x USING updated n JOIN previous o ON o.id = n.id
  WHERE x.delivery_id = n.id AND o.status = 'dead_lettered' AND n.status <> 'dead_lettered';
  RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_queue_update AFTER UPDATE ON courier.deliveries
  REFERENCING OLD TABLE AS previous NEW TABLE AS updated
  FOR EACH STATEMENT EXECUTE FUNCTION courier.queue_updated_deliveries();

CREATE FUNCTION courier.queue_deleted_deliveries() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp
  SET enable_seqscan = off AS $$
BEGIN
  DELETE FROM courier.delivery_queue q USING deleted o WHERE q.delivery_id = o.id;
  DELETE FROM courier.delivery_dead_letters x USING deleted o WHERE x.delivery_id = o.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_queue_delete AFTER DELETE ON courier.deliveries
  REFERENCING OLD TABLE AS deleted
  FOR EACH STATEMENT EXECUTE FUNCTION courier.queue_deleted_deliveries();

-- One row per attempt, written once and never updated. Partitioned by day
-- (started_at, UTC), so retention removes old attempts by dropping whole
-- partitions instead of deleting rows one by one.
--
-- Partitions are named delivery_attempts_pYYYYMMDD and created 7 days ahead
-- by courier.maintain_attempt_partitions(), which the maintenance leader runs
-- through courier.prune(). A DEFAULT partition catches rows outside every
-- daily partition (e.g. a daemon whose clock is far off), so an insert never
-- fails for want of a partition.
--
-- The primary key includes started_at (PostgreSQL requires the partition key
-- in it); one row per (delivery, attempt) is still guaranteed by the outcome
-- statement, which writes an attempt only while holding its lease.
--
-- The constraints are named ..._check1 and ..._pkey1 because that is what
-- the databases migrated before this baseline have (the table was rebuilt as
-- a partitioned one while its unpartitioned predecessor still held the plain
-- names): the same names everywhere, so a later migration can name them.
CREATE TABLE courier.delivery_attempts (
  delivery_id      text NOT NULL,
  attempt          int NOT NULL CONSTRAINT delivery_attempts_attempt_check1 CHECK (attempt >= 1),
  started_at       timestamptz NOT NULL,
  duration_ms      double precision NOT NULL DEFAULT 0,
  status_code      int,
  outcome          text NOT NULL,
  -- blocked_destination: a destination refused by the endpoint-safety rules.
  error_class      text CONSTRAINT delivery_attempts_error_class_check1
                   CHECK (error_class IN ('transient', 'rate_limited', 'auth', 'validation', 'poison',
                                          'blocked_destination')),
  retryable        boolean NOT NULL DEFAULT false,
  error_summary    text CONSTRAINT delivery_attempts_error_summary_check1 CHECK (octet_length(error_summary) <= 512),
  response_excerpt text CONSTRAINT delivery_attempts_response_excerpt_check1
                   CHECK (octet_length(response_excerpt) <= 65536),
  worker           text NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT delivery_attempts_pkey1 PRIMARY KEY (delivery_id, attempt, started_at)
) PARTITION BY RANGE (started_at);

CREATE TABLE courier.delivery_attempts_default PARTITION OF courier.delivery_attempts DEFAULT;

CREATE FUNCTION courier.forbid_attempt_changes() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'courier.delivery_attempts rows are written once and never updated (delivery %, attempt %)',
    OLD.delivery_id, OLD.attempt USING ERRCODE = 'integrity_constraint_violation';
END
$$;
CREATE TRIGGER delivery_attempts_append_only BEFORE UPDATE ON courier.delivery_attempts
  FOR EACH ROW EXECUTE FUNCTION courier.forbid_attempt_changes();

-- Daily partitions of an attempts table, named <table>_pYYYYMMDD: one
-- implementation for courier.delivery_attempts and courier.run_attempts
-- (40_integrations.sql).
-- Creates the daily partitions from `days_back` days ago to `days_ahead`
-- days ahead that do not exist yet. Returns how many it created. A day whose
-- rows already sit in the DEFAULT partition is skipped with a NOTICE.
CREATE FUNCTION courier.maintain_daily_partitions(parent text, days_ahead integer DEFAULT 7,
                                                  days_back integer DEFAULT 0)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  today date := (now() AT TIME ZONE 'UTC')::date;
  day date;
  name text;
  created integer := 0;
BEGIN
  FOR day IN SELECT generate_series(today - days_back, today + days_ahead, interval '1 day')::date LOOP
    name := parent || '_p' || to_char(day, 'YYYYMMDD');
    CONTINUE WHEN to_regclass('courier.' || name) IS NOT NULL;
    BEGIN
      EXECUTE format('CREATE TABLE courier.%I PARTITION OF courier.%I FOR VALUES FROM (%L) TO (%L)',
                     name, parent, day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
      created := created + 1;
    EXCEPTION WHEN others THEN
      RAISE NOTICE 'pgcourier: cannot create partition % (%); its rows stay in the default partition', name, SQLERRM;
    END;
  END LOOP;
  RETURN created;
END
$$;

-- Drops the daily partitions of `parent` that end before `older_than` and
-- deletes its default partition's rows older than it. Returns how many it dropped.
CREATE FUNCTION courier.drop_daily_partitions(parent text, older_than timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
DECLARE
  part record;
  dropped integer := 0;
BEGIN
  FOR part IN
    SELECT c.relname
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = ('courier.' || parent)::regclass
      AND c.relname ~ ('^' || parent || '_p[0-9]{8}$')
      AND (to_date(right(c.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= older_than
  LOOP
    EXECUTE format('DROP TABLE courier.%I', part.relname);
    dropped := dropped + 1;
  END LOOP;
  EXECUTE format('DELETE FROM courier.%I WHERE started_at < $1', parent || '_default') USING older_than;
  RETURN dropped;
END
$$;

-- The partitions of courier.delivery_attempts (called by courier.prune(), 30_operations.sql).
CREATE FUNCTION courier.maintain_attempt_partitions(days_ahead integer DEFAULT 7, days_back integer DEFAULT 0)
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT courier.maintain_daily_partitions('delivery_attempts', days_ahead, days_back)
$$;
CREATE FUNCTION courier.drop_attempt_partitions(older_than timestamptz)
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
  SELECT courier.drop_daily_partitions('delivery_attempts', older_than)
$$;

-- Yesterday's to a week ahead's partitions exist from the start, so the first
-- attempts land in their day's partition before any prune() has run.
SELECT courier.maintain_attempt_partitions(7, 1);

-- Fan-out happens in the database so a plain INSERT INTO courier.events by a
-- producer behaves exactly like courier.publish(). It runs with the schema
-- owner's rights, so a producer needs no rights on the tables.
-- Deliveries of a paused subscription wait at next_attempt_at = 'infinity'
-- (held: never due, never failed) until it is resumed.
CREATE FUNCTION courier.fan_out_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  INSERT INTO courier.deliveries (tenant_id, event_id, subscription_id, next_attempt_at, created_at, ordering_key,
                                  payload_bytes)
  SELECT NEW.tenant_id, NEW.id, s.id,
         CASE WHEN s.paused_at IS NULL THEN now() ELSE 'infinity'::timestamptz END,
         now(),
         CASE WHEN s.ordering = 'fifo'
              THEN coalesce(NEW.ordering_key, NEW.payload ->> s.ordering_key_field) END,
         NEW.payload_bytes
  FROM courier.subscriptions s
  WHERE s.tenant_id = NEW.tenant_id
    AND s.active
    AND courier.event_type_matches(s.event_types, NEW.event_type)
    -- scope and filter (60_catalog.sql); @@ is NULL, so no match, when the
    -- predicate cannot be evaluated on this payload.
    AND (s.scope IS NULL OR NEW.labels @> s.scope)
    AND (s.filter IS NULL OR NEW.payload @@ s.filter);
  RETURN NULL;
END
$$;
CREATE TRIGGER events_fan_out AFTER INSERT ON courier.events
  FOR EACH ROW EXECUTE FUNCTION courier.fan_out_event();

-- Wake the daemons once per inserting statement; NOTIFY is sent at commit,
-- so a rolled-back transaction wakes nobody.
--
-- NOTIFY only when there is something to wake up for. PostgreSQL serialises
-- committing transactions that NOTIFY: each holds a database-wide lock until
-- its commit has been flushed. So a NOTIFY costs every other notifying
-- transaction (producers publishing, the daemon recording outcomes) a wait,
-- and none should be sent for nothing:
-- * a statement-level trigger fires even when its INSERT added no row (an
--   event no subscription matches, an outcome batch without outbox events):
--   so the function looks at the inserted rows first (the transition table
--   `inserted` of each trigger);
-- * the daemon's outcome statement sets courier.outbox_notify = 'deferred'
--   for its own transaction and sends one coalesced NOTIFY courier_outbox
--   after its commits (at most every 100 ms), so its per-batch commit does not
--   queue behind the producers' commits. Every other writer of the outbox
--   (courier.emit, run triggers, the CLI) still notifies at its commit.
-- One trigger function for the three channels: courier_deliveries (below),
-- courier_runs and courier_outbox (40_integrations.sql).
--
-- Trigger arguments: the channel, then 'deferrable' when a transaction may
-- set courier.outbox_notify = 'deferred' to leave the NOTIFY to its caller.
CREATE FUNCTION courier.notify_when_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
BEGIN
  IF TG_NARGS > 1 AND TG_ARGV[1] = 'deferrable'
     AND coalesce(current_setting('courier.outbox_notify', true), '') = 'deferred' THEN
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT 1 FROM inserted) THEN
    PERFORM pg_notify(TG_ARGV[0], '');
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_notify AFTER INSERT ON courier.deliveries
  REFERENCING NEW TABLE AS inserted
  FOR EACH STATEMENT EXECUTE FUNCTION courier.notify_when_inserted('courier_deliveries');

-- publish: insert one event and fan it out, in the caller's transaction.
-- The same (tenant_id, idempotency_key) returns the first event's id and creates nothing.
-- ordering_key and labels are optional (the 5-argument calls work). Runs with the schema
-- owner's rights; the BEFORE INSERT trigger events_check_tenant (90_roles.sql)
-- checks the caller's tenants.
CREATE FUNCTION courier.publish(tenant_id text, event_type text, payload jsonb,
                                idempotency_key text DEFAULT NULL, trace_id text DEFAULT NULL,
                                ordering_key text DEFAULT NULL, labels jsonb DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
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
  INSERT INTO courier.events AS e (tenant_id, event_type, payload, idempotency_key, trace_id, ordering_key, labels)
  VALUES (publish.tenant_id, publish.event_type, coalesce(publish.payload, '{}'::jsonb),
          publish.idempotency_key, publish.trace_id, publish.ordering_key, coalesce(publish.labels, '{}'::jsonb))
  ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING e.id INTO new_event_id;
  IF new_event_id IS NULL THEN
    SELECT e.id INTO new_event_id FROM courier.events e
    WHERE e.tenant_id = publish.tenant_id AND e.idempotency_key = publish.idempotency_key;
  END IF;
  RETURN new_event_id;
END
$$;
