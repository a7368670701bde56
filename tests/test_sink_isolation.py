"""Sinks are isolated: a stalled HTTP collector (a real socket that accepts and never answers)
delays and drops only its own alerts; other sinks, replays and /metrics see the difference."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from engine.metrics import Metrics
from engine.output import Priority
from engine.sinks import (
    Alert,
    CircuitBreaker,
    FileSink,
    HttpSink,
    OutputQueue,
    Sink,
    SinkError,
    SinkUnavailable,
    StdoutSink,
    internal_alert,
)
from tests.support.stalled_server import StalledServer
from tests.support.waiting import wait_for


def make_alert(n: int) -> Alert:
    return internal_alert(f"Rule {n}", f"output {n}", Priority.WARNING, {"n": n}, "host")


@pytest.fixture
def stalled() -> StalledServer:
    server = StalledServer().start()
    yield server
    server.stop()


def test_a_stalled_http_sink_delays_and_drops_only_its_own_alerts(
    tmp_path: Path, stalled: StalledServer
) -> None:
    stream = io.StringIO()
    path = tmp_path / "alerts.log"
    http = HttpSink(stalled.url, timeout=0.5, retries=0, breaker_failures=2, breaker_cooldown=600)
    outputs = OutputQueue(
        [StdoutSink(stream=stream), FileSink(str(path)), http],
        capacity=100,
        overflow_alert_interval=0.0,
    )
    for i in range(60):
        outputs.put(make_alert(i))
    # stdout and file got every alert although the collector has not answered once.
    wait_for(lambda: outputs.sink_stats()["file"].delivered >= 60)
    assert outputs.sink_stats()["stdout"].delivered >= 60
    assert stalled.accepted >= 1
    # The HTTP sink: two alerts hit the deadline and its breaker opened, so the rest of its
    # queue drains as drops at once, counted for it alone.
    wait_for(lambda: outputs.sink_stats()["http"].queued == 0)
    http_stats = outputs.sink_stats()["http"]
    assert http_stats.failed == 2 and http_stats.delivered == 0
    assert http_stats.dropped == 58
    assert outputs.sink_stats()["file"].dropped == 0
    assert http.breaker.is_open
    outputs.put(make_alert(99))  # the next alert reports the losses
    outputs.close(timeout=5)
    internal = [line for line in path.read_text().splitlines() if "output queue overflow" in line]
    assert internal and "http:" in internal[0]
    assert stream.getvalue().count("output ") >= 61


def test_the_http_deadline_covers_a_trickled_answer() -> None:
    server = StalledServer(mode="trickle", trickle_interval=0.05).start()
    try:
        sink = HttpSink(server.url, timeout=1.0, retries=0)
        # A per-read timeout would wait ~200 s for the trickled headers; the deadline ends it.
        with pytest.raises(SinkError, match="no answer within 1 s"):
            sink.write(make_alert(1))
    finally:
        server.stop()


def test_the_breaker_drops_at_once_then_lets_one_attempt_through(stalled: StalledServer) -> None:
    now = [0.0]
    sink = HttpSink(stalled.url, timeout=0.3, retries=1, breaker_failures=1, breaker_cooldown=30)
    sink.breaker = CircuitBreaker(1, 30.0, clock=lambda: now[0])
    with pytest.raises(SinkError, match="after 2 attempts"):
        sink.write(make_alert(1))
    assert sink.breaker.is_open and sink.breaker.trips == 1
    accepted = stalled.accepted
    with pytest.raises(SinkUnavailable, match="circuit open"):
        sink.write(make_alert(2))
    assert stalled.accepted == accepted  # no connection tried while open
    now[0] = 31.0  # cooldown over: one half-open attempt, which fails and re-opens
    with pytest.raises(SinkError, match="no answer"):
        sink.write(make_alert(3))
    assert stalled.accepted > accepted and sink.breaker.is_open


class GatedSink(Sink):
    kind = "gated"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.seen: list[str] = []

    def write(self, alert: Alert) -> None:
        self.release.wait(30)
        self.seen.append(alert.document["rule"])


def test_a_replay_queue_is_bounded_and_pushes_back_on_the_reader() -> None:
    sink = GatedSink()
    outputs = OutputQueue([sink], capacity=5, block=True)
    produced: list[int] = []

    def reader() -> None:
        for i in range(100):
            outputs.put(make_alert(i))
            produced.append(i)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    # The reader stops at the bound: one alert in the sink's hand, five queued, one waiting.
    wait_for(lambda: outputs.depth == 5)
    assert thread.is_alive() and len(produced) <= 7
    sink.release.set()
    thread.join(30)
    outputs.close()
    assert sink.seen == [f"Rule {i}" for i in range(100)]
    assert outputs.stats.overflow == 0 and outputs.sink_stats()["gated"].dropped == 0


def test_capacity_zero_no_longer_means_unbounded() -> None:
    outputs = OutputQueue([GatedSink()], capacity=0)
    try:
        assert outputs.block and outputs._workers[0]._queue.maxsize > 0
    finally:
        outputs._workers[0].sink.release.set()
        outputs.close()


def test_per_sink_counters_reach_metrics() -> None:
    metrics = Metrics()
    metrics.output_sinks({"http": {"delivered": 1, "dropped": 7, "failed": 2, "queued": 3}})
    metrics.output_sinks({"http": {"delivered": 1, "dropped": 9, "failed": 2, "queued": 0}})
    text = metrics.render()[0].decode()
    assert 'falconet_output_sink_alerts_total{result="dropped",sink="http"} 9.0' in text
    assert 'falconet_output_sink_alerts_total{result="failed",sink="http"} 2.0' in text
    assert 'falconet_output_sink_queue_depth{sink="http"} 0.0' in text


def test_the_response_engine_acts_while_the_http_sink_stalls(
    tmp_path: Path, stalled: StalledServer
) -> None:
    from engine.response.engine import ResponseEngine
    from engine.response.rules import parse_rules
    from engine.response.sink import ResponseSink

    marker = tmp_path / "acted"
    rules = {
        "rules": [
            {
                "name": "touch",
                "match": {"rules": ["Rule 1"]},
                "actions": [
                    {"action": "exec:script", "parameters": {"command": ["touch", str(marker)]}}
                ],
            }
        ]
    }
    engine = ResponseEngine(parse_rules(rules))
    http = HttpSink(stalled.url, timeout=20, retries=0)  # first in line, stalls 20 s
    outputs = OutputQueue([http, ResponseSink(engine)])
    outputs.put(make_alert(1))
    wait_for(marker.exists, timeout=10)  # long before the HTTP attempt gives up
    assert outputs.sink_stats()["http"].queued == 1  # still waiting for its answer
    outputs.close(timeout=0.5)


def test_https_collector_with_a_private_ca(tmp_path: Path) -> None:
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.support.certificates import TestCA as CertificateAuthority

    ca = CertificateAuthority(tmp_path / "ca")
    bodies: list[bytes] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.server_cert, ca.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/falco"
    try:
        HttpSink(url, ca_file=str(ca.ca_cert)).write(make_alert(5))
        assert json.loads(bodies[0])["rule"] == "Rule 5"
        with pytest.raises(SinkError, match="CERTIFICATE_VERIFY_FAILED"):
            HttpSink(url, retries=0).write(make_alert(6))  # system CAs do not know this one
        HttpSink(url, insecure=True).write(make_alert(7))
        assert len(bodies) == 2
    finally:
        server.shutdown()
        server.server_close()


class DepthRecordingSink(Sink):
    """Holds its first alert until its queue is full, then records the queue depth it sees."""

    kind = "depth"

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.outputs: OutputQueue | None = None
        self.depths: list[int] = []
        self.rules: list[str] = []

    def write(self, alert: Alert) -> None:
        assert self.outputs is not None
        if not self.rules:  # the reader must now fill the queue and wait, not grow it
            wait_for(lambda: self.outputs.depth >= self.capacity)
        self.depths.append(self.outputs.depth)
        self.rules.append(alert.document["rule"])


def test_a_replay_waits_for_a_slow_sink_instead_of_growing_memory(
    shared_dir: Path, tmp_path: Path
) -> None:
    from engine.runner import RunRequest, run

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- rule: Any open\n  desc: d\n  condition: evt.type in (open, openat) and evt.dir = <\n"
        "  output: opened %fd.name\n  priority: WARNING\n"
    )
    sink = DepthRecordingSink(capacity=3)

    def started(detector: object, outputs: OutputQueue) -> None:
        sink.outputs = outputs

    capture = shared_dir / "upstream-captures" / "open-multiple-files.scap"
    request = RunRequest(rules_files=[rules], replay=str(capture), stdout=False, queue_capacity=3)
    stats = run(request, extra_sinks=[sink], on_started=started)
    assert len(sink.rules) == stats.alerts > 3  # every alert delivered...
    assert stats.dropped_alerts == 0 and stats.outputs["depth"]["dropped"] == 0
    # ...while never more was held than the queue's bound plus the batch the worker took
    assert max(sink.depths) <= 2 * 3
