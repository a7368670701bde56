"""A stand-in for a Nomad server's event stream (`GET /v1/event/stream`), as Nomad's API docs
describe it: a chunked response of newline-delimited frames `{"Index": N, "Events": [...]}`, a
heartbeat `{}` at connect and then periodically, `index=N` starting at the first frame whose
index is at least N, `topic=Topic:key` and `namespace` filters, and an ACL token in
`X-Nomad-Token` (403 "Permission denied" without the right one).

It is not Nomad: frames are whatever the test publishes. Faults: `drop_after_frames` closes the
connection abruptly after that many frames (optionally in the middle of the next frame), and
`restart()` stops the server and starts a new one on the same port, keeping the frames, as a
Nomad server restart looks to a client.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class NomadStandIn:
    token: str = ""
    heartbeat_interval: float = 0.1
    frames: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    drop_after_frames: int | None = None
    drop_mid_frame: bool = False
    raw_lines: list[bytes] = field(default_factory=list)  # sent once, before frames
    port: int = 0
    tls: ssl.SSLContext | None = None  # https (with client certificates if it requires them)
    _server: ThreadingHTTPServer | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _generation: int = 0  # bumped by stop(): streams of an older server end

    @property
    def address(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def publish(self, *frames: dict[str, Any]) -> None:
        with self._cond:
            self.frames.extend(frames)
            self._cond.notify_all()

    def start(self) -> NomadStandIn:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                outer.requests.append(
                    {"path": url.path, "query": query, "token": self.headers.get("X-Nomad-Token")}
                )
                if url.path != "/v1/event/stream":
                    self._plain(404, "404 page not found")
                    return
                if outer.token and self.headers.get("X-Nomad-Token") != outer.token:
                    self._plain(403, "Permission denied")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                outer._stream(self, query)

            def _plain(self, status: int, text: str) -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _stream(self, handler: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> None:
        start = int(query.get("index", ["0"])[0])
        topics = [t.split(":", 1) for t in query.get("topic", ["*:*"])]
        namespace = query.get("namespace", ["default"])[0]
        sent = 0
        position = 0
        generation = self._generation

        def chunk(data: bytes) -> None:
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        try:
            chunk(b"{}\n")
            for line in self.raw_lines:
                chunk(line)
            while True:
                with self._cond:
                    if position >= len(self.frames) and generation == self._generation:
                        self._cond.wait(self.heartbeat_interval)
                    if generation != self._generation:
                        return
                    pending = self.frames[position:]
                    position = len(self.frames)
                if not pending:
                    chunk(b"{}\n")
                for frame in pending:
                    if frame["Index"] < start:
                        continue
                    shown = _filtered(frame, topics, namespace)
                    if shown is None:
                        continue
                    line = json.dumps(shown).encode() + b"\n"
                    if self.drop_after_frames is not None and sent >= self.drop_after_frames:
                        self.drop_after_frames = None  # one fault per arming
                        if self.drop_mid_frame:
                            chunk(line[: len(line) // 2])
                        handler.close_connection = True
                        return
                    chunk(line)
                    sent += 1
        except (BrokenPipeError, ConnectionResetError):
            return


def _filtered(
    frame: dict[str, Any], topics: list[list[str]], namespace: str
) -> dict[str, Any] | None:
    def wanted(event: dict[str, Any]) -> bool:
        if namespace != "*" and event.get("Namespace", "") not in ("", namespace):
            return False
        for topic in topics:
            name, key = topic[0], topic[1] if len(topic) > 1 else "*"
            if name in ("*", event.get("Topic")) and key in ("*", event.get("Key")):
                return True
        return False

    events = [event for event in frame["Events"] if wanted(event)]
    return {"Index": frame["Index"], "Events": events} if events else None
