#!/usr/bin/env python3
"""An independent webhook receiver for the integration tests.

It verifies every request's Standard Webhooks signature with the reference Python library
(`standardwebhooks`, from PyPI), not with the sender's code, records every request and can
misbehave on command. Two listeners on 127.0.0.1:

- the hook port receives deliveries (any path, POST). A request whose signature does not
  verify with any configured secret is answered 401; otherwise the answer follows the
  mode: a fixed status (e.g. 410), 500 for a share of requests (seeded, reproducible), an
  optional delay and Retry-After header; else 200.
- the control port: GET /requests (everything recorded, JSON), POST /mode (JSON:
  failRate, status, retryAfter, delayMs, seed; missing keys keep their value, null
  clears), POST /down (close the hook port: connections are refused), POST /up (listen
  again on the same port), POST /secrets ({"secrets": [...]}, and optionally "byPath":
  {"/a": [...]} so requests to /a verify with those secrets only), POST /clear, GET /health.

On start it prints one JSON line to stdout, {"hook": port, "control": port}, and nothing
else there; with --log FILE every request is also appended to FILE as a JSON line.
"""

import argparse
import json
import random
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY = 1 << 20


class Server(ThreadingHTTPServer):
    # A deep accept queue: concurrent deliveries must not be refused by the backlog (the
    # default of 5 would look like a receiver that is down).
    request_queue_size = 256
    daemon_threads = True


class State:
    def __init__(self, secrets, seed, log_path):
        self.lock = threading.Lock()
        self.secrets = list(secrets)
        # Per delivery path: the secrets of the one subscription that posts there.
        self.secrets_by_path = {}
        self.mode = {"failRate": 0.0, "status": None, "retryAfter": None, "delayMs": 0}
        self.rng = random.Random(seed)
        self.requests = []
        self.log_path = log_path

    def verify(self, path, body, headers):
        """(verified, error): verified when a secret of this path (or, for a path without
        its own, any configured secret) verifies the request."""
        with self.lock:
            secrets = list(self.secrets_by_path.get(path.split("?")[0], self.secrets))
        if not secrets:
            return False, "the receiver has no secret"
        error = None
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                return True, None
            except WebhookVerificationError as e:
                error = str(e)
            except Exception as e:  # a malformed header or body: not verified
                error = f"{type(e).__name__}: {e}"
        return False, error

    def answer(self, verified):
        """(status, retry_after, delay_seconds) for the next request."""
        with self.lock:
            mode = dict(self.mode)
            roll = self.rng.random()
        delay = (mode.get("delayMs") or 0) / 1000.0
        if not verified:
            return 401, None, delay
        if mode.get("status"):
            status = int(mode["status"])
        elif roll < float(mode.get("failRate") or 0.0):
            status = 500
        else:
            status = 200
        retry_after = mode.get("retryAfter") if status >= 300 else None
        return status, retry_after, delay

    def record(self, entry):
        with self.lock:
            entry["n"] = len(self.requests)
            self.requests.append(entry)
            if self.log_path:
                with open(self.log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")


def make_hook_handler(state):
    class Hook(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so "down" refuses the very next delivery.
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            verified, error = state.verify(self.path, body, headers)
            status, retry_after, delay = state.answer(verified)
            text = body.decode("utf-8", errors="replace")
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            state.record({
                "receivedAt": datetime.now(timezone.utc).isoformat(),
                "path": self.path,
                "headers": headers,
                "body": text,
                "json": parsed,
                "verified": verified,
                "error": error,
                "status": status,
            })
            if delay:
                time.sleep(delay)
            reply = json.dumps({"status": status, "verified": verified, "error": error}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            if retry_after is not None:
                self.send_header("Retry-After", str(retry_after))
            self.end_headers()
            self.wfile.write(reply)

        def do_GET(self):
            self.send_error(405, "deliveries are POSTed")

    return Hook


class HookListener:
    """The hook server, which can be taken down and brought back on the same port."""

    def __init__(self, state, host, port):
        self.state, self.host = state, host
        self.lock = threading.Lock()
        self.server = None
        self.port = self._listen(port)

    def _listen(self, port):
        server = Server((self.host, port), make_hook_handler(self.state))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.server = server
        return server.server_address[1]

    def down(self):
        with self.lock:
            if self.server is not None:
                self.server.shutdown()
                self.server.server_close()
                self.server = None

    def up(self):
        with self.lock:
            if self.server is None:
                self._listen(self.port)


def make_control_handler(state, hook):
    class Control(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args):
            pass

        def reply(self, status, value):
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def read_json(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length > 0 else b"{}"
            return json.loads(raw or b"{}")

        def do_GET(self):
            if self.path == "/requests":
                with state.lock:
                    self.reply(200, list(state.requests))
            elif self.path == "/health":
                self.reply(200, {"up": hook.server is not None, "port": hook.port})
            else:
                self.reply(404, {"error": "unknown control path"})

        def do_POST(self):
            try:
                body = self.read_json()
            except ValueError as e:
                return self.reply(400, {"error": f"not JSON: {e}"})
            if self.path == "/mode":
                with state.lock:
                    for key in ("failRate", "status", "retryAfter", "delayMs"):
                        if key in body:
                            state.mode[key] = body[key]
                    if body.get("seed") is not None:
                        state.rng = random.Random(body["seed"])
                    mode = dict(state.mode)
                self.reply(200, mode)
            elif self.path == "/down":
                hook.down()
                self.reply(200, {"up": False})
            elif self.path == "/up":
                hook.up()
                self.reply(200, {"up": True})
            elif self.path == "/secrets":
                def strings(v):
                    return isinstance(v, list) and all(isinstance(x, str) for x in v)

                secrets = body.get("secrets", [])
                by_path = body.get("byPath", {})
                if not strings(secrets) or not isinstance(by_path, dict) \
                        or not all(strings(v) for v in by_path.values()):
                    return self.reply(400, {"error": "expected {\"secrets\": [\"whsec_...\"], \"byPath\": {\"/path\": [\"whsec_...\"]}}"})
                with state.lock:
                    state.secrets = secrets
                    state.secrets_by_path = by_path
                self.reply(200, {"secrets": len(secrets), "paths": len(by_path)})
            elif self.path == "/clear":
                with state.lock:
                    state.requests = []
                self.reply(200, {"cleared": True})
            else:
                self.reply(404, {"error": "unknown control path"})

    return Control


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", action="append", default=[], help="whsec_... (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--hook-port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log", default=None, help="append every request to this JSON-lines file")
    args = parser.parse_args()

    state = State(args.secret, args.seed, args.log)
    hook = HookListener(state, args.host, args.hook_port)
    control = Server((args.host, args.control_port), make_control_handler(state, hook))
    print(json.dumps({"hook": hook.port, "control": control.server_address[1]}), flush=True)
    try:
        control.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
