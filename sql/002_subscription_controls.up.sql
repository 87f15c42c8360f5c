-- 002_subscription_controls: what operators need to trust a subscription:
-- health counters, pause/resume/disable, per-subscription limits, FIFO
-- ordering, replay budgets, and the views to look at them.

ALTER TABLE courier.subscriptions
  ADD COLUMN paused_at            timestamptz,
  ADD COLUMN pause_reason         text,
  ADD COLUMN disabled_at          timestamptz,
  ADD COLUMN disabled_reason      text,
  ADD COLUMN consecutive_failures int NOT NULL DEFAULT 0,
  ADD COLUMN failing_since        timestamptz,  -- first failure after the last success
  ADD COLUMN last_success_at      timestamptz,
  ADD COLUMN last_failure_at      timestamptz,
  ADD COLUMN last_error           text,
  -- Limits; NULL = the policy's (or none).
  ADD COLUMN max_in_flight        int CHECK (max_in_flight > 0),
  ADD COLUMN rate_limit_per_second double precision CHECK (rate_limit_per_second > 0),
  ADD COLUMN rate_limit_burst     int CHECK (rate_limit_burst > 0),
  -- FIFO per ordering key: a delivery is not sent before the earlier one with
  -- the same key is delivered, failed or dead-lettered.
  ADD COLUMN ordering             text NOT NULL DEFAULT 'none' CHECK (ordering IN ('none', 'fifo')),
  -- Where the key comes from when the event has no ordering_key: a top-level
  -- payload field name (e.g. 'order_id').
  ADD COLUMN ordering_key_field   text;

ALTER TABLE courier.events ADD COLUMN ordering_key text;

ALTER TABLE courier.deliveries
  ADD COLUMN ordering_key text,
  -- Attempts made before the last replay: the policy's max_attempts counts
  -- from here, so a replayed delivery gets a fresh set of attempts while its
  -- attempt numbers keep increasing.
  ADD COLUMN attempt_budget_base int NOT NULL DEFAULT 0 CHECK (attempt_budget_base >= 0);

-- The FIFO check of the claim query: earlier unfinished deliveries with the same key.
CREATE INDEX deliveries_fifo ON courier.deliveries (subscription_id, ordering_key, created_at, id)
  WHERE ordering_key IS NOT NULL AND status IN ('pending', 'delivering', 'retry_scheduled');

-- Deliveries of a paused subscription wait at next_attempt_at = 'infinity'
-- (held: never due, never failed) until it is resumed.
CREATE OR REPLACE FUNCTION courier.fan_out_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO courier.deliveries (tenant_id, event_id, subscription_id, next_attempt_at, created_at, ordering_key)
  SELECT NEW.tenant_id, NEW.id, s.id,
         CASE WHEN s.paused_at IS NULL THEN now() ELSE 'infinity'::timestamptz END,
         now(),
         CASE WHEN s.ordering = 'fifo'
              THEN coalesce(NEW.ordering_key, NEW.payload ->> s.ordering_key_field) END
  FROM courier.subscriptions s
  WHERE s.tenant_id = NEW.tenant_id
    AND s.active
    AND courier.event_type_matches(s.event_types, NEW.event_type);
  RETURN NULL;
END
$$;

-- publish gains an optional ordering key (the 5-argument calls keep working).
DROP FUNCTION courier.publish(text, text, jsonb, text, text);
CREATE FUNCTION courier.publish(tenant_id text, event_type text, payload jsonb,
                                idempotency_key text DEFAULT NULL, trace_id text DEFAULT NULL,
                                ordering_key text DEFAULT NULL)
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
  INSERT INTO courier.events AS e (tenant_id, event_type, payload, idempotency_key, trace_id, ordering_key)
  VALUES (publish.tenant_id, publish.event_type, coalesce(publish.payload, '{}'::jsonb),
          publish.idempotency_key, publish.trace_id, publish.ordering_key)
  ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING e.id INTO new_event_id;
  IF new_event_id IS NULL THEN
    SELECT e.id INTO new_event_id FROM courier.events e
    WHERE e.tenant_id = publish.tenant_id AND e.idempotency_key = publish.idempotency_key;
  END IF;
  RETURN new_event_id;
END
$$;

