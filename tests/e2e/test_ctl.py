"""End to end: the operator CLI (pgcourierctl) driving a real daemon: secret rotation and revocation,
pause/resume/disable, replay, redelivery from a cursor, inspect, and command-line errors. Every
check goes through pgcourierctl's output or the state it leaves in the database, and what the
receiver actually gets."""
import re
import time

from conftest import policy, wait_for
from receiver import verify_signature

TERMINAL = ("delivered", "failed", "dead_lettered")


def lines_of(result):
    return result.stdout.splitlines()


def secret_lines(output):
    """The '  secret:' lines of pgcourierctl output, each as a dict (id, last4, created, expires, note)."""
    out = []
    for line in output.splitlines():
        if not line.startswith("  secret:  "):
            continue
        fields = line.strip().split("  ")  # columns are separated by two spaces; timestamps hold one
        assert fields[0] == "secret:" and fields[2].startswith("whsec_..."), line
        entry = {"id": fields[1], "last4": fields[2][len("whsec_..."):], "created": None, "expires": None,
                 "note": None}
        for field in fields[3:]:
            if field.startswith("created "):
                entry["created"] = field[len("created "):]
            elif field.startswith("expires "):
                entry["expires"] = field[len("expires "):]
            else:
                entry["note"] = field
        out.append(entry)
    return out


def new_secret_from(output):
    """The secret on the 'signing secret (shown once ...)' line."""
    found = [line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("signing secret (shown once")]
    assert len(found) == 1, output
    return found[0]


def signatures(hit):
    header = hit["headers"].get("webhook-signature", "")
    return header.split(" ") if header else []


def signed_with(secret, hit, signature):
    """True when this one v1 signature of the hit verifies with secret."""
    h = hit["headers"]
    return verify_signature(secret, h["webhook-id"], h["webhook-timestamp"], hit["body"].encode(), signature)


def one_hit(receiver, event_id):
    return wait_for(lambda: receiver.hits_for(msg_id=event_id), timeout=5,
                    what=f"the receiver to get {event_id}")[0]


def seconds_from_now(db, timestamp, ahead):
    """|timestamp - (now() + ahead)| in seconds, with PostgreSQL parsing what pgcourierctl printed."""
    return db.value("SELECT abs(extract(epoch FROM (%s::timestamptz - (now() + %s::interval))))::float8",
                    timestamp, ahead)


def health(db, sub_id):
    return db.rows("SELECT * FROM courier.subscription_health WHERE subscription_id = %s", sub_id)[0]


# Secrets ---------------------------------------------------------------------------------------------

def test_rotate_secret_signs_with_both_secrets_during_the_grace_period_and_revoke_leaves_only_the_new_one(
        db, ctl, receiver, create_subscription, daemon_factory):
    sub_id, s1 = create_subscription(receiver.url("/ok"))
    daemon_factory("d1", poll_interval="100ms")

    rotated = ctl("subscription", "rotate-secret", sub_id, "--grace", "1h").stdout
    s2 = new_secret_from(rotated)
    assert s2.startswith("whsec_") and s2 != s1, rotated
    assert rotated.count(s2) == 1 and s1 not in rotated and s1[len("whsec_"):] not in rotated, rotated
    assert rotated.splitlines()[0] == f"rotated the signing secret of {sub_id}", rotated
    listed = secret_lines(rotated)
    assert [(s["last4"], s["note"]) for s in listed] == [(s2[-4:], "(new)"), (s1[-4:], "(grace period set)")], rotated

    # During the grace period every delivery carries two signatures: one per active secret.
    first = db.publish("acme", "order.created", '{"n": 1}')
    hit = one_hit(receiver, first)
    sigs = signatures(hit)
    assert len(sigs) == 2 and all(s.startswith("v1,") for s in sigs), hit["headers"]
    assert sorted((signed_with(s1, hit, s), signed_with(s2, hit, s)) for s in sigs) == \
        [(False, True), (True, False)], sigs  # one verifies with S1 only, the other with S2 only

    shown = ctl("subscription", "show", sub_id).stdout
    assert s1 not in shown and s2 not in shown, shown
    assert s1[len("whsec_"):] not in shown and s2[len("whsec_"):] not in shown, shown
    active = secret_lines(shown)
    assert [s["last4"] for s in active] == [s2[-4:], s1[-4:]], shown
    new, old = active
    assert new["expires"] is None, shown
    assert old["expires"] is not None and seconds_from_now(db, old["expires"], "1 hour") < 60, shown
    stored = db.rows("SELECT id, last4, expires_at IS NOT NULL AS expiring FROM courier.subscription_secrets "
                     "WHERE subscription_id = %s AND revoked_at IS NULL ORDER BY created_at DESC", sub_id)
    assert [(r["id"], r["last4"], r["expiring"]) for r in stored] == \
        [(new["id"], s2[-4:], False), (old["id"], s1[-4:], True)]

    # Revoke every secret but the newest: the next delivery carries S2's signature alone.
    revoked = ctl("subscription", "revoke-secret", sub_id).stdout
    assert revoked.splitlines()[0].startswith(f"revoked 1 secret of {sub_id}"), revoked
    assert [(s["id"], s["note"]) for s in secret_lines(revoked)] == [(old["id"], "(revoked)"), (new["id"], None)], \
        revoked
    assert s1 not in revoked and s2 not in revoked, revoked
    second = db.publish("acme", "order.created", '{"n": 2}')
    hit = one_hit(receiver, second)
    sigs = signatures(hit)
    assert len(sigs) == 1, hit["headers"]
    assert signed_with(s2, hit, sigs[0]) and not signed_with(s1, hit, sigs[0]), sigs
    assert [s["last4"] for s in secret_lines(ctl("subscription", "show", sub_id).stdout)] == [s2[-4:]]


