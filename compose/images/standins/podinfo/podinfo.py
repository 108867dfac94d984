#!/usr/bin/python3
"""podinfo's HTTP API, as a stand-in: what its manifests and a client can tell apart.

Upstream's flags (unknown ones are accepted and ignored, as a stand-in must not refuse a
manifest's command line) and PODINFO_* variables; JSON answers shaped as upstream's. The
echo endpoints are what makes podinfo a multi-tier test: with --backend-url (repeatable),
/echo and /api/echo POST the body to every backend and answer the list of their replies;
without, they answer the body itself (202).
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from redis import Redis

VERSION = "6.14.1"


def options() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="podinfo")
    parser.add_argument("--port", type=int, default=int(env("PODINFO_PORT", "9898")))
    parser.add_argument("--port-metrics", type=int, default=0)
    parser.add_argument("--backend-url", action="append", default=[])
    parser.add_argument("--cache-server", default=env("PODINFO_CACHE_SERVER", ""))
    parser.add_argument("--ui-color", default=env("PODINFO_UI_COLOR", "#34577c"))
    parser.add_argument("--ui-message", default=env("PODINFO_UI_MESSAGE", "greetings from podinfo"))
    parser.add_argument("--level", default="info")
    args, ignored = parser.parse_known_args()
    if ignored:
        print(f"podinfo stand-in: ignoring {' '.join(ignored)}", file=sys.stderr, flush=True)
    return args


ARGS = options()
HOSTNAME = socket.gethostname()


def cache() -> Redis | None:
    """The Redis of --cache-server (tcp://host:port), or None."""
    if not ARGS.cache_server:
        return None
    host, _, port = ARGS.cache_server.removeprefix("tcp://").rpartition(":")
    return Redis(host=host, port=int(port), socket_timeout=5)


def forward(body: bytes) -> list[str]:
    """POST `body` to every backend, answers in order (a failure is a sentence, as upstream)."""
    results = [""] * len(ARGS.backend_url)

    def one(i: int, url: str) -> None:
        req = urllib.request.Request(url, data=body, method="POST")
        req.add_header("X-API-Version", VERSION)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                results[i] = response.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            results[i] = f"backend {url} response status code {e.code}"
        except (urllib.error.URLError, OSError) as e:
            results[i] = f"backend {url} call failed {e}"

    threads = [threading.Thread(target=one, args=(i, u)) for i, u in enumerate(ARGS.backend_url)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Color", ARGS.ui_color)
        self.end_headers()
        self.wfile.write(body)

    def json(self, data: object, status: int = 200) -> None:
        self.send(status, json.dumps(data, indent=2).encode())

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def info(self) -> dict[str, str]:
        return {
            "hostname": HOSTNAME,
            "version": VERSION,
            "revision": "pinnace-stand-in",
            "color": ARGS.ui_color,
            "logo": "",
            "message": ARGS.ui_message,
            "goos": "linux",
            "goarch": os.uname().machine,
            "runtime": f"python{sys.version.split()[0]} (pinnace's stand-in)",
            "num_goroutine": str(threading.active_count()),
            "num_cpu": str(os.cpu_count() or 1),
        }

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/api/info"):
            self.json(self.info())
        elif path == "/version":
            self.json({"version": VERSION, "commit": "pinnace-stand-in"})
        elif path in ("/healthz", "/readyz"):
            self.json({"status": "OK"})
        elif path == "/env":
            self.json([f"{k}={v}" for k, v in os.environ.items()])
        elif path == "/headers":
            self.json({k: self.headers.get_all(k) for k in self.headers})
        elif path == "/metrics":
            self.send(200, b"# podinfo stand-in\nup 1\n", "text/plain; version=0.0.4")
        elif m := re.fullmatch(r"/status/(\d+)", path):
            self.json({"status": m.group(1)}, int(m.group(1)))
        elif m := re.fullmatch(r"/cache/(.+)", path):
            self.cache_get(m.group(1))
        else:
            self.json({"code": 404, "message": "not found"}, 404)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        data = self.body()
        if path in ("/echo", "/api/echo"):
            if ARGS.backend_url:
                self.json(forward(data))
            else:
                self.send(202, data, self.headers.get("Content-Type") or "text/plain")
        elif m := re.fullmatch(r"/cache/(.+)", path):
            self.cache_put(m.group(1), data)
        else:
            self.json({"code": 404, "message": "not found"}, 404)

    do_PUT = do_POST

    def do_DELETE(self) -> None:
        m = re.fullmatch(r"/cache/(.+)", self.path.split("?", 1)[0])
        client = cache()
        if not m or client is None:
            self.json({"code": 400, "message": "cache server is offline"}, 400)
            return
        client.delete(m.group(1))
        self.send(202, b"")

    def cache_get(self, key: str) -> None:
        client = cache()
        if client is None:
            self.json({"code": 400, "message": "cache server is offline"}, 400)
            return
        value = client.get(key)
        if value is None:
            self.json({"code": 404, "message": "key not found"}, 404)
        else:
            self.send(200, value, "text/plain")

    def cache_put(self, key: str, data: bytes) -> None:
        client = cache()
        if client is None:
            self.json({"code": 400, "message": "cache server is offline"}, 400)
            return
        client.set(key, data)
        self.send(202, b"")

    def log_message(self, format: str, *args: object) -> None:
        if ARGS.level == "debug":
            super().log_message(format, *args)


def serve(port: int) -> None:
    ThreadingHTTPServer(("0.0.0.0", port), Api).serve_forever()


if __name__ == "__main__":
    print(f"podinfo stand-in {VERSION}: listening on {ARGS.port}", file=sys.stderr, flush=True)
    if ARGS.port_metrics:
        threading.Thread(target=serve, args=(ARGS.port_metrics,), daemon=True).start()
    serve(ARGS.port)
