"""A fake third-party API for the integration-run tests: an HTTP/1.1 server on 127.0.0.1 (stdlib only,
keep-alive, one thread per connection) that plays a vendor the daemon calls.

    v = Vendor().start()
    v.script("POST", "/v1/messages", (503, {}, None), (201, {}, {"sid": "SM1"}))
    v.require_api_key("X-Api-Key", "k1")       # or require_bearer / require_basic / require_oauth
    ...
    v.requests("POST", "/v1/messages")         # what arrived, in order (Request values)
    v.stop()

Scripts: each (method, path) answers from its own list of (status, headers, body), consumed in order,
the last one repeating. body: dict/list (sent as JSON), str, bytes or None. Unscripted paths answer 404.
A request refused by the auth check (401) does not consume the script: the script is what the API
answers once the caller is authenticated.

OAuth2 client credentials: POST /oauth/token with a form body grant_type=client_credentials[&scope=...]
and HTTP Basic client authentication base64(client_id:client_secret). Accepted clients are declared with
oauth_client(); a refused secret gets 401 {"error": "invalid_client"}. Every token issued is random and
recorded; require_oauth() makes the API paths accept only "Authorization: Bearer <a valid token>", and
invalidate_tokens() makes every token issued so far stale (the next call with one gets 401).

The token endpoint is never subject to the API auth check. Every request, the token endpoint's
included, is in the request log.
"""
import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN_PATH = "/oauth/token"
NOT_FOUND = (404, {}, {"error": "not_found"})


@dataclass
class Request:
    """One request as the vendor saw it. headers: lower-case names -> value."""
    method: str
    path: str                  # without the query string
    query: str
    headers: dict
    body: bytes
    at: float                  # time.monotonic() at arrival
    status: int = 0            # what the vendor answered
    auth_ok: bool = True       # False: refused by the auth check (401)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def form(self):
        """A form-encoded body as {name: value} (the last value of a repeated name)."""
        return {k: v[-1] for k, v in parse_qs(self.text, keep_blank_values=True).items()}

    @property
    def bearer(self):
        return bearer_token(self.headers.get("authorization"))


