"""A stand-in for a broken HTTP collector on 127.0.0.1: it accepts connections and then either
never answers (`stall`) or trickles an answer one byte at a time (`trickle`), the two ways a
peer can hold a client that only has per-read timeouts. Used by tests and bench/."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

_TRICKLE = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 4096 + b"\r\nContent-Length: 0\r\n\r\n"


@dataclass
class StalledServer:
    mode: str = "stall"  # "stall" | "trickle"
    trickle_interval: float = 0.2
    accepted: int = 0
    _listener: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _connections: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self._listener is not None
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/alerts"

    def start(self) -> StalledServer:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        threading.Thread(target=self._accept, name="stalled-server", daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._connections.append(connection)
            if self.mode == "trickle":
                threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection: socket.socket) -> None:
        for byte in _TRICKLE:
            if self._stop.wait(self.trickle_interval):
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        for connection in self._connections:
            connection.close()