-- Pause: hold every waiting delivery of the subscription.
CREATE FUNCTION courier.pause_subscription(subscription_id text, reason text DEFAULT 'paused by an operator')
RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  UPDATE courier.subscriptions s
  SET paused_at = coalesce(s.paused_at, now()), pause_reason = pause_subscription.reason, updated_at = now()
  WHERE s.id = pause_subscription.subscription_id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  UPDATE courier.deliveries d
  SET next_attempt_at = 'infinity', updated_at = now()
  WHERE d.subscription_id = pause_subscription.subscription_id
    AND d.status IN ('pending', 'retry_scheduled') AND d.next_attempt_at <> 'infinity';
  RETURN true;
END
$$;

-- Resume: re-enable, reset the failure counters, release the held deliveries.
CREATE FUNCTION courier.resume_subscription(subscription_id text)
RETURNS integer
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  released integer;
BEGIN
  UPDATE courier.subscriptions s
  SET paused_at = NULL, pause_reason = NULL, active = true, disabled_at = NULL, disabled_reason = NULL,
      consecutive_failures = 0, failing_since = NULL, updated_at = now()
  WHERE s.id = resume_subscription.subscription_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no subscription %', resume_subscription.subscription_id USING ERRCODE = 'no_data_found';
  END IF;
  UPDATE courier.deliveries d
  SET next_attempt_at = now(), updated_at = now()
  WHERE d.subscription_id = resume_subscription.subscription_id
    AND d.status IN ('pending', 'retry_scheduled') AND d.next_attempt_at = 'infinity';
  GET DIAGNOSTICS released = ROW_COUNT;
  PERFORM pg_notify('courier_deliveries', '');
  RETURN released;
END
$$;

-- Disable: no new deliveries are created; waiting ones fail when claimed
-- ("subscription is not active"). resume_subscription() re-enables.
CREATE FUNCTION courier.disable_subscription(subscription_id text, reason text DEFAULT 'disabled by an operator')
RETURNS boolean
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  UPDATE courier.subscriptions s
  SET active = false, disabled_at = now(), disabled_reason = disable_subscription.reason, updated_at = now()
  WHERE s.id = disable_subscription.subscription_id;
  RETURN FOUND;
END
$$;

