#!/usr/bin/env python3
"""A webhook receiver for demos and end-to-end tests (stdlib only).

Behaviour is chosen by the request path, so one receiver can play many endpoints:
  /ok, /anything        200
  /status/CODE          always CODE (e.g. /status/400, /status/500)
  /flaky/N              500 for the first N requests of each webhook-id, then 200
  /hang/SECONDS         sleeps SECONDS before answering 200 (a receiver that stalls)
  /redirect             301 to /ok
Every request is verified against the Standard Webhooks signature when secrets
are known, and recorded (method, path, headers, body, arrival time, verdict).

  tools/receiver.py --port 8081 [--secret whsec_...] [--log hits.jsonl] [--quiet]
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify_signature(secret, msg_id, timestamp, body, header):
    """True when one of the space-separated v1 signatures matches secret."""
    if not secret or not header:
        return False
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for part in header.split(" "):
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


class Receiver:
    """An HTTP server on 127.0.0.1 in a background thread, recording every hit."""

    def __init__(self, port=0, secrets=None, log_path=None, quiet=True):
        self.secrets = list(secrets or [])
        self.hits = []
        self.lock = threading.Lock()
        self.log_path = log_path
        self.quiet = quiet
        self._attempts = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                receiver._handle(self, body)

        ThreadingHTTPServer.request_queue_size = 256  # bursts of new connections
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path="/ok"):
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler, body):
        headers = {k.lower(): v for k, v in handler.headers.items()}
        msg_id = headers.get("webhook-id", "")
        verified = any(
            verify_signature(s, msg_id, headers.get("webhook-timestamp", ""), body, headers.get("webhook-signature", ""))
            for s in self.secrets)
        path = handler.path
        with self.lock:
            key = (path, msg_id)
            self._attempts[key] = self._attempts.get(key, 0) + 1
            attempt = self._attempts[key]
        status, delay, extra = 200, 0.0, {}
        parts = path.strip("/").split("/")
        if parts[0] == "status" and len(parts) > 1:
            status = int(parts[1])
        elif parts[0] == "flaky" and len(parts) > 1:
            status = 500 if attempt <= int(parts[1]) else 200
        elif parts[0] == "hang" and len(parts) > 1:
            delay = float(parts[1])
        elif parts[0] == "redirect":
            status, extra = 301, {"Location": "/ok"}
        hit = {"path": path, "headers": headers, "body": body.decode("utf-8", "replace"), "verified": verified,
               "arrived_at": time.time(), "status": status, "attempt_seen": attempt}
        with self.lock:
            self.hits.append(hit)
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(hit) + "\n")
        if not self.quiet:
            print(f"{time.strftime('%H:%M:%S')} {path} webhook-id={msg_id} signature="
                  f"{'valid' if verified else 'INVALID'} -> {status}  {hit['body'][:120]}", flush=True)
        if delay:
            time.sleep(delay)
        reply = b'{"ok":true}' if status < 300 else b'{"error":"receiver said no"}'
        try:
            handler.send_response(status)
            for k, v in extra.items():
                handler.send_header(k, v)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(reply)))
            handler.end_headers()
            handler.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def hits_for(self, path=None, msg_id=None):
        with self.lock:
            return [h for h in self.hits
                    if (path is None or h["path"] == path) and (msg_id is None or h["headers"].get("webhook-id") == msg_id)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", action="append", default=[], help="whsec_ secret to verify (repeatable)")
    parser.add_argument("--secret-file", help="file with one whsec_ secret per line (re-read on each request)")
    parser.add_argument("--log", help="append every hit as a JSON line to this file")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    receiver = Receiver(args.port, args.secret, args.log, args.quiet)
    if args.secret_file:
        original = receiver._handle

        def handle_with_file(handler, body):
            try:
                with open(args.secret_file) as f:
                    receiver.secrets = args.secret + [line.strip() for line in f if line.strip()]
            except OSError:
                pass
            original(handler, body)
        receiver._handle = handle_with_file
    print(f"receiver listening on http://127.0.0.1:{receiver.port}", flush=True)
    try:
        receiver.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