def test_rotate_secret_with_no_grace_stops_signing_with_the_old_secret_at_once(
        db, ctl, receiver, create_subscription, daemon_factory):
    sub_id, s1 = create_subscription(receiver.url("/ok"))
    daemon_factory("d1", poll_interval="100ms")

    rotated = ctl("subscription", "rotate-secret", sub_id, "--grace", "0s").stdout
    s2 = new_secret_from(rotated)
    assert [(s["last4"], s["note"]) for s in secret_lines(rotated)] == \
        [(s2[-4:], "(new)"), (s1[-4:], "(expired now)")], rotated
    assert "signed with every active secret" not in rotated, rotated

    event_id = db.publish("acme", "order.created", "{}")
    hit = one_hit(receiver, event_id)
    sigs = signatures(hit)
    assert len(sigs) == 1, hit["headers"]
    assert signed_with(s2, hit, sigs[0]) and not signed_with(s1, hit, sigs[0]), sigs
    assert [s["last4"] for s in secret_lines(ctl("subscription", "show", sub_id).stdout)] == [s2[-4:]]


# Pause, resume, disable ------------------------------------------------------------------------------

def test_pause_holds_deliveries_resume_releases_them_and_disable_stops_new_ones(
        db, ctl, receiver, make_receiver, create_subscription, daemon_factory):
    sub_id, _ = create_subscription(receiver.url("/ok"))
    other = make_receiver()
    other_sub, _ = create_subscription(other.url("/ok"))
    daemon_factory("d1", poll_interval="100ms")

    out = ctl("subscription", "pause", sub_id, "--reason", "x").stdout
    assert out == f"paused {sub_id} (x); 0 deliveries held until it is resumed\n"
    events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(2)]
    wait_for(lambda: len(other.hits) == 2, timeout=5, what="the other subscription's deliveries")
    time.sleep(1.0)
    assert receiver.hits == [], "a paused subscription received requests"
    h = health(db, sub_id)
    assert (h["state"], h["pause_reason"], h["held_deliveries"]) == ("paused", "x", 2), h
    for e in events:
        d = db.delivery(e, sub_id)
        assert (d["status"], d["attempts"]) == ("pending", 0), d
    shown = ctl("subscription", "show", sub_id).stdout
    assert re.search(r"^  state:   paused since \S+ \S+: x$", shown, re.M), shown
    assert ", 2 held deliveries\n" in shown, shown

    out = ctl("subscription", "resume", sub_id).stdout
    assert out == f"resumed {sub_id}; released 2 held deliveries\n"
    wait_for(lambda: all(db.delivery(e, sub_id)["status"] == "delivered" for e in events), timeout=5,
             what="the released deliveries to be delivered")
    assert sorted(h["headers"]["webhook-id"] for h in receiver.hits) == sorted(events)
    h = health(db, sub_id)
    assert (h["state"], h["held_deliveries"]) == ("active", 0), h

    out = ctl("subscription", "disable", sub_id, "--reason", "y").stdout
    assert out.startswith(f"disabled {sub_id} (y); "), out
    late = db.publish("acme", "order.created", '{"n": 3}')
    assert db.value("SELECT count(*) FROM courier.deliveries WHERE event_id = %s AND subscription_id = %s",
                    late, sub_id) == 0
    assert db.delivery(late, other_sub)["subscription_id"] == other_sub  # the event did fan out
    wait_for(lambda: db.delivery(late, other_sub)["status"] == "delivered", timeout=5, what="the other delivery")
    assert receiver.hits_for(msg_id=late) == []

    status = lines_of(ctl("status"))
    assert "subscriptions paused, disabled or failing:" in status, status
    at = status.index(f"{sub_id}  tenant=acme  {receiver.url('/ok')}")
    assert re.fullmatch(r"  state:   disabled since \S+ \S+: y", status[at + 1]), status
    assert not any(line.startswith(other_sub) for line in status), status