def bearer_token(header):
    """The token of an "Authorization: Bearer ..." header value, else None."""
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def basic_credentials(header):
    """(user, password) of an "Authorization: Basic ..." header value, else None."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def encode_body(body):
    if body is None:
        return b""
    if isinstance(body, (dict, list)):
        return json.dumps(body).encode()
    return body.encode() if isinstance(body, str) else bytes(body)


class Vendor:
    """The fake vendor. Thread-safe: tests change scripts and auth while the daemon is calling."""

    def __init__(self, token_expires_in=3600):
        self.lock = threading.Lock()
        self.token_expires_in = token_expires_in
        self._scripts = {}          # (METHOD, path) -> [response, ...]
        self._log = []
        self._auth = None           # None: API paths accept anyone; else a predicate over the headers
        self._clients = {}          # client_id -> set of accepted secrets
        self._issued = []           # every access token issued, in order: {"token", "client_id", "scope", "at"}
        self._valid_tokens = set()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive: every answer has a content-length

            def log_message(self, fmt, *args):
                pass

            def handle_any(self):
                vendor._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token_url = self.base_url + TOKEN_PATH
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def url(self, path=""):
        return self.base_url + path

    # --- scripts and the request log -------------------------------------------------------------

    def script(self, method, path, *responses):
        """Answers for (method, path) from now on: (status, headers, body) tuples, the last repeating."""
        assert responses, "a script needs at least one response"
        with self.lock:
            self._scripts[(method.upper(), path)] = [tuple(r) for r in responses]

    def requests(self, method=None, path=None):
        """The requests received so far (optionally only this method and/or path), in arrival order."""
        with self.lock:
            return [r for r in self._log
                    if (method is None or r.method == method.upper()) and (path is None or r.path == path)]

    # --- API authentication ----------------------------------------------------------------------

    def require_nothing(self):
        with self.lock:
            self._auth = None

    def require_api_key(self, header, *keys):
        """API paths need `header: <one of keys>`."""
        name, accepted = header.lower(), set(keys)
        self._set_auth(lambda h: h.get(name) in accepted)

    def require_bearer(self, *tokens):
        """API paths need "Authorization: Bearer <one of tokens>"."""
        accepted = set(tokens)
        self._set_auth(lambda h: bearer_token(h.get("authorization")) in accepted)

    def require_basic(self, *pairs):
        """API paths need "Authorization: Basic base64(user:password)" for one of the (user, password) pairs."""
        accepted = {tuple(p) for p in pairs}
        self._set_auth(lambda h: basic_credentials(h.get("authorization")) in accepted)

    def require_oauth(self):
        """API paths need "Authorization: Bearer <a token issued here and not invalidated>"."""
        def check(h):
            token = bearer_token(h.get("authorization"))
            with self.lock:
                return token in self._valid_tokens
        self._set_auth(check)

    def _set_auth(self, predicate):
        with self.lock:
            self._auth = predicate

    # --- OAuth2 client credentials ---------------------------------------------------------------

    def oauth_client(self, client_id, *client_secrets):
        """The token endpoint accepts client_id with any of these secrets (replacing earlier ones)."""
        with self.lock:
            self._clients[client_id] = set(client_secrets)

    def reject_client_secret(self, client_secret):
        """The token endpoint refuses this secret from now on, for every client."""
        with self.lock:
            for accepted in self._clients.values():
                accepted.discard(client_secret)

    def invalidate_tokens(self):
        """Every token issued so far becomes stale: the API answers 401 to it."""
        with self.lock:
            self._valid_tokens.clear()

    @property
    def issued_tokens(self):
        """The access tokens issued so far, in order."""
        with self.lock:
            return [t["token"] for t in self._issued]

    def token_requests(self):
        return self.requests("POST", TOKEN_PATH)

    def _token_answer(self, request):
        """(status, headers, body) of the token endpoint for this request."""
        creds = basic_credentials(request.headers.get("authorization"))
        with self.lock:
            client_ok = creds is not None and creds[1] in self._clients.get(creds[0], ())
        if not client_ok:
            return 401, {"WWW-Authenticate": 'Basic realm="oauth"'}, {"error": "invalid_client"}
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return 400, {}, {"error": "invalid_request", "error_description": "form body expected"}
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return 400, {}, {"error": "unsupported_grant_type"}
        token = "vat_" + secrets.token_urlsafe(24)
        with self.lock:
            self._issued.append({"token": token, "client_id": creds[0], "scope": form.get("scope"),
                                 "at": request.at})
            self._valid_tokens.add(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_expires_in}
        if "scope" in form:
            body["scope"] = form["scope"]
        return 200, {"Cache-Control": "no-store"}, body

    # --- serving ---------------------------------------------------------------------------------

    def _api_answer(self, request):
        with self.lock:
            auth = self._auth
        if auth is not None and not auth(request.headers):
            request.auth_ok = False
            return 401, {"WWW-Authenticate": 'Bearer realm="api"'}, {"error": "unauthorized"}
        with self.lock:
            script = self._scripts.get((request.method, request.path))
            if not script:
                return NOT_FOUND
            return script.pop(0) if len(script) > 1 else script[0]

    def _serve(self, handler):
        split = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = Request(handler.command, split.path, split.query, headers, read_body(handler),
                          time.monotonic())
        if request.method == "POST" and request.path == TOKEN_PATH:
            status, extra, body = self._token_answer(request)
        else:
            status, extra, body = self._api_answer(request)
        request.status = status
        with self.lock:
            self._log.append(request)
        reply = encode_body(body)
        try:
            handler.send_response(status)
            lower = {k.lower() for k in extra}
            for k, v in extra.items():
                handler.send_header(k, v)
            if reply and "content-type" not in lower:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(reply)))
            handler.end_headers()
            if request.method != "HEAD":
                handler.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass


def read_body(handler):
    """The request body: content-length or chunked transfer encoding."""
    if "chunked" in handler.headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""
