"""Issue 13, end to end: the attacks a hostile producer, tenant or configuration writer tried, each
rerun against the running daemon. Every one must fail with a clear error and send nothing."""
import os
import shutil
import signal

from conftest import LOCAL_POLICIES, wait_for


def test_a_fifo_as_policies_file_is_refused_at_start_without_blocking(daemon_factory, tmp_path):
    fifo = str(tmp_path / "policies.yaml")
    os.mkfifo(fifo)
    d = daemon_factory(start=False, policies_file=fifo)
    d.start(wait_ready=False)
    assert d.wait(timeout=10) == 1, d.log()
    assert f"{fifo}: cannot read policies file: is a FIFO, not a regular file" in d.log()


def test_a_symlink_to_dev_zero_is_refused_at_start_before_reading(daemon_factory, tmp_path):
    link = str(tmp_path / "policies.yaml")
    os.symlink("/dev/zero", link)
    d = daemon_factory(start=False, policies_file=link)
    d.start(wait_ready=False)
    assert d.wait(timeout=10) == 1, d.log()
    assert "is a character device, not a regular file" in d.log()


def test_a_fifo_swapped_in_before_sighup_is_rejected_and_sigterm_still_stops_the_daemon(daemon_factory, tmp_path):
    """Before the fix the main thread blocked in open() on the FIFO: no SIGHUP or SIGTERM was handled
    afterwards, only SIGKILL ended the daemon."""
    path = str(tmp_path / "policies.yaml")
    shutil.copy(LOCAL_POLICIES, path)
    d = daemon_factory(policies_file=path)
    os.remove(path)
    os.mkfifo(path)
    d.signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in d.log(), timeout=10, what="the reload to be rejected")
    assert "is a FIFO, not a regular file" in d.log()
    # The old configuration stays in force and the main thread still handles signals.
    d.signal(signal.SIGTERM)
    assert d.wait(timeout=15) == 0, d.log()


def test_an_event_id_that_would_split_the_request_is_refused_at_insert(db):
    """The attack of issue 13: a producer-chosen id sent verbatim as webhook-id."""
    import psycopg2
    db.query("INSERT INTO courier.subscriptions (tenant_id, url, event_types) VALUES ('acme', 'http://127.0.0.1:9/x', '{*}')")
    try:
        db.query("INSERT INTO courier.events (id, tenant_id, event_type) VALUES (%s, 'acme', 'x')",
                 "evt_1\r\nX-Injected: yes\r\n\r\nGET /smuggled-by-producer HTTP/1.1")
        raise AssertionError("the id was accepted")
    except psycopg2.Error as e:
        assert "courier.events.id must be" in str(e)
    assert db.value("SELECT count(*) FROM courier.deliveries") == 0


def test_a_control_character_that_gets_past_the_schema_is_refused_by_the_daemon_and_nothing_is_sent(
        db, daemon_factory, receiver, create_subscription):
    """The last line of defence: with the schema's check switched off (as a superuser could), the
    request builder still refuses the header; the delivery fails as poison and the receiver sees nothing."""
    sub, _ = create_subscription(receiver.url("/hook"), policy="default")
    db.query("ALTER TABLE courier.events DISABLE TRIGGER events_check_tenant")
    db.query("INSERT INTO courier.events (id, tenant_id, event_type) VALUES (%s, 'acme', 'x')",
             "evt_1\r\nX-Injected: yes")
    db.query("ALTER TABLE courier.events ENABLE TRIGGER events_check_tenant")
    daemon_factory()
    wait_for(lambda: db.value("SELECT status FROM courier.deliveries") == "failed", what="the delivery to fail")
    attempt = db.rows("SELECT outcome, error_class, retryable, error_summary FROM courier.delivery_attempts")[0]
    assert attempt["outcome"] == "invalid_request"
    assert attempt["error_class"] == "poison"
    assert attempt["retryable"] is False
    assert "webhook-id" in attempt["error_summary"] and "X-Injected" not in attempt["error_summary"]
    assert receiver.hits == []
