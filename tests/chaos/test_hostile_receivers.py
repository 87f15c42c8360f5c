"""Chaos: receivers that misbehave at the socket level. Each one is a small Python server on 127.0.0.1.

Every case must end within its policy's timeouts with a recorded, classified attempt (README, "How a
failure is classified": timeouts, connection, TLS and protocol errors are transient and retried), and a
hostile receiver must not make the daemon read (or keep in memory) more than about 1 MiB of response."""
import socket
import threading
import time

import pytest

from chaos_helpers import RawServer, read_request, rss_kib, summary
from conftest import policy, wait_for

CONNECT_S, REQUEST_S = 1.0, 2.0
SLACK_S = 1.5  # scheduling slack on a busy 2-core machine


def hostile_policy(require_https=False):
    # A long backoff: the first attempt is recorded and the retry is scheduled far enough away that the
    # test sees 'retry_scheduled' (retryable) rather than a second attempt.
    p = policy(max_attempts=3, base="10s", cap="10s", jitter=0.0, connect=f"{int(CONNECT_S * 1000)}ms",
               request=f"{int(REQUEST_S * 1000)}ms")
    p["endpoint"] = {"require_https": require_https, "allow_cidrs": ["127.0.0.0/8"]}
    return p


def hold(server, seconds=30.0):
    """Keeps a connection open, silently, until the test stops the server (at most `seconds`)."""
    server.stopping.wait(seconds)


# ---- the misbehaving receivers -----------------------------------------------------------------------

def never_answers(conn, server):
    read_request(conn)
    hold(server)


def partial_headers_then_stall(conn, server):
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")  # no blank line: headers never end
    hold(server)


def full_headers_then_stall(conn, server):
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    hold(server)


def close_inside_headers(conn, server):
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Ty")
    conn.shutdown(socket.SHUT_RDWR)


def close_inside_body(conn, server):
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                 + b'{"ok": true, "pad": "' + b"x" * 80)
    conn.shutdown(socket.SHUT_RDWR)


def garbage(conn, server):
    read_request(conn)
    conn.sendall(b"\x00\xff\xfeSSH-2.0-not-http \x1b[31m<<<garbage>>>\r\n\x07\x08\r\n\r\n" + bytes(range(256)))
    time.sleep(0.5)
    conn.shutdown(socket.SHUT_RDWR)


def silent_tls(conn, server):
    # Accepts the TCP connection and never answers the TLS ClientHello.
    hold(server)


CASES = {
    # name: (handler, scheme, acceptable outcomes, bound in seconds for the attempt)
    "a_accepts_and_never_answers": (never_answers, "http", {"timeout"}, REQUEST_S),
    "b1_status_line_then_stalls_inside_headers": (partial_headers_then_stall, "http", {"timeout"}, REQUEST_S),
    "b2_full_headers_then_stalls_before_body": (full_headers_then_stall, "http", {"timeout"}, REQUEST_S),
    "c1_closes_inside_headers": (close_inside_headers, "http", {"protocol_error", "connection_error"}, REQUEST_S),
    "c2_closes_inside_body": (close_inside_body, "http", {"protocol_error", "connection_error"}, REQUEST_S),
    "e_invalid_http": (garbage, "http", {"protocol_error"}, REQUEST_S),
    # curl's connect timeout covers the TLS handshake: bounded by 1 s, not by the 2 s request timeout.
    "f_tls_handshake_never_answered": (silent_tls, "https", {"timeout", "tls_error"}, CONNECT_S),
}


