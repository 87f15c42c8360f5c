"""Chaos: one outcome of a batch breaks a constraint. The daemon must quarantine that delivery (failed,
outcome record_error, the database's message in last_error) and commit the rest of the batch."""
from conftest import wait_for
from ops_helpers import publish_together

REFUSE_ONE = """
CREATE FUNCTION public.chaos_refuse_delivered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A producer-side rule the daemon knows nothing about: this one delivery may never become 'delivered'.
  IF NEW.id = '{delivery_id}' AND NEW.status = 'delivered' AND OLD.status IS DISTINCT FROM 'delivered' THEN
    RAISE EXCEPTION 'chaos rule: delivery % may not be marked delivered', NEW.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER chaos_refuse_delivered BEFORE UPDATE ON courier.deliveries
  FOR EACH ROW EXECUTE FUNCTION public.chaos_refuse_delivered();
"""


def test_a_row_breaking_a_constraint_is_quarantined_and_the_rest_of_the_batch_commits(
        db, make_scripted_receiver, create_subscription, daemon_factory):
    receiver = make_scripted_receiver()
    create_subscription(receiver.url("/ok"))
    # 20 events in one transaction, all due before the daemon starts: one claim, one batch of outcomes.
    events = publish_together(db, [("acme", "order.created", f'{{"n": {i}}}') for i in range(20)])
    bad_event = events[7]
    bad = db.delivery(bad_event)["id"]
    with db.conn.cursor() as cur:
        cur.execute(REFUSE_ONE.format(delivery_id=bad))  # no parameters: the % of RAISE stays as it is

    d = daemon_factory("q1", poll_interval="200ms")
    wait_for(lambda: db.value("SELECT count(*) FROM courier.delivery_queue") == 0, timeout=20,
             what="every delivery finished")

    rows = {r["event_id"]: r for r in db.rows("SELECT * FROM courier.deliveries")}
    others = [e for e in events if e != bad_event]
    assert [rows[e]["status"] for e in others] == ["delivered"] * 19, {e: rows[e]["status"] for e in others}
    quarantined = rows[bad_event]
    assert quarantined["status"] == "failed", quarantined
    assert "outcome could not be recorded" in (quarantined["last_error"] or ""), quarantined
    assert "chaos rule" in quarantined["last_error"], quarantined  # the database's message
    assert quarantined["completed_at"] is not None, quarantined
    assert db.value("SELECT count(*) FROM courier.delivery_queue WHERE delivery_id = %s", bad) == 0
    attempts = db.attempts(bad)
    assert [(a["outcome"], a["error_class"], a["retryable"]) for a in attempts] == [("record_error", "poison", False)], \
        attempts
    # It was sent (the receiver said 200); only recording the outcome failed.
    assert sorted(h["webhook_id"] for h in receiver.hits) == sorted(events)
    # Each neighbour has its one 'delivered' attempt.
    for e in others:
        assert [a["outcome"] for a in db.attempts(rows[e]["id"])] == ["delivered"], e

    # The daemon keeps running and delivering.
    assert d.proc.poll() is None, d.log()
    later = db.publish("acme", "order.created", '{"after": true}')
    wait_for(lambda: db.delivery(later)["status"] == "delivered", timeout=10, what="a delivery after the quarantine")
    assert d.proc.poll() is None, d.log()
