"""A test receiver (a subclass of tools/receiver.py's Receiver) whose answers are chosen per request
by a Python function, and which records what tools/receiver.py does not: the order of arrival, the
parsed event payload, and how many requests were being answered at the same time.

    r = ScriptedReceiver(respond).start()

respond(hit) -> None (answer by path, like tools/receiver.py: /ok 200, /status/CODE, /hang/SECONDS)
             or (status, {header: value}, delay_seconds)
hit: {"seq", "path", "headers", "webhook_id", "data" (the envelope's data, or None), "arrived_at",
      "attempt_seen" (requests so far for this path and webhook-id, this one included)}
After respond, the hit also has "status".
"""
import json
import time

from receiver import Receiver, verify_signature


def by_path(path):
    """The answer tools/receiver.py gives for a path (the subset the tests use)."""
    parts = path.strip("/").split("/")
    if parts[0] == "status" and len(parts) > 1:
        return int(parts[1]), {}, 0.0
    if parts[0] == "hang" and len(parts) > 1:
        return 200, {}, float(parts[1])
    return 200, {}, 0.0


class ScriptedReceiver(Receiver):
    def __init__(self, respond=None, **kwargs):
        super().__init__(**kwargs)
        self.respond = respond
        self.active = 0          # requests received and not yet answered
        self.max_active = 0
        self._seen = {}
        self._seq = 0

    def _handle(self, handler, body):
        arrived = time.time()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        msg_id = headers.get("webhook-id", "")
        try:
            data = json.loads(body).get("data")
        except (ValueError, AttributeError):
            data = None
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            key = (handler.path, msg_id)
            self._seen[key] = self._seen.get(key, 0) + 1
            self._seq += 1
            hit = {"seq": self._seq, "path": handler.path, "headers": headers, "webhook_id": msg_id,
                   "data": data, "arrived_at": arrived, "attempt_seen": self._seen[key],
                   "body": body.decode("utf-8", "replace"),
                   "verified": any(verify_signature(s, msg_id, headers.get("webhook-timestamp", ""), body,
                                                    headers.get("webhook-signature", "")) for s in self.secrets)}
        answer = self.respond(hit) if self.respond else None
        status, extra, delay = answer if answer is not None else by_path(handler.path)
        hit["status"] = status
        with self.lock:
            self.hits.append(hit)
            self.hits.sort(key=lambda h: h["seq"])  # arrival order, even if answers were decided out of order
        if delay:
            time.sleep(delay)
        reply = b'{"ok":true}' if status < 300 else b'{"error":"receiver said no"}'
        # No longer "being answered" from here on: the daemon cannot see the response before this.
        with self.lock:
            self.active -= 1
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

    def url_for(self, host, path="/ok"):
        """The URL of this receiver with another spelling of its host (e.g. localhost, 2130706433)."""
        return f"http://{host}:{self.port}{path}"