-- Replay: re-queue finished deliveries with a fresh attempt budget; their
-- earlier attempts stay. Returns how many were re-queued.
CREATE FUNCTION courier.replay_deliveries(
    tenant_id text DEFAULT NULL, subscription_id text DEFAULT NULL, event_type text DEFAULT NULL,
    since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL,
    statuses text[] DEFAULT ARRAY['dead_lettered', 'failed'], include_delivered boolean DEFAULT false,
    dry_run boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
  wanted text[] := statuses || CASE WHEN include_delivered THEN ARRAY['delivered'] ELSE ARRAY[]::text[] END;
  n integer;
BEGIN
  IF dry_run THEN
    SELECT count(*) INTO n
    FROM courier.deliveries d JOIN courier.events e ON e.id = d.event_id
    WHERE d.status = ANY (wanted) AND d.status IN ('dead_lettered', 'failed', 'delivered')
      AND (tenant_id IS NULL OR d.tenant_id = tenant_id)
      AND (subscription_id IS NULL OR d.subscription_id = subscription_id)
      AND (event_type IS NULL OR e.event_type = event_type)
      AND (since IS NULL OR d.created_at >= since)
      AND (until IS NULL OR d.created_at < until);
    RETURN n;
  END IF;
  UPDATE courier.deliveries d
  SET status = 'pending', next_attempt_at = now(), completed_at = NULL, attempt_budget_base = d.attempts,
      last_error = 'replayed (was ' || d.status || ')', updated_at = now()
  FROM courier.events e
  WHERE e.id = d.event_id
    AND d.status = ANY (wanted) AND d.status IN ('dead_lettered', 'failed', 'delivered')
    AND (tenant_id IS NULL OR d.tenant_id = tenant_id)
    AND (subscription_id IS NULL OR d.subscription_id = subscription_id)
    AND (event_type IS NULL OR e.event_type = event_type)
    AND (since IS NULL OR d.created_at >= since)
    AND (until IS NULL OR d.created_at < until);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Re-delivery from a cursor: sends the stored events of the subscription's
-- tenant that match its event types, after the cursor, in (created_at, id)
-- order, at most max_events of them. Finished deliveries are re-queued,
-- missing ones created, unfinished ones left alone. Returns the last event id
-- processed (the cursor to continue from), NULL when there was nothing.
CREATE FUNCTION courier.redeliver_events(subscription_id text, from_event text DEFAULT NULL,
                                         since timestamptz DEFAULT NULL, max_events integer DEFAULT 1000)
RETURNS TABLE (events_processed integer, next_cursor text)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
  sub courier.subscriptions;
  cursor_at timestamptz;
BEGIN
  SELECT * INTO sub FROM courier.subscriptions s WHERE s.id = subscription_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no subscription %', subscription_id USING ERRCODE = 'no_data_found';
  END IF;
  IF from_event IS NOT NULL THEN
    SELECT e.created_at INTO cursor_at FROM courier.events e WHERE e.id = from_event;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no event %', from_event USING ERRCODE = 'no_data_found';
    END IF;
  END IF;
  RETURN QUERY
  WITH picked AS (
    SELECT e.id, e.tenant_id, e.created_at, e.ordering_key, e.payload
    FROM courier.events e
    WHERE e.tenant_id = sub.tenant_id
      AND courier.event_type_matches(sub.event_types, e.event_type)
      AND (from_event IS NULL OR (e.created_at, e.id) > (cursor_at, from_event))
      AND (since IS NULL OR e.created_at >= since)
    ORDER BY e.created_at, e.id
    LIMIT max_events
  ), upserted AS (
    INSERT INTO courier.deliveries AS d (tenant_id, event_id, subscription_id, ordering_key)
    SELECT p.tenant_id, p.id, sub.id,
           CASE WHEN sub.ordering = 'fifo' THEN coalesce(p.ordering_key, p.payload ->> sub.ordering_key_field) END
    FROM picked p
    ON CONFLICT ON CONSTRAINT deliveries_event_id_subscription_id_key DO UPDATE
      SET status = 'pending', next_attempt_at = now(), completed_at = NULL, attempt_budget_base = d.attempts,
          last_error = 'redelivered (was ' || d.status || ')', updated_at = now()
      WHERE d.status IN ('delivered', 'failed', 'dead_lettered')
    RETURNING d.event_id
  )
  SELECT (SELECT count(*)::integer FROM picked),
         (SELECT p.id FROM picked p ORDER BY p.created_at DESC, p.id DESC LIMIT 1);
END
$$;

-- A delivery's timeline, one row per attempt (dashboards, pgcourierctl inspect).
CREATE VIEW courier.delivery_timeline AS
SELECT a.delivery_id, d.tenant_id, d.subscription_id, d.event_id, a.attempt, a.started_at, a.duration_ms,
       a.status_code, a.outcome, a.error_class, a.retryable, a.error_summary, a.worker
FROM courier.delivery_attempts a
JOIN courier.deliveries d ON d.id = a.delivery_id;

-- Per-subscription health.
CREATE VIEW courier.subscription_health AS
SELECT s.id AS subscription_id, s.tenant_id, s.url, s.policy,
       CASE WHEN NOT s.active THEN 'disabled' WHEN s.paused_at IS NOT NULL THEN 'paused' ELSE 'active' END AS state,
       s.paused_at, s.pause_reason, s.disabled_at, s.disabled_reason,
       s.consecutive_failures, s.failing_since, s.last_success_at, s.last_failure_at, s.last_error,
       (SELECT count(*) FROM courier.deliveries d
        WHERE d.subscription_id = s.id AND d.status IN ('pending', 'retry_scheduled')
          AND d.next_attempt_at = 'infinity') AS held_deliveries
FROM courier.subscriptions s;

-- A destination refused by the endpoint-safety rules is its own error class.
ALTER TABLE courier.delivery_attempts DROP CONSTRAINT delivery_attempts_error_class_check;
ALTER TABLE courier.delivery_attempts ADD CONSTRAINT delivery_attempts_error_class_check
  CHECK (error_class IN ('transient', 'rate_limited', 'auth', 'validation', 'poison', 'blocked_destination'));
