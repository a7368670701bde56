"""nomad: the plugin's fields on Nomad's documented sample frame and frames derived from it,
the upstream nomad rules, replay from files, and the live event stream against a stand-in
Nomad server (heartbeats, topic/namespace/token, a dropped connection, a server restart, a
resume from the cursor after a falconet restart, an oversized frame)."""

from __future__ import annotations

import copy
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.fields import catalog
from engine.loader import load_rules_files, rulesets_for
from engine.sources import provided_plugins
from engine.sources.errors import SourceError
from engine.sources.formats import EventFactory
from engine.sources.json_event import JsonEvent
from engine.sources.nomad import image_repository
from engine.sources.nomad_stream import NomadOptions, NomadStream, StreamAuthError
from engine.sources.readers import read_events
from tests.support.certificates import TestCA as CertificateAuthority
from tests.support.nomad_standin import NomadStandIn
from tests.support.source_fields import extract
from tests.support.waiting import wait_for

SOURCE = "nomad"


@pytest.fixture(scope="module")
def sample(shared_dir: Path) -> dict[str, Any]:
    path = shared_dir / "upstream-plugins" / "nomad" / "event_stream_sample_response.json"
    return json.loads(path.read_text())


def allocation_frame(
    index: int,
    images: tuple[str, ...] = ("redis:7.2",),
    cpu: int = 500,
    memory: int = 256,
    status: str = "running",
    event_type: str = "AllocationUpdated",
) -> dict[str, Any]:
    """An Allocation frame shaped like the docs' sample (Index, Events[{Topic, Type, Key,
    Namespace, FilterKeys, Index, Payload}]) with an api.Allocation payload."""
    tasks = {
        f"task{n}": {
            "State": "running",
            "Failed": False,
            "Events": [
                {"Type": "Received", "Time": 1602770857000000000, "Details": {}},
                {
                    "Type": "Driver",
                    "DisplayMessage": "Downloading image",
                    "Details": {"image": image},
                },
                {"Type": "Started", "Details": {}},
            ],
        }
        for n, image in enumerate(images)
    }
    allocation = {
        "ID": f"alloc-{index}",
        "Namespace": "default",
        "Name": f"web.cache[{index}]",
        "JobID": "web",
        "ClientStatus": status,
        "Resources": {
            "CPU": cpu,
            "Cores": 0,
            "MemoryMB": memory,
            "MemoryMaxMB": 0,
            "DiskMB": 300,
            "IOPS": 0,
        },
        "TaskStates": tasks,
    }
    return {
        "Index": index,
        "Events": [
            {
                "Topic": "Allocation",
                "Type": event_type,
                "Key": f"alloc-{index}",
                "Namespace": "default",
                "FilterKeys": ["web"],
                "Index": index,
                "Payload": {"Allocation": allocation},
            }
        ],
    }


def events_of(*frames: dict[str, Any]) -> list[JsonEvent]:
    factory = EventFactory(SOURCE)
    return [event for frame in frames for event in factory.from_document(frame)]


def test_the_plugins_fields_and_types() -> None:
    fields = {spec.name: spec for spec in catalog(SOURCE).specs() if spec.name.startswith(SOURCE)}
    assert len(fields) == 17
    assert {n for n, s in fields.items() if s.is_list} == {
        "nomad.alloc.images",
        "nomad.alloc.images.tags",
        "nomad.alloc.images.repositories",
        "nomad.alloc.taskStates.type",
    }
    assert {n for n, s in fields.items() if s.type == "uint"} == {
        "nomad.index",
        *(f"nomad.alloc.res.{r}" for r in ("cpu", "cores", "diskMB", "iops", "memoryMB")),
        "nomad.alloc.res.memoryMaxMB",
    }


