"""Alert outputs: real files, HTTP, programs and syslog sockets behind a bounded queue."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from engine.output import Priority
from engine.sinks import (
    DRAIN_BATCH,
    Alert,
    FileSink,
    HttpSink,
    OutputQueue,
    ProgramSink,
    Sink,
    SinkError,
    SyslogSink,
    build_sink,
    internal_alert,
)
from tests.support.http_server import StaticServer
from tests.support.waiting import wait_for


def make_alert(n: int = 1) -> Alert:
    return internal_alert(f"Rule {n}", f"output {n}", Priority.WARNING, {"n": n}, "host")


def test_file_sink_reopens_after_logrotate(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    sink = FileSink(str(path), json_output=True)
    sink.write(make_alert(1))
    path.rename(tmp_path / "alerts.json.1")  # what logrotate does, then SIGUSR1
    sink.write(make_alert(2))  # still goes to the rotated file until reopened
    sink.reopen()
    sink.write(make_alert(3))
    sink.close()
    rotated = [json.loads(line)["rule"] for line in (tmp_path / "alerts.json.1").open()]
    assert rotated == ["Rule 1", "Rule 2"]
    assert [json.loads(line)["rule"] for line in path.open()] == ["Rule 3"]


def test_http_sink_posts_falco_json_and_reports_refusals() -> None:
    server = StaticServer().start()
    try:
        sink = HttpSink(f"{server.url}/falco")
        sink.write(make_alert(7))
        (request,) = server.requests
        assert request.method == "POST" and request.path == "/falco"
        body = json.loads(request.body)
        assert body["rule"] == "Rule 7" and body["source"] == "internal"
        assert request.headers["Content-Type"] == "application/json"
        server.post_status = 400
        with pytest.raises(SinkError, match="HTTP 400"):
            sink.write(make_alert(8))
    finally:
        server.stop()


def test_program_sink_feeds_a_long_lived_command(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    sink = ProgramSink(f"cat > {out}")
    sink.write(make_alert(1))
    sink.write(make_alert(2))
    sink.close()
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and "Warning output 1" in lines[0]


def test_syslog_sink_sends_rfc3164_with_severity() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    try:
        sink = SyslogSink(f"127.0.0.1:{receiver.getsockname()[1]}")
        sink.write(make_alert(3))
        data = receiver.recv(4096).decode()
        assert data.startswith("<12>falconet: ")  # facility user (1) * 8 + warning (4)
        assert "output 3" in data
        sink.close()
    finally:
        receiver.close()


def test_unknown_sink_type_names_the_valid_ones() -> None:
    with pytest.raises(SinkError) as info:
        build_sink({"type": "kafka"})
    assert "file" in (info.value.hint or "")


class BlockedSink(Sink):
    kind = "blocked"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.seen: list[Alert] = []

    def write(self, alert: Alert) -> None:
        self.release.wait(10)
        self.seen.append(alert)


def test_slow_sink_never_blocks_and_overflow_is_reported() -> None:
    sink = BlockedSink()
    outputs = OutputQueue([sink], capacity=3, overflow_alert_interval=0.0)
    start = time.monotonic()
    accepted = [outputs.put(make_alert(i)) for i in range(20)]
    assert time.monotonic() - start < 1.0  # detection did not wait for the sink
    assert accepted.count(False) >= 15 and outputs.stats.overflow == accepted.count(False)
    sink.release.set()
    wait_for(lambda: outputs.depth == 0)
    outputs.put(make_alert(99))  # room again: the overflow is reported
    outputs.close()
    internal = [a for a in sink.seen if "overflow" in a.document["rule"]]
    assert internal and internal[0].document["source"] == "internal"
    assert internal[0].document["output_fields"]["n_drops_total"] == outputs.stats.overflow
    assert sink.seen[-1].document["rule"] in ("Rule 99", internal[-1].document["rule"])


def test_close_drains_everything_queued(tmp_path: Path) -> None:
    path = tmp_path / "drain.txt"
    outputs = OutputQueue([FileSink(str(path))], capacity=1000)
    for i in range(500):
        assert outputs.put(make_alert(i))
    outputs.close()
    assert len(path.read_text().splitlines()) == 500


class BatchRecordingSink(Sink):
    """Holds its first write until released, then records the batches it is handed."""

    kind = "batches"

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.release = threading.Event()
        self.batches: list[list[str]] = []
        self.fail = fail

    def write_batch(self, alerts: list[Alert]) -> None:
        self.release.wait(10)
        self.batches.append([alert.document["rule"] for alert in alerts])
        if self.fail:
            raise OSError("disk full")


def test_a_backlog_reaches_sinks_in_batches_in_order() -> None:
    sink = BatchRecordingSink()
    outputs = OutputQueue([sink], capacity=2000)
    for i in range(1000):
        assert outputs.put(make_alert(i))
    sink.release.set()
    outputs.close()
    delivered = [rule for batch in sink.batches for rule in batch]
    assert delivered == [f"Rule {i}" for i in range(1000)]
    assert max(len(batch) for batch in sink.batches) <= DRAIN_BATCH
    # The worker took the first alert alone, then everything queued behind it in full batches.
    assert len(sink.batches) <= 2 + 1000 // DRAIN_BATCH
    assert outputs.stats.delivered == 1000


def test_a_failing_batch_counts_every_alert_it_carried() -> None:
    sink = BatchRecordingSink(fail=True)
    outputs = OutputQueue([sink], capacity=100)
    for i in range(10):
        outputs.put(make_alert(i))
    sink.release.set()
    outputs.close()
    assert outputs.stats.failures["batches"] == 10


def test_file_sink_writes_a_batch_as_lines(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    sink = FileSink(str(path), json_output=True)
    sink.write_batch([make_alert(i) for i in range(3)])
    sink.close()
    rules = [json.loads(line)["rule"] for line in path.read_text().splitlines()]
    assert rules == ["Rule 0", "Rule 1", "Rule 2"]


def test_http_sink_takes_basic_auth_from_the_url_and_never_shows_the_password() -> None:
    import base64

    from engine.sinks import HttpSink

    sink = HttpSink("http://node-1:p%40ss@127.0.0.1:9/ingest")
    assert "p%40ss" not in sink.url and "p@ss" not in sink.url
    expected = "Basic " + base64.b64encode(b"node-1:p@ss").decode()
    assert sink._headers["Authorization"] == expected