@pytest.mark.parametrize("case", list(CASES))
def test_misbehaving_receiver_is_a_retryable_transport_failure_within_the_timeouts(
        case, db, create_subscription, daemon_factory, write_policies):
    handler, scheme, outcomes, bound = CASES[case]
    server = RawServer(handler).start()
    try:
        policies = write_policies({"default": hostile_policy(require_https=(scheme == "https"))})
        create_subscription(server.url(scheme=scheme))
        d = daemon_factory("h1", policies_file=policies, poll_interval="200ms")
        published = time.monotonic()
        event = db.publish("acme", "order.created", '{"n": 1}')
        delivery = wait_for(lambda: (lambda r: r if r["attempts"] >= 1 and r["status"] != "delivering" else None)(
            db.delivery(event)), timeout=REQUEST_S + 10, what=f"{case}: the first attempt recorded")
        took = time.monotonic() - published
        attempts = db.attempts(delivery["id"])
        assert len(attempts) == 1, attempts
        a = attempts[0]
        summary(f"receiver_{case}", outcome=a["outcome"], status_code=a["status_code"], error_class=a["error_class"],
                retryable=a["retryable"], attempt_ms=round(a["duration_ms"]), status=delivery["status"],
                error=a["error_summary"])
        assert server.stats["connections"] >= 1, "the receiver never saw a connection"
        assert a["outcome"] in outcomes, (f"{case}: outcome {a['outcome']!r} (status code {a['status_code']}, "
                                          f"{a['error_summary']!r}); expected one of {sorted(outcomes)}")
        assert a["error_class"] == "transient", a
        assert a["retryable"] is True, a
        assert delivery["status"] == "retry_scheduled", delivery
        assert a["error_summary"], a
        # Within its policy's timeouts.
        assert a["duration_ms"] <= (bound + SLACK_S) * 1000, a
        assert took <= bound + SLACK_S + 2.0, f"{case}: took {took:.1f} s to be recorded"
        assert d.proc.poll() is None, d.log()
    finally:
        server.stop()


def endless_body(conn, server):
    read_request(conn)
    started = time.monotonic()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Length: 2147483648\r\n\r\n")   # 2 GiB announced, streamed until the client hangs up
    chunk = b"x" * 65536
    sent = 0
    conn.settimeout(1.0)
    hung_up = None
    while time.monotonic() - started < 30 and not server.stopping.is_set() and sent < 2 * 1024 ** 3:
        try:
            sent += conn.send(chunk)
        except socket.timeout:
            continue  # the client is not reading: keep trying until it hangs up or 30 s pass
        except OSError as e:  # EPIPE / ECONNRESET: the client closed the connection
            hung_up = type(e).__name__
            break
    with server.lock:
        server.stats.setdefault("streams", []).append(
            {"sent": sent, "hung_up": hung_up, "seconds": time.monotonic() - started})


def test_endless_response_body_is_cut_at_about_1_mib_and_the_status_decides(
        db, create_subscription, daemon_factory, write_policies):
    server = RawServer(endless_body).start()
    try:
        policies = write_policies({"default": policy(max_attempts=3, base="10s", cap="10s", connect="1s",
                                                     request="20s")})
        create_subscription(server.url())
        d = daemon_factory("big", policies_file=policies, poll_interval="200ms")
        rss_before = rss_kib(d.proc.pid)
        peak = [rss_before or 0]
        stop_sampling = threading.Event()

        def sample():
            while not stop_sampling.is_set():
                value = rss_kib(d.proc.pid)
                if value:
                    peak[0] = max(peak[0], value)
                stop_sampling.wait(0.02)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        event = db.publish("acme", "order.created", '{"n": 1}')
        delivery = wait_for(lambda: (lambda r: r if r["attempts"] >= 1 and r["status"] != "delivering" else None)(
            db.delivery(event)), timeout=40, what="the attempt against the endless body recorded")
        wait_for(lambda: server.stats.get("streams"), timeout=35, what="the receiver to stop streaming")
        stop_sampling.set()
        sampler.join(timeout=5)
        stream = server.stats["streams"][0]
        a = db.attempts(delivery["id"])[0]
        summary("receiver_d_endless_body", bytes_sent_by_receiver=stream["sent"], hung_up=stream["hung_up"],
                stream_seconds=round(stream["seconds"], 2), outcome=a["outcome"], status_code=a["status_code"],
                status=delivery["status"], rss_before_mib=round((rss_before or 0) / 1024, 1),
                rss_peak_mib=round(peak[0] / 1024, 1), excerpt_bytes=len((a["response_excerpt"] or "").encode()))
        assert stream["hung_up"], f"the daemon never hung up: the receiver streamed {stream['sent']} bytes for 30 s"
        # The daemon stops reading after 1 MiB; what the receiver could still write is what the kernel's
        # socket buffers (a few MiB on loopback) absorbed.
        assert stream["sent"] < 100 * 1024 ** 2, stream
        assert stream["seconds"] < 10, stream
        assert peak[0] < 200 * 1024, f"daemon RSS reached {peak[0] / 1024:.0f} MiB"
        # README: a received status decides; bodies are read up to 1 MiB and only the excerpt is kept.
        assert a["status_code"] == 200, a
        assert delivery["status"] == "delivered", (delivery, a)
        assert len((a["response_excerpt"] or "").encode()) <= 1024, len(a["response_excerpt"])
        assert d.proc.poll() is None, d.log()
    finally:
        server.stop()