def test_the_sample_frame_in_the_plugins_event_shape(sample: dict[str, Any]) -> None:
    (event,) = events_of(sample)
    assert list(event.data) == ["Topic", "Type", "Key", "FilterKeys", "Index", "Payload"]
    assert extract(SOURCE, "nomad.index", event) == 7
    assert extract(SOURCE, "nomad.event.topic", event) == "Node"
    assert extract(SOURCE, "nomad.event.type", event) == "NodeRegistration"
    assert extract(SOURCE, "json.value[/Payload/Node/Name]", event) == "nomad-4"
    # A Node event has no allocation: its alloc fields are absent.
    assert extract(SOURCE, "nomad.alloc.name", event) is None
    assert extract(SOURCE, "nomad.alloc.res.cpu", event) is None
    assert extract(SOURCE, "nomad.alloc.images", event) is None


def test_allocation_fields() -> None:
    frame = allocation_frame(
        12,
        images=(
            "123456789123.dkr.ecr.eu-central-1.amazonaws.com/subpath/api:1.4",
            "redis:7.2",
            "ghcr.io/acme/tool",
        ),
    )
    (event,) = events_of(frame)
    assert extract(SOURCE, "nomad.alloc.name", event) == "web.cache[12]"
    assert extract(SOURCE, "nomad.alloc.namespace", event) == "default"
    assert extract(SOURCE, "nomad.alloc.jobID", event) == "web"
    assert extract(SOURCE, "nomad.alloc.clientStatus", event) == "running"
    assert extract(SOURCE, "nomad.alloc.images", event) == ("api", "redis", "tool")
    assert extract(SOURCE, "nomad.alloc.images.tags", event) == ("1.4", "7.2", "ghcr.io/acme/tool")
    assert extract(SOURCE, "nomad.alloc.images.repositories", event) == (
        "123456789123.dkr.ecr.eu-central-1.amazonaws.com/subpath",
        "docker.io",
    )
    assert extract(SOURCE, "nomad.alloc.taskStates.type", event) == ("Driver",) * 3
    assert extract(SOURCE, "nomad.alloc.res.cpu", event) == 500
    assert extract(SOURCE, "nomad.alloc.res.memoryMB", event) == 256
    assert extract(SOURCE, "nomad.alloc.res.diskMB", event) == 300
    assert extract(SOURCE, "nomad.alloc.res.memoryMaxMB", event) == 0


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("nginx:1.25", "docker.io"),
        ("registry.example.com/team/app:2", "registry.example.com/team"),
        ("registry.example.com:5000/app:2", None),  # upstream: not exactly one ":"
        ("app@sha256:abcd", "docker.io"),
    ],
)
def test_image_repositories_as_upstream(image: str, repository: str | None) -> None:
    assert image_repository(image) == repository


def test_heartbeats_and_bad_documents_in_files(tmp_path: Path, sample: dict[str, Any]) -> None:
    stream = tmp_path / "stream.ndjson"
    lines = [{}, sample, {}, allocation_frame(8), "not json", [1]]
    stream.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    indexes = [extract(SOURCE, "nomad.index", event) for event in read_events(SOURCE, stream)]
    assert indexes == [7, 8]


def test_upstream_rules_load_and_fire_on_the_sample_and_derived_frames(
    shared_dir: Path, sample: dict[str, Any]
) -> None:
    loaded = load_rules_files(
        [shared_dir / "upstream-plugins" / "nomad" / "nomad_rules.yaml"], use_cache=False
    )
    assert [e.message for r in loaded.results for e in r.errors] == []
    # required_plugin_versions: nomad 0.2.0 and json 0.7.0, satisfied by the built-in sources.
    assert loaded.unmet_plugin_requirements(provided_plugins()) == []
    rulesets = rulesets_for(loaded, matching="all")
    allowed = "123456789123.dkr.ecr.eu-central-1.amazonaws.com/subpath/api:1.4"
    frames = [
        sample,
        allocation_frame(8, images=("redis:7.2",), cpu=500, memory=256),  # docker.io, >100 MHz
        allocation_frame(9, images=(allowed,), cpu=100, memory=300),  # allowed repo, 300 MB
        allocation_frame(10, cpu=500, memory=512, status="pending"),  # not running: nothing
        allocation_frame(11, event_type="AllocationCreated"),
    ]
    fired = [
        (extract(SOURCE, "nomad.index", event), rule.name, rule.output.render(event))
        for event in events_of(*frames)
        for rule in rulesets.evaluate(event, SOURCE)
    ]
    assert [(index, name) for index, name, _ in fired] == [
        (8, "Nomad Allocation with Non-Allowed Image"),
        (8, "Nomad Allocation using more than CPU 100 Mhz"),
        (9, "Nomad Allocation using more than equal 300 MB memory"),
    ]
    assert fired[0][2] == (
        "index=8, repo=(docker.io), image=(redis), tag=(7.2), namespace=default, "
        "name=web.cache[8], jobID=web"
    )


