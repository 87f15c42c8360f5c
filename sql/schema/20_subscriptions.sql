-- 20_subscriptions: what operators need to trust a subscription: pause,
-- resume, disable, replay and re-delivery from a cursor, and the health view
-- to look at them. The columns they change (paused_at, consecutive_failures,
-- limits, ordering...) are in courier.subscriptions (10_core.sql).
-- The operating functions change tables operators cannot touch directly, so
-- they run with the schema owner's rights (SECURITY DEFINER, with a fixed
-- search_path); 90_roles.sql grants them to courier_operator.

-- Pause: hold every waiting delivery of the subscription.
CREATE FUNCTION courier.pause_subscription(subscription_id text, reason text DEFAULT 'paused by an operator')
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
#variable_conflict use_column
BEGIN
  UPDATE courier.subscriptions s
  SET paused_at = coalesce(s.paused_at, now()), pause_reason = pause_subscription.reason, updated_at = now()
  WHERE s.id = pause_subscription.subscription_id;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  -- Its waiting deliveries, found through the queue (the leased ones are held
  -- when their attempt's result is written).
  UPDATE courier.deliveries d
  SET next_attempt_at = 'infinity', updated_at = now()
  FROM courier.delivery_queue q
  WHERE q.subscription_id = pause_subscription.subscription_id AND q.due_at <> 'infinity'
    AND q.lease_owner IS NULL AND d.id = q.delivery_id AND d.status IN ('pending', 'retry_scheduled');
  RETURN true;
END
$$;

-- Resume: re-enable, reset the failure counters, release the held deliveries.
CREATE FUNCTION courier.resume_subscription(subscription_id text)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
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
  FROM courier.delivery_queue q
  WHERE q.subscription_id = resume_subscription.subscription_id AND q.due_at = 'infinity'
    AND d.id = q.delivery_id AND d.status IN ('pending', 'retry_scheduled');
  GET DIAGNOSTICS released = ROW_COUNT;
  PERFORM pg_notify('courier_deliveries', '');
  RETURN released;
END
$$;

-- Disable: no new deliveries are created; waiting ones fail when claimed
-- ("subscription is not active"). resume_subscription() re-enables.
CREATE FUNCTION courier.disable_subscription(subscription_id text, reason text DEFAULT 'disabled by an operator')
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
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
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, courier, pg_temp AS $$
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
    SELECT e.id, e.tenant_id, e.created_at, e.ordering_key, e.payload, e.payload_bytes
    FROM courier.events e
    WHERE e.tenant_id = sub.tenant_id
      AND courier.event_type_matches(sub.event_types, e.event_type)
      AND (from_event IS NULL OR (e.created_at, e.id) > (cursor_at, from_event))
      AND (since IS NULL OR e.created_at >= since)
    ORDER BY e.created_at, e.id
    LIMIT max_events
  ), upserted AS (
    INSERT INTO courier.deliveries AS d (tenant_id, event_id, subscription_id, ordering_key, payload_bytes)
    SELECT p.tenant_id, p.id, sub.id,
           CASE WHEN sub.ordering = 'fifo' THEN coalesce(p.ordering_key, p.payload ->> sub.ordering_key_field) END,
           p.payload_bytes
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

-- Per-subscription health.
CREATE VIEW courier.subscription_health AS
SELECT s.id AS subscription_id, s.tenant_id, courier.redact_url(s.url) AS url, s.policy,
       CASE WHEN NOT s.active THEN 'disabled' WHEN s.paused_at IS NOT NULL THEN 'paused' ELSE 'active' END AS state,
       s.paused_at, s.pause_reason, s.disabled_at, s.disabled_reason,
       s.consecutive_failures, s.failing_since, s.last_success_at, s.last_failure_at, s.last_error,
       (SELECT count(*) FROM courier.delivery_queue q
        WHERE q.subscription_id = s.id AND q.due_at = 'infinity' AND q.lease_owner IS NULL) AS held_deliveries
FROM courier.subscriptions s;