# Replay ----------------------------------------------------------------------------------------------

def test_replay_requeues_dead_letters_of_one_subscription_and_delivered_ones_only_when_asked(
        db, ctl, receiver, make_receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=1)})
    sub_id, _ = create_subscription(receiver.url("/status/500"))
    other = make_receiver()
    other_sub, _ = create_subscription(other.url("/status/500"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(2)]
    wait_for(lambda: all(db.delivery(e, s)["status"] == "dead_lettered" for e in events for s in (sub_id, other_sub)),
             timeout=5, what="the dead letters")
    db.query("UPDATE courier.subscriptions SET url = %s, updated_at = now() WHERE id = %s", receiver.url("/ok"), sub_id)

    snapshot = "SELECT id, status, attempts, attempt_budget_base, next_attempt_at, last_error, completed_at " \
               "FROM courier.deliveries ORDER BY id"
    before = db.rows(snapshot)
    assert ctl("replay", "--subscription", sub_id, "--dry-run").stdout == "would replay 2 deliveries\n"
    time.sleep(0.3)
    assert db.rows(snapshot) == before, "a dry run changed deliveries"
    assert receiver.hits_for("/ok") == []

    assert ctl("replay", "--subscription", sub_id).stdout == "replayed 2 deliveries\n"
    wait_for(lambda: all(db.delivery(e, sub_id)["status"] in TERMINAL for e in events), timeout=5,
             what="the replayed deliveries")
    for e in events:
        d = db.delivery(e, sub_id)
        assert (d["status"], d["attempts"], d["attempt_budget_base"]) == ("delivered", 2, 1), d
        assert [(a["attempt"], a["status_code"], a["outcome"]) for a in db.attempts(d["id"])] == \
            [(1, 500, "http_error"), (2, 200, "delivered")]
        assert len(receiver.hits_for("/ok", msg_id=e)) == 1
        # --subscription kept the other subscription's dead letters where they were.
        o = db.delivery(e, other_sub)
        assert (o["status"], o["attempts"]) == ("dead_lettered", 1), o

    # Delivered ones are replayed only with --include-delivered.
    assert ctl("replay", "--subscription", sub_id, "--dry-run").stdout == "would replay 0 deliveries\n"
    assert ctl("replay", "--subscription", sub_id).stdout == "replayed 0 deliveries\n"
    assert ctl("replay", "--subscription", sub_id, "--include-delivered", "--dry-run").stdout == \
        "would replay 2 deliveries\n"
    assert all(db.delivery(e, sub_id)["attempts"] == 2 for e in events)
    assert ctl("replay", "--subscription", sub_id, "--include-delivered").stdout == "replayed 2 deliveries\n"
    wait_for(lambda: all(len(receiver.hits_for("/ok", msg_id=e)) == 2 for e in events), timeout=5,
             what="the delivered deliveries to be sent again")
    wait_for(lambda: all(db.delivery(e, sub_id)["status"] == "delivered" and db.delivery(e, sub_id)["attempts"] == 3
                         for e in events), timeout=5, what="the third attempts to be recorded")
    for e in events:
        assert [a["attempt"] for a in db.attempts(db.delivery(e, sub_id)["id"])] == [1, 2, 3]


# Redelivery from a cursor ----------------------------------------------------------------------------

def test_redeliver_from_a_timestamp_then_from_the_printed_cursor_resends_every_event_once_in_order(
        db, ctl, receiver, create_subscription, daemon_factory):
    sub_id, _ = create_subscription(receiver.url("/ok"))
    # One request at a time, so that the arrival order is the order the daemon sends in.
    daemon_factory("d1", poll_interval="100ms", concurrency=1, max_claim_batch=1)
    since = db.value("SELECT now()::text")
    events = [db.publish("acme", "order.created", f'{{"n": {i}}}') for i in range(5)]
    created_order = [r[0] for r in db.query("SELECT id FROM courier.events ORDER BY created_at, id")]
    assert sorted(created_order) == sorted(events)
    wait_for(lambda: len(receiver.hits) == 5 and all(db.delivery(e)["status"] == "delivered" for e in events),
             timeout=5, what="the first deliveries")

    def resent():
        return [h["headers"]["webhook-id"] for h in receiver.hits[5:]]

    out = ctl("redeliver", "--subscription", sub_id, "--since", since, "--limit", "3").stdout
    assert out == f"re-queued 3 events; continue with --from-event {created_order[2]}\n"
    wait_for(lambda: len(receiver.hits) >= 8, timeout=5, what="3 events sent again")
    time.sleep(0.3)
    assert resent() == created_order[:3]

    out = ctl("redeliver", "--subscription", sub_id, "--from-event", created_order[2], "--limit", "3").stdout
    assert out == f"re-queued 2 events; continue with --from-event {created_order[4]}\n"
    wait_for(lambda: len(receiver.hits) >= 10, timeout=5, what="the last 2 events sent again")
    out = ctl("redeliver", "--subscription", sub_id, "--from-event", created_order[4], "--limit", "3").stdout
    assert out == "re-queued 0 events; nothing after the cursor\n"
    time.sleep(0.3)
    assert resent() == created_order, "each event was to be sent again exactly once, in created order"
    wait_for(lambda: all(db.delivery(e)["status"] == "delivered" for e in events), timeout=5,
             what="the redeliveries to be recorded")
    assert sorted(db.delivery(e)["attempts"] for e in events) == [2] * 5


# Inspect ---------------------------------------------------------------------------------------------

ATTEMPT_LINE = re.compile(r"^\s+(\d+)\s+\S+ \S+\s+[0-9.]+\s+(\S+)\s+(\S+)\s")


def test_inspect_shows_a_delivery_that_succeeded_on_its_third_attempt_with_each_attempt_in_order(
        db, ctl, receiver, create_subscription, daemon_factory, write_policies):
    policies = write_policies({"default": policy(max_attempts=5, base="100ms", cap="200ms")})
    sub_id, _ = create_subscription(receiver.url("/flaky/2"))
    daemon_factory("d1", policies_file=policies, poll_interval="100ms")
    event_id = db.publish("acme", "order.created", "{}")
    wait_for(lambda: db.delivery(event_id)["status"] in TERMINAL, timeout=5, what="the delivery to finish")
    dlv = db.delivery(event_id)["id"]

    out = lines_of(ctl("inspect", dlv))
    assert out[0] == f"delivery {dlv}  tenant=acme", out
    assert "  status:       delivered after 3 attempts" in out, out
    assert f"  event:        {event_id}  order.created" in out, out
    assert "  last status:  200" in out, out
    assert out[out.index("attempts:") + 1].split()[:3] == ["#", "started", "duration"], out
    rows = [m.groups() for m in map(ATTEMPT_LINE.match, out[out.index("attempts:") + 2:]) if m]
    assert rows == [("1", "500", "http_error"), ("2", "500", "http_error"), ("3", "200", "delivered")], out
    assert len(out) == out.index("attempts:") + 2 + 3, out


def test_inspect_of_an_unknown_delivery_exits_1_saying_so(ctl):
    result = ctl("inspect", "dlv_nope", check=False)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert "no delivery dlv_nope" in result.stderr, result.stderr


# Command-line errors ---------------------------------------------------------------------------------

def test_a_missing_required_argument_exits_2_and_says_what_is_missing(ctl):
    for args, message in [
            (["redeliver", "--since", "2026-01-01T00:00:00Z"], "--subscription is required"),
            (["redeliver", "--subscription", "sub_x"], "redeliver needs --from-event EVT or --since TS"),
            (["subscription", "pause"], "subscription pause needs ID"),
            (["inspect"], "inspect needs DLV_ID"),
            (["publish", "--tenant", "acme"], "--type is required"),
            (["subscription", "create", "--tenant", "acme", "--events", "*"], "--url is required")]:
        result = ctl(*args, check=False)
        assert result.returncode == 2, (args, result)
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == "", (args, result.stdout)


def test_an_unknown_option_exits_2_naming_it_and_changes_nothing(db, ctl, receiver, create_subscription):
    sub_id, _ = create_subscription(receiver.url("/ok"))
    event_id = db.publish("acme", "order.created", "{}")
    db.query("UPDATE courier.deliveries SET status = 'dead_lettered', attempts = 1, completed_at = now() "
             "WHERE event_id = %s", event_id)
    for args, option in [(["replay", "--subscripton", sub_id], "--subscripton"),
                         (["replay", "--subscription", sub_id, "--dryrun"], "--dryrun"),
                         (["subscription", "pause", sub_id, "--reson", "x"], "--reson")]:
        result = ctl(*args, check=False)
        assert result.returncode == 2, (args, result)
        assert option in result.stderr, (args, result.stderr)
        assert result.stdout == "", (args, result.stdout)
    d = db.delivery(event_id)
    assert (d["status"], d["attempt_budget_base"]) == ("dead_lettered", 0), d
    assert health(db, sub_id)["state"] == "active"
