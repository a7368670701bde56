"""A small fault-injecting HTTP reverse proxy in front of a real registry.

Rules match requests by method and path substring and either answer with a status (500,
429 + Retry-After...), or forward the request and cut the response body half-way (a
connection reset mid-transfer), or run a callback first (e.g. stop the registry). Hostile
modes: `endless` answers 200 with a body that never ends; `trickle` forwards the real
response but sends its body one byte every `trickle` seconds. Each rule
fires a bounded number of times; everything else is forwarded unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "trailer"}


@dataclass
class Fault:
    method: str
    path_contains: str
    times: int = 1
    status: int | None = None  # answer with this status instead of forwarding
    headers: dict[str, str] = field(default_factory=dict)
    truncate: bool = False  # forward, then drop the connection half-way through the body
    # Forwarded responses: headers to drop (None) or to replace.
    rewrite_headers: dict[str, str | None] = field(default_factory=dict)
    before: Callable[[], None] | None = None
    endless: bool = False  # answer 200 with an endless body (no Content-Length)
    trickle: float | None = None  # forward, then send the body one byte per `trickle` s
    # Answer with a status line, then a header line that never ends, one byte per N seconds.
    trickle_headers: float | None = None
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.fired < self.times and method == self.method and self.path_contains in path


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def count(self, method: str, path_contains: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and path_contains in p)

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.fired += 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                if self.path.startswith("http://"):
                    # Used as a forward proxy (HTTP_PROXY): the request line holds the full URL.
                    self.path = "/" + self.path.split("/", 3)[3]
                body = self._body()
                fault = proxy._take_fault(self.command, self.path)
                if fault and fault.before:
                    fault.before()
                if fault and fault.trickle_headers is not None:
                    proxy.requests.append((self.command, self.path, 200))
                    self._send_endless_headers(fault.trickle_headers)
                    return
                if fault and fault.endless:
                    proxy.requests.append((self.command, self.path, 200))
                    self._send_endless()
                    return
                if fault and fault.status is not None:
                    proxy.requests.append((self.command, self.path, fault.status))
                    payload = b'{"errors":[{"code":"INJECTED","message":"fault proxy"}]}'
                    self.send_response(fault.status)
                    for name, value in fault.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS | {"host"}
                }
                try:
                    upstream = requests.request(
                        self.command,
                        proxy.upstream + self.path,
                        headers=headers,
                        data=body or None,
                        allow_redirects=False,
                        stream=True,
                        timeout=30,
                    )
                except requests.RequestException:
                    proxy.requests.append((self.command, self.path, 502))
                    self.send_response(502)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                proxy.requests.append((self.command, self.path, upstream.status_code))
                content = upstream.raw.read() if self.command != "HEAD" else b""
                self.send_response(upstream.status_code)
                rewrites = {
                    k.lower(): v for k, v in (fault.rewrite_headers if fault else {}).items()
                }
                for name, value in upstream.headers.items():
                    if name.lower() in HOP_HEADERS | {"content-length"}:
                        continue
                    if name.lower() in rewrites:
                        if rewrites[name.lower()] is None:
                            continue
                        value = str(rewrites[name.lower()])
                    if name.lower() == "location":
                        value = value.replace(proxy.upstream, f"http://{proxy.host}")
                    self.send_header(name, value)
                length = upstream.headers.get("Content-Length", str(len(content)))
                self.send_header(
                    "Content-Length", length if self.command == "HEAD" else str(len(content))
                )
                self.end_headers()
                if fault and fault.trickle is not None:
                    self._send_trickle(content, fault.trickle)
                    return
                if fault and fault.truncate:
                    self.wfile.write(content[: len(content) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(content)

            def _send_endless(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                block = b"\0" * 65536
                try:
                    while True:  # until the client gives up and closes
                        self.wfile.write(block)
                except OSError:
                    return

            def _send_endless_headers(self, every: float) -> None:
                self.close_connection = True
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
                    self.wfile.flush()
                    while True:
                        time.sleep(every)
                        self.wfile.write(b"a")
                        self.wfile.flush()
                except OSError:
                    return

            def _send_trickle(self, content: bytes, every: float) -> None:
                self.close_connection = True
                try:
                    for index in range(len(content)):
                        self.wfile.write(content[index : index + 1])
                        self.wfile.flush()
                        time.sleep(every)
                except OSError:
                    return

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        return Handler