# The live stream ------------------------------------------------------------------------


class Collector:
    def __init__(self) -> None:
        self.events: list[JsonEvent] = []
        self.alerts: list[tuple[str, dict[str, Any]]] = []

    def deliver(self, events: list[JsonEvent]) -> None:
        self.events.extend(events)

    def alert(self, message: str, fields: dict[str, Any]) -> None:
        self.alerts.append((message, fields))

    @property
    def indexes(self) -> list[int]:
        return [event.data["Index"] for event in self.events]


class Running:
    """A NomadStream running in a thread until stopped."""

    def __init__(self, stream: NomadStream) -> None:
        self.stream = stream
        self.got = Collector()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.stream.run(self.got.deliver, self.stop, self.got.alert)
        except BaseException as error:  # the test reads it
            self.error = error

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


@pytest.fixture
def nomad() -> Iterator[NomadStandIn]:
    server = NomadStandIn(token="s3cr3t").start()
    yield server
    server.stop()


def options(server: NomadStandIn, **extra: Any) -> NomadOptions:
    values: dict[str, Any] = {
        "address": server.address,
        "token": "s3cr3t",
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "heartbeat_timeout": 5.0,
    }
    values.update(extra)
    return NomadOptions(**values)


def test_stream_with_heartbeats_token_and_topics(nomad: NomadStandIn) -> None:
    nomad.publish(allocation_frame(5), allocation_frame(6))
    running = Running(NomadStream(options(nomad, topics=("Allocation", "Job:web"))))
    try:
        wait_for(lambda: running.got.indexes == [5, 6])
        nomad.publish(allocation_frame(9))
        wait_for(lambda: running.got.indexes == [5, 6, 9])
        wait_for(lambda: running.stream.stats.heartbeats >= 2)
    finally:
        running.close()
    request = nomad.requests[0]
    assert request["token"] == "s3cr3t"
    assert request["query"]["topic"] == ["Allocation:*", "Job:web"]
    assert request["query"]["namespace"] == ["*"]
    assert request["query"]["index"] == ["0"]
    assert [e.num for e in running.got.events] == [1, 2, 3]


def test_a_dropped_connection_and_a_server_restart_lose_and_repeat_nothing(
    nomad: NomadStandIn,
) -> None:
    nomad.publish(*(allocation_frame(i) for i in (3, 4, 5)))
    nomad.drop_after_frames, nomad.drop_mid_frame = 2, True  # cut inside frame 5
    running = Running(NomadStream(options(nomad)))
    try:
        wait_for(lambda: running.got.indexes == [3, 4, 5])
        assert running.stream.stats.reconnects >= 1
        assert nomad.requests[1]["query"]["index"] == ["5"]  # resumed after 4
        nomad.restart()  # same port; the frames survive, as Nomad's raft log does
        nomad.publish(allocation_frame(8))
        wait_for(lambda: running.got.indexes == [3, 4, 5, 8])
        assert nomad.requests[-1]["query"]["index"] == ["6"]
    finally:
        running.close()
    assert running.error is None


def test_duplicate_frames_from_the_server_are_skipped(nomad: NomadStandIn) -> None:
    # A server that resends frames it already sent (index at or before the resume point).
    nomad.raw_lines = [json.dumps(allocation_frame(2)).encode() + b"\n"]
    nomad.publish(allocation_frame(2), allocation_frame(3))
    running = Running(NomadStream(options(nomad)))
    try:
        wait_for(lambda: running.got.indexes == [2, 3])
        wait_for(lambda: running.stream.stats.duplicate_frames == 1)
    finally:
        running.close()


