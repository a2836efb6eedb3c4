"""Drives the running roles for the observability test (scripts/test-observe.sh), then
checks what an on-call engineer would look at:

1. a short purchase load (shoppers, one of them with a socket open), browsing, and
   10,000 requests with invented HTTP methods;
2. the `method` label stays bounded (the invented methods share OTHER);
3. every query of every dashboard panel returns data through Prometheus's API;
4. one purchase's request id appears in the api's, the payment role's and the ws
   role's log.

    drive.py --api URL --ws URL --prometheus URL --dashboard FILE \
             --logs api=FILE payment=FILE ws=FILE --admin EMAIL:PASSWORD

Only the Python standard library: the WebSocket client is the few lines RFC 6455 needs
for a client that reads text frames.
"""

import argparse
import base64
import http.client
import json
import os
import random
import socket
import string
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone


def say(message):
    print(f"[observe-test] {message}", flush=True)


def call(base, method, path, token=None, body=None, headers=None, ok=(200, 201, 202)):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status, text = answer.status, answer.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    payload = json.loads(text) if text else None
    if status not in ok:
        raise SystemExit(f"{method} {path}: {status} {payload}")
    return status, payload


def login(api, email, password):
    return call(api, "POST", "/api/auth/login", body={"email": email, "password": password})[1]["access_token"]


class Socket:
    """A WebSocket client that collects the text messages the server sends."""

    def __init__(self, url, token):
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: bearer, {token}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1024)
            if not chunk:
                raise SystemExit("ws: connection closed during the handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise SystemExit(f"ws: handshake refused: {status!r}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]
        self.messages = []
        self.sock.settimeout(None)
        threading.Thread(target=self.read, daemon=True).start()

    def exact(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def read(self):
        try:
            while True:
                first, second = self.exact(2)
                length = second & 0x7F
                if length == 126:
                    length = int.from_bytes(self.exact(2), "big")
                elif length == 127:
                    length = int.from_bytes(self.exact(8), "big")
                payload = self.exact(length)
                opcode = first & 0x0F
                if opcode == 0x1:
                    self.messages.append(json.loads(payload))
                elif opcode == 0x9:
                    self.send(0xA, payload)
                elif opcode == 0x8:
                    return
        except (EOFError, OSError):
            return

    def send(self, opcode, payload):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


def invented_methods(api, count):
    """COUNT requests with random method names: the metrics must not grow a series each."""
    parts = urllib.parse.urlsplit(api)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    rng = random.Random(7)
    for _ in range(count):
        method = "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 12)))
        connection.request(method, "/api/coupons")
        connection.getresponse().read()
    connection.close()


def method_labels(base):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    methods, series = set(), 0
    for line in text.splitlines():
        if line.startswith("flash_sale_http_requests_total{"):
            series += 1
            methods.add(line.split('method="', 1)[1].split('"', 1)[0])
    return methods, series


def query(prometheus, expr):
    url = prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise SystemExit(f"query failed: {expr}: {body}")
    return body["data"]["result"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--ws", required=True)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--dashboard", required=True)
    parser.add_argument("--logs", nargs=3, required=True)
    parser.add_argument("--admin", required=True)
    args = parser.parse_args()
    api, logs = args.api, dict(item.split("=", 1) for item in args.logs)
    run = "".join(random.choice(string.ascii_lowercase) for _ in range(8))

    admin = login(api, *args.admin.split(":", 1))
    start = datetime.now(timezone.utc) + timedelta(seconds=2)
    coupon = call(api, "POST", "/api/admin/coupons", admin, {
        "name": f"Observability {run}", "description": "the observability test's sale",
        "price_cents": 500, "total_quantity": 100000, "per_user_limit": 5,
        "sale_starts_at": start.isoformat(), "sale_ends_at": (start + timedelta(hours=1)).isoformat(),
    })[1]["id"]
    shoppers = []
    for n in range(20):
        email, password = f"obs-{run}-{n}@example.com", "observability test"
        call(api, "POST", "/api/auth/register", body={"email": email, "password": password})
        shoppers.append(login(api, email, password))
    watcher = Socket(args.ws + "/ws", shoppers[0])
    time.sleep(max(0.0, (start - datetime.now(timezone.utc)).total_seconds()) + 0.5)

    trace = f"obs-{run}-traced"
    say(f"load: 20 shoppers, one socket, coupon {coupon}; traced request id {trace}")
    deadline = time.monotonic() + 15
    n = 0
    while time.monotonic() < deadline:
        for i, token in enumerate(shoppers):
            request_id = trace if (n, i) == (0, 0) else f"obs-{run}-{n}-{i}"
            call(api, "POST", f"/api/coupons/{coupon}/purchase", token,
                 headers={"X-Request-Id": request_id}, ok=(202, 409))
            call(api, "GET", f"/api/coupons/{coupon}")
            call(api, "GET", "/api/coupons?page=1&size=10")
        n += 1
        time.sleep(0.5)
    for _ in range(100):
        if watcher.messages:
            break
        time.sleep(0.1)
    if not watcher.messages:
        raise SystemExit("the watching shopper's socket received no payment result")
    say(f"socket received {len(watcher.messages)} results, first {watcher.messages[0]}")

    before, _ = method_labels(api)
    invented_methods(api, 10000)
    methods, series = method_labels(api)
    say(f"10,000 invented methods: method labels {sorted(methods)}, {series} request series")
    if not methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"} or "OTHER" not in methods:
        raise SystemExit(f"unbounded method label values: {sorted(methods - before)}")
    if series > 100:
        raise SystemExit(f"{series} request series after 10,000 invented methods")

    # Two audit rounds and a few scrapes after the load.
    time.sleep(6)
    dashboard = json.load(open(args.dashboard, encoding="utf-8"))
    empty = []
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    for panel in panels:
        for target in panel["targets"]:
            result = query(args.prometheus, target["expr"])
            say(f"panel {panel['title']!r} [{target['refId']}]: {len(result)} series")
            if not result:
                empty.append(f"{panel['title']} [{target['refId']}]: {target['expr']}")
    if empty:
        raise SystemExit("panels without data:\n  " + "\n  ".join(empty))

    firing = query(args.prometheus, 'ALERTS{alertstate="firing"}')
    if firing:
        raise SystemExit(f"alerts fire on a healthy run: {[a['metric'] for a in firing]}")
    say("no alert fires on the healthy run")

    missing = []
    for role, marker in (("api", "purchase accepted"), ("payment", "order settled"), ("ws", "payment result pushed")):
        lines = [l for l in open(logs[role], encoding="utf-8", errors="replace") if trace in l and marker in l]
        say(f"{role} log: {len(lines)} line(s) with {trace} ({marker!r})")
        if not lines:
            missing.append(role)
    if missing:
        raise SystemExit(f"request id {trace} not in the {', '.join(missing)} log(s)")
    say(f"passed: {len(panels)} panels with data, request id followed through api, payment and ws")


if __name__ == "__main__":
    main()
