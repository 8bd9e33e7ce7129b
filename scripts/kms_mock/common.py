"""What the local Google Cloud KMS and Azure Key Vault servers share: an HTTP/1.1 server on
loopback, bearer tokens with lifetimes, a request log, and test hooks under /_test/ that
inject the failures a real service shows now and then (429/503 answers, a redirect, revoked
tokens), each scoped by a substring of the request path so that tests running in parallel
do not disturb one another.

Test hooks (JSON bodies):
  POST /_test/fault     {"match": s, "statuses": [503, 429, ...], "retry_after": "0"}
        the next requests whose path contains s get these statuses, one each, in order
  POST /_test/redirect  {"match": s, "location": url}   every request matching s gets a 307
  POST /_test/lifetime  {"match": s, "seconds": n}      tokens issued at paths matching s
  POST /_test/revoke    {"match": s}                    revokes tokens issued at those paths
  GET  /_test/log?match=s   {"requests": [{"method", "path", "status"}]}
  GET  /_test/landing       counts hits (the target of redirects; must stay at zero)
"""

import base64
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64url_decode(text):
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_CRC32C_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data):
    """CRC-32C (Castagnoli), table-driven: the checksum Cloud KMS puts on its fields."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class State:
    """Tokens, the request log and the injected failures, behind one lock."""

    def __init__(self, default_lifetime=3600):
        self.lock = threading.RLock()
        self.tokens = {}  # token -> {"expires": t, "issuer": path, "audience": s}
        self.log = []
        self.faults = []  # [{"match", "statuses", "retry_after"}]
        self.redirects = []  # [{"match", "location"}]
        self.lifetimes = []  # [{"match", "seconds"}]
        self.default_lifetime = default_lifetime
        self.landing_hits = 0

    def lifetime_for(self, path):
        with self.lock:
            for rule in reversed(self.lifetimes):
                if rule["match"] in path:
                    return rule["seconds"]
        return self.default_lifetime

    def issue(self, path, audience, prefix):
        lifetime = self.lifetime_for(path)
        token = prefix + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = {
                "expires": time.time() + lifetime,
                "issuer": path,
                "audience": audience,
            }
        return token, lifetime

    def add_static(self, token, audience):
        with self.lock:
            self.tokens[token] = {"expires": float("inf"), "issuer": "static", "audience": audience}

    def check(self, header):
        """(ok, reason, audience) for an Authorization header."""
        if not header or not header.startswith("Bearer "):
            return False, "missing", None
        with self.lock:
            entry = self.tokens.get(header[len("Bearer "):].strip())
        if entry is None:
            return False, "unknown", None
        if time.time() >= entry["expires"]:
            return False, "expired", entry["audience"]
        return True, "", entry["audience"]

    def next_fault(self, path):
        with self.lock:
            for rule in self.faults:
                if rule["match"] in path and rule["statuses"]:
                    return rule["statuses"].pop(0), rule.get("retry_after")
        return None, None

    def redirect_for(self, path):
        with self.lock:
            for rule in self.redirects:
                if rule["match"] in path:
                    return rule["location"]
        return None


class Handler(BaseHTTPRequestHandler):
    """Routes /_test/ hooks here; everything else to the subclass's `route`."""

    protocol_version = "HTTP/1.1"
    state = None  # set by serve()

    def log_message(self, fmt, *args):  # keep stderr quiet; the log is queryable
        pass

    # -- helpers -------------------------------------------------------------------------
    def body_bytes(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def json_body(self):
        raw = self.body_bytes()
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def form_body(self):
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.body_bytes().decode()).items()}

    def send(self, status, payload=None, headers=None):
        body = b"" if payload is None else json.dumps(payload).encode()
        # Logged before the answer leaves, so that a client that has its answer finds it in
        # the log.
        self.record(status)
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def record(self, status):
        if self.path.startswith("/_test/"):
            return
        with self.state.lock:
            self.state.log.append({
                "method": self.command,
                "path": self.path,
                "status": status,
            })

    # -- dispatch ------------------------------------------------------------------------
    def handle_any(self):
        if self.path.startswith("/_test/"):
            return self.test_hook()
        location = self.state.redirect_for(self.path)
        if location:
            self.body_bytes()
            return self.send(307, {"moved": True}, {"Location": location})
        status, retry_after = self.state.next_fault(self.path)
        if status:
            self.body_bytes()
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return self.send(status, self.fault_body(status), headers)
        try:
            self.route()
        except Exception as error:  # a bug in the mock: say so, do not hang the client
            print(f"mock server error: {error!r}", file=sys.stderr)
            self.send(500, {"error": {"code": 500, "message": "mock server bug", "status": "INTERNAL"}})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any

    def test_hook(self):
        parsed = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        if parsed.path == "/_test/landing":
            self.body_bytes()
            with self.state.lock:
                self.state.landing_hits += 1
            return self.send(200, {"landed": True})
        if parsed.path == "/_test/log":
            match = query.get("match", "")
            with self.state.lock:
                entries = [e for e in self.state.log if match in e["path"]]
                hits = self.state.landing_hits
            return self.send(200, {"requests": entries, "landing_hits": hits})
        body = self.json_body() or {}
        with self.state.lock:
            if parsed.path == "/_test/fault":
                self.state.faults.append({
                    "match": body["match"],
                    "statuses": list(body["statuses"]),
                    "retry_after": body.get("retry_after"),
                })
            elif parsed.path == "/_test/redirect":
                self.state.redirects.append({"match": body["match"], "location": body["location"]})
            elif parsed.path == "/_test/lifetime":
                self.state.lifetimes.append({"match": body["match"], "seconds": body["seconds"]})
            elif parsed.path == "/_test/revoke":
                for entry in self.state.tokens.values():
                    if body["match"] in entry["issuer"]:
                        entry["expires"] = 0
            else:
                return self.send(404, {"error": "no such hook"})
        return self.send(200, {"ok": True})

    # -- for subclasses ------------------------------------------------------------------
    def fault_body(self, status):
        return {"error": {"code": status, "message": "injected", "status": "UNAVAILABLE"}}

    def route(self):
        raise NotImplementedError


def serve(handler_class, port, state):
    handler_class.state = state
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_class)
    server.daemon_threads = True
    server.serve_forever()
