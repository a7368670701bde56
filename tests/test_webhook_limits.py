"""Webhook listeners under hostile clients, over real sockets on 127.0.0.1: slowloris headers,
slow bodies, idle and silent TLS connections are dropped, connections and buffered bytes are
capped, and a legitimate sender is served all the while."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from engine.sources.json_event import JsonEvent
from engine.sources.webhooks import TlsFiles, WebhookLimits, WebhookServer, k8s_audit_webhook
from tests.support.certificates import TestCA as CertificateAuthority
from tests.support.waiting import wait_for

JSON = {"Content-Type": "application/json"}
EVENT = json.dumps({"kind": "Event", "auditID": "a", "verb": "get"}).encode()


class Received:
    def __init__(self) -> None:
        self.events: list[JsonEvent] = []

    def __call__(self, events: list[JsonEvent]) -> None:
        self.events.extend(events)


def serve(limits: WebhookLimits, **options: object) -> WebhookServer:
    return k8s_audit_webhook("127.0.0.1:0", Received(), limits=limits, **options).start()


def connect(server: WebhookServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (EOF or reset), waiting up to the socket's
    timeout for it."""
    try:
        while data := sock.recv(4096):
            if b"503" in data:
                continue
        return True
    except ConnectionResetError:
        return True


def legitimate_post(server: WebhookServer, **options: object) -> requests.Response:
    return requests.post(server.url, data=EVENT, headers=JSON, timeout=10, **options)


class Trickler:
    """A client sending `data` one byte at a time, each after `interval` seconds."""

    def __init__(self, sock: socket.socket, data: bytes, interval: float) -> None:
        self.sock, self.data, self.interval = sock, data, interval
        self.stopped = threading.Event()
        self.cut_off = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        for byte in self.data:
            if self.stopped.wait(self.interval):
                return
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                self.cut_off.set()
                return


@pytest.fixture
def tight() -> Iterator[WebhookServer]:
    server = serve(WebhookLimits(idle_timeout=0.5, request_timeout=1.5, min_body_rate=1000))
    yield server
    server.stop()


def test_slowloris_headers_are_dropped_while_others_are_served(tight: WebhookServer) -> None:
    sock = connect(tight)
    # One byte every 0.2 s: never idle for 0.5 s, but far past the 1.5 s request deadline.
    headers = b"POST /k8s-audit HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n"
    trickler = Trickler(sock, headers, 0.2)
    assert legitimate_post(tight).status_code == 200  # served while the slowloris trickles
    assert closed_by_server(sock)
    trickler.stopped.set()
    wait_for(lambda: tight.stats.dropped.get("slow", 0) == 1)
    assert tight.stats.requests == 1  # only the legitimate one got to a request
    sock.close()