def test_the_cursor_resumes_after_a_falconet_restart(nomad: NomadStandIn, tmp_path: Path) -> None:
    cursor = tmp_path / "state" / "nomad.cursor"
    nomad.publish(allocation_frame(3), allocation_frame(4))
    first = Running(NomadStream(options(nomad, cursor=cursor)))
    wait_for(lambda: first.got.indexes == [3, 4])
    first.close()
    assert json.loads(cursor.read_text())["index"] == 4
    nomad.publish(allocation_frame(7))
    second = Running(NomadStream(options(nomad, cursor=cursor)))
    try:
        wait_for(lambda: second.got.indexes == [7])
        assert nomad.requests[-1]["query"]["index"] == ["5"]
    finally:
        second.close()


def test_an_oversized_frame_is_dropped_counted_and_alerted(nomad: NomadStandIn) -> None:
    big = allocation_frame(3, images=tuple(f"img{n}:1" for n in range(400)))
    nomad.publish(big, allocation_frame(4))
    limit = 16 * 1024
    assert len(json.dumps(big)) > limit
    running = Running(NomadStream(options(nomad, max_frame=limit, max_buffer=limit)))
    try:
        wait_for(lambda: running.got.indexes == [4])
    finally:
        running.close()
    assert running.stream.stats.oversized_frames == 1
    ((message, fields),) = running.got.alerts
    assert "over 16384 bytes" in message and fields["n_drops_total"] == 1


def test_a_refused_token_stops_the_source_with_an_auth_error(nomad: NomadStandIn) -> None:
    running = Running(NomadStream(options(nomad, token="wrong")))
    running.thread.join(timeout=15)
    assert isinstance(running.error, StreamAuthError)
    assert "Permission denied" in str(running.error)


@pytest.mark.parametrize(
    "bad",
    [
        {"address": "ftp://x"},
        {"topics": ("Allocation:",)},
        {"topics": ("Al-location",)},
        {"max_frame": 10, "max_buffer": 5},
    ],
)
def test_bad_options_are_refused_before_any_work(bad: dict[str, Any]) -> None:
    values: dict[str, Any] = {"address": "http://127.0.0.1:4646", **bad}
    with pytest.raises(SourceError):
        NomadOptions(**values)


def test_frames_are_not_shared_between_streams(sample: dict[str, Any]) -> None:
    frame = copy.deepcopy(sample)
    (event,) = events_of(frame)
    assert "Namespace" not in event.data and "Namespace" in frame["Events"][0]


def test_a_frame_that_is_not_json_is_dropped_and_alerted(nomad: NomadStandIn) -> None:
    nomad.raw_lines = [b"{not json\n", b'{"Events": [{"Topic": "Job"}]}\n']
    nomad.publish(allocation_frame(3))
    running = Running(NomadStream(options(nomad)))
    try:
        wait_for(lambda: running.got.indexes == [3])
    finally:
        running.close()
    assert running.stream.stats.bad_frames == 2
    assert [message for message, _ in running.got.alerts] == [
        "nomad: a frame that is not JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)) was dropped",
        "nomad: a frame without an Index was dropped",
    ]


def test_mutual_tls(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca.server_cert, ca.server_key)
    context.load_verify_locations(ca.ca_cert)
    context.verify_mode = ssl.CERT_REQUIRED  # Nomad's verify_https_client
    server = NomadStandIn(tls=context).start()
    server.publish(allocation_frame(3))
    cert, key = ca.issue_client()
    tls = {"ca_file": str(ca.ca_cert), "client_cert": str(cert), "client_key": str(key)}
    running = Running(NomadStream(options(server, token="", **tls)))
    try:
        assert server.address.startswith("https://")
        wait_for(lambda: running.got.indexes == [3])
    finally:
        running.close()
        server.stop()