def test_a_slow_body_is_dropped(tight: WebhookServer) -> None:
    sock = connect(tight)
    body = b"[" + b" " * 3000 + b"]"  # at the 1000 bytes/s floor: 1.5 s + 3 s allowed
    sock.sendall(
        b"POST /k8s-audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    trickler = Trickler(sock, body, 0.1)  # 10 bytes/s
    assert legitimate_post(tight).status_code == 200
    assert closed_by_server(sock)
    trickler.stopped.set()
    assert tight.stats.dropped.get("slow") == 1
    sock.close()


def test_an_idle_connection_is_closed(tight: WebhookServer) -> None:
    sock = connect(tight)
    assert closed_by_server(sock)
    wait_for(lambda: tight.stats.dropped.get("idle") == 1)
    wait_for(lambda: tight.stats.active_connections == 0)
    sock.close()


def test_headers_over_their_cap_are_dropped() -> None:
    server = serve(WebhookLimits(max_header_bytes=4096))
    try:
        sock = connect(server)
        sock.sendall(b"POST /k8s-audit HTTP/1.1\r\n")
        try:
            for _ in range(20):
                sock.sendall(b"X-Big: " + b"b" * 1000 + b"\r\n")
        except OSError:
            pass  # the server closed while we were still sending: what it should do
        assert closed_by_server(sock)
        assert server.stats.dropped.get("headers") == 1
        sock.close()
    finally:
        server.stop()


def test_connections_beyond_the_cap_get_503_and_close() -> None:
    server = serve(WebhookLimits(max_connections=3, idle_timeout=30))
    held = [connect(server) for _ in range(3)]
    try:
        wait_for(lambda: server.stats.active_connections == 3)
        extra = connect(server)
        answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503") and b"too many open connections" in answer
        assert closed_by_server(extra)
        assert server.stats.dropped.get("busy") == 1
        held.pop().close()
        wait_for(lambda: server.stats.active_connections == 2)
        assert legitimate_post(server).status_code == 200
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_buffered_body_bytes_are_capped_across_connections() -> None:
    limits = WebhookLimits(max_buffered_bytes=1000, idle_timeout=30, request_timeout=30)
    server = k8s_audit_webhook("127.0.0.1:0", Received(), max_body=800, limits=limits).start()
    try:
        hog = connect(server)  # reserves 800 bytes, then sends nothing of its body
        hog.sendall(
            b"POST /k8s-audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 800\r\n\r\n["
        )
        big = json.dumps([json.loads(EVENT)] * 8).encode()
        assert 200 < len(big) <= 800

        def refused() -> bool:
            answer = requests.post(server.url, data=big, headers=JSON, timeout=10)
            return answer.status_code == 503 and "retry later" in answer.text

        wait_for(refused)  # the hog's reservation is in place once its headers are read
        assert server.stats.dropped.get("buffer", 0) >= 1
        assert legitimate_post(server).status_code == 200  # a small body still fits
        hog.close()
        wait_for(lambda: server.stats.active_connections == 0)
        answer = requests.post(server.url, data=big, headers=JSON, timeout=10)
        assert answer.status_code == 200  # the reservation was released
    finally:
        server.stop()


def test_a_silent_tls_client_does_not_stop_the_listener(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    server = serve(
        WebhookLimits(idle_timeout=1.0, request_timeout=2.0),
        tls=TlsFiles(ca.server_cert, ca.server_key),
    )
    silent = connect(server)  # never sends its ClientHello
    try:
        assert legitimate_post(server, verify=str(ca.ca_cert)).status_code == 200
        assert closed_by_server(silent)
        wait_for(lambda: server.stats.dropped.get("slow") == 1)
    finally:
        silent.close()
        server.stop()


def test_limits_are_raised_through_the_layered_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feeds.config import load_config
    from feeds.errors import ConfigError
    from feeds.run_settings import http_output_options, output_queue_capacity, webhook_limits

    config_file = tmp_path / "falconet.yaml"
    config_file.write_text("webhook:\n  max_connections: 512\noutputs:\n  queue_capacity: 50000\n")
    monkeypatch.setenv("FALCONET_OUTPUTS_HTTP_TIMEOUT", "2.5")
    config = load_config(str(config_file))
    limits = webhook_limits(config)
    assert limits.max_connections == 512 and limits.idle_timeout == WebhookLimits().idle_timeout
    assert output_queue_capacity(config) == 50000
    assert http_output_options(config)["timeout"] == 2.5
    config_file.write_text("webhook:\n  idle_timeout: 0\n")
    with pytest.raises(ConfigError, match=r"webhook\.idle_timeout: 0 must be positive"):
        webhook_limits(load_config(str(config_file)))


def test_drops_raise_a_rate_limited_internal_alert_and_reach_the_summary(
    tight: WebhookServer,
) -> None:
    from engine.ruleset import RulesetSwitch
    from engine.runner import AlertFormatter, Detector, RunStats, WebhookDropReporter
    from engine.sinks import OutputQueue
    from tests.support.sinks import CollectingSink

    sink = CollectingSink()
    outputs = OutputQueue([sink])
    detector = Detector(RulesetSwitch.__new__(RulesetSwitch), outputs, AlertFormatter(hostname="h"))
    reporter = WebhookDropReporter(detector, interval=10.0)
    sock = connect(tight)
    Trickler(sock, b"POST /k8s-audit HTTP/1.1\r\n" + b"X: " + b"a" * 100, 0.2)
    assert closed_by_server(sock)
    sock.close()
    stats = tight.stats.as_json()
    assert stats["dropped"] == {"slow": 1}
    assert reporter.check(stats, now=100.0)
    assert not reporter.check(stats, now=101.0)  # nothing new
    stats["dropped"]["busy"] = 5
    assert not reporter.check(stats, now=105.0)  # new drops, but within the interval
    assert reporter.check(stats, now=111.0)
    outputs.close()
    alerts = [a.document for a in sink.alerts]
    assert [a["output_fields"]["n_drops"] for a in alerts] == [1, 5]
    assert alerts[1]["source"] == "internal" and alerts[1]["output_fields"]["n_drops_total"] == 6
    run_stats = RunStats(webhook=stats)
    assert "clients dropped: busy 5, slow 1" in run_stats.summary_text()
    assert run_stats.as_json()["webhook"]["dropped"] == {"busy": 5, "slow": 1}
