"""Container metadata from the runtime's API, as Falco's container plugin fills `container.*`
and `k8s.*`: looked up asynchronously by container id and cached, never on the event path.

Runtimes:
- the Docker-compatible REST API on a unix socket (docker, and podman's `podman system
  service`): `GET /v1.41/containers/<id>/json` gives the name, the image reference and id,
  the labels and HostConfig.Privileged;
- containerd's gRPC API (`containerd.services.containers.v1.Containers/List`, filtered by the
  id prefix, in the `k8s.io` namespace the kubelet's CRI uses, then `default`): labels, image,
  and the OCI spec (privileged: every capability in the bounding set). The few protobuf
  messages are encoded and decoded here (no generated stubs).
Kubernetes pod fields come from the CRI labels a kubelet puts on its containers
(`io.kubernetes.pod.name`, `.namespace`, `.uid`). CRI-O is not queried yet.

An event that arrives before the lookup has answered reads the metadata fields as absent
(`<NA>`); every later event of that container has them (Falco's plugin fills the fields of the
events after its lookup too). Every answer is bounded (size, time); the cache is an LRU with
evictions counted; the lookup queue is bounded, and a full queue defers the lookup to a later
event (counted), never blocking it.

Sockets: FALCONET_CONTAINER_SOCKETS (`,`-separated; an entry is a path, or `KIND:PATH` with
KIND docker, podman or containerd when the path's name does not say), else the defaults below,
where the Helm chart mounts the node's sockets under /host. Missing sockets are skipped.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import re
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_SOCKETS = (
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
    "/run/containerd/containerd.sock",
    "/host/var/run/docker.sock",
    "/host/run/podman/podman.sock",
    "/host/run/containerd/containerd.sock",
)
CONTAINERD_NAMESPACES = ("k8s.io", "default")
MAX_ANSWER_BYTES = 1 << 20  # a container's inspect document is a few KiB
ANSWER_TIMEOUT_S = 2.0
CACHE_ENTRIES = 4096
QUEUE_ENTRIES = 256
MISS_RETRY_S = 30.0  # a container no runtime knows is asked again after this
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class ContainerInfo:
    full_id: str
    name: str
    runtime: str
    image: str
    image_id: str
    privileged: bool
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def image_repository(self) -> str:
        return split_image(self.image)[0]

    @property
    def image_tag(self) -> str:
        return split_image(self.image)[1]

    @property
    def image_digest(self) -> str:
        return split_image(self.image)[2]

    def label(self, key: str) -> str | None:
        return self.labels.get(key)

    @property
    def labels_text(self) -> str:
        """Falco's `container.labels`: `key:value` pairs joined by `, `."""
        return ", ".join(f"{k}:{v}" for k, v in sorted(self.labels.items()))

    @property
    def pod_name(self) -> str | None:
        return self.labels.get("io.kubernetes.pod.name")

    @property
    def pod_namespace(self) -> str | None:
        return self.labels.get("io.kubernetes.pod.namespace")

    @property
    def pod_uid(self) -> str | None:
        return self.labels.get("io.kubernetes.pod.uid")


def split_image(reference: str) -> tuple[str, str, str]:
    """(repository, tag, digest) of an image reference: `repo[:tag][@sha256:...]`."""
    digest = ""
    match = _DIGEST.search(reference)
    if match:
        digest, reference = match.group(1), reference[: match.start()]
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:  # no tag: the colon belonged to a registry port
        return reference, "", digest
    return name, tag, digest


def parse_inspect(document: Any, runtime: str) -> ContainerInfo | None:
    """A Docker-compatible `containers/<id>/json` answer; None when it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("Id"), str):
        return None
    config = document.get("Config") if isinstance(document.get("Config"), dict) else {}
    host = document.get("HostConfig") if isinstance(document.get("HostConfig"), dict) else {}
    labels = config.get("Labels") if isinstance(config.get("Labels"), dict) else {}
    return ContainerInfo(
        full_id=document["Id"],
        name=str(document.get("Name") or "").lstrip("/"),
        runtime=runtime,
        image=str(config.get("Image") or document.get("ImageName") or ""),
        image_id=str(document.get("Image") or ""),
        privileged=bool(host.get("Privileged")),
        labels={str(k): str(v) for k, v in labels.items()},
    )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def inspect(socket_path: str, container_id: str, timeout: float = ANSWER_TIMEOUT_S) -> Any:
    """The runtime's inspect document for `container_id` (a prefix is enough), None when the
    runtime does not know it. Raises OSError/ValueError for an unusable answer."""
    if not re.fullmatch(r"[0-9a-f]{12,64}", container_id):
        raise ValueError(f"not a container id: {container_id!r}")
    connection = _UnixConnection(socket_path, timeout)
    try:
        connection.request("GET", f"/v1.41/containers/{container_id}/json")
        response = connection.getresponse()
        body = response.read(MAX_ANSWER_BYTES + 1)
        if len(body) > MAX_ANSWER_BYTES:
            raise ValueError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        if response.status == 404:
            return None
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        return json.loads(body)
    finally:
        connection.close()


RUNTIME_KINDS = ("docker", "podman", "containerd")


def _socket_kind(entry: str) -> tuple[str, str]:
    """(runtime, path) of a socket entry: `containerd:/path` names its runtime; a bare path
    is recognised by its name (containerd's sockets speak gRPC, the others HTTP)."""
    kind, separator, path = entry.partition(":")
    if separator and kind in RUNTIME_KINDS:
        return kind, path
    if "containerd" in entry:
        return "containerd", entry
    return ("podman" if "podman" in entry else "docker"), entry


def _runtime_name(socket_path: str) -> str:
    return _socket_kind(socket_path)[0]


# -- containerd's gRPC API, on the wire -----------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fields(message: bytes) -> list[tuple[int, Any]]:
    """(field number, value) pairs of a protobuf message: varints as int, length-delimited as
    bytes; fixed-width fields skipped. Raises ValueError on a malformed message."""
    found: list[tuple[int, Any]] = []
    position = 0

    def varint() -> int:
        nonlocal position
        shift = result = 0
        while True:
            if position >= len(message) or shift > 63:
                raise ValueError("truncated varint")
            byte = message[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while position < len(message):
        key = varint()
        number, kind = key >> 3, key & 7
        if kind == 0:
            found.append((number, varint()))
        elif kind == 2:
            length = varint()
            if position + length > len(message):
                raise ValueError("truncated field")
            found.append((number, message[position : position + length]))
            position += length
        elif kind == 1:
            position += 8
        elif kind == 5:
            position += 4
        else:
            raise ValueError(f"unsupported wire type {kind}")
    return found


def _containerd_info(container: bytes) -> ContainerInfo:
    """A containerd `Container` message: id 1, labels 2 (map), image 3, spec 5 (Any)."""
    identifier, image, labels, privileged = "", "", {}, False
    for number, value in _fields(container):
        if number == 1:
            identifier = value.decode("utf-8", "replace")
        elif number == 2:
            entry = dict(_fields(value))
            labels[entry.get(1, b"").decode("utf-8", "replace")] = entry.get(2, b"").decode(
                "utf-8", "replace"
            )
        elif number == 3:
            image = value.decode("utf-8", "replace")
        elif number == 5:
            privileged = _spec_privileged(dict(_fields(value)).get(2, b""))
    name = labels.get("io.kubernetes.container.name") or identifier[:12]
    return ContainerInfo(identifier, name, "containerd", image, "", privileged, labels)


def _spec_privileged(spec_json: bytes) -> bool:
    """A privileged container's OCI spec keeps every capability in its bounding set (what CRI
    and `ctr run --privileged` give): CAP_SYS_ADMIN there is the sign."""
    try:
        spec = json.loads(spec_json)
        bounding = spec["process"]["capabilities"]["bounding"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(bounding, list) and "CAP_SYS_ADMIN" in bounding


def containerd_container(
    socket_path: str, container_id: str, timeout: float = ANSWER_TIMEOUT_S
) -> ContainerInfo | None:
    """The containerd container whose id starts with `container_id`, searched in the k8s.io
    then the default namespace; None when neither has it."""
    if not re.fullmatch(r"[0-9a-f]{12,64}", container_id):
        raise ValueError(f"not a container id: {container_id!r}")
    import grpc

    request = _field_bytes(1, f"id~=^{container_id}".encode())  # ListContainersRequest.filters
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        call = channel.unary_unary(
            "/containerd.services.containers.v1.Containers/List",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        for namespace in CONTAINERD_NAMESPACES:
            answer = call(request, timeout=timeout, metadata=(("containerd-namespace", namespace),))
            if len(answer) > MAX_ANSWER_BYTES:
                raise ValueError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
            containers = [value for number, value in _fields(answer) if number == 1]
            if containers:
                return _containerd_info(containers[0])
    return None


@dataclass
class ResolverStats:
    lookups: int = 0
    answered: int = 0
    unknown: int = 0
    failures: int = 0
    evicted: int = 0
    deferred: int = 0  # the lookup queue was full: asked again at a later event


class ContainerResolver:
    """Non-blocking `get(container_id)`: the cached metadata, or None while (or when) no
    runtime answered. One worker thread does the lookups."""

    def __init__(self, sockets: tuple[str, ...] | None = None) -> None:
        self.sockets = sockets if sockets is not None else configured_sockets()
        self.stats = ResolverStats()
        self._cache: OrderedDict[str, ContainerInfo | float] = OrderedDict()
        self._pending: set[str] = set()
        self._queue: queue.Queue[str] = queue.Queue(QUEUE_ENTRIES)
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def get(self, container_id: str) -> ContainerInfo | None:
        cached = self._cache.get(container_id)
        if isinstance(cached, ContainerInfo):
            return cached
        if cached is not None and time.monotonic() < cached:
            return None  # no runtime knew it recently
        if not self.sockets or container_id in self._pending:
            return None
        self._ask(container_id)
        return None

    def _ask(self, container_id: str) -> None:
        with self._lock:
            if container_id in self._pending:
                return
            try:
                self._queue.put_nowait(container_id)
            except queue.Full:
                self.stats.deferred += 1
                return
            self._pending.add(container_id)
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._work, name="container-metadata", daemon=True
                )
                self._worker.start()

    def _work(self) -> None:
        while True:
            container_id = self._queue.get()
            try:
                self._store(container_id, self._lookup(container_id))
            finally:
                with self._lock:
                    self._pending.discard(container_id)

    def _lookup(self, container_id: str) -> ContainerInfo | None:
        self.stats.lookups += 1
        for entry in self.sockets:
            kind, path = _socket_kind(entry)
            if not os.path.exists(path):
                continue
            try:
                if kind == "containerd":
                    info = containerd_container(path, container_id)
                else:
                    document = inspect(path, container_id)
                    info = parse_inspect(document, kind) if document else None
            except Exception as error:
                self.stats.failures += 1
                log.debug("container %s: %s: %s", container_id, path, error)
                continue
            if info is not None:
                self.stats.answered += 1
                return info
        self.stats.unknown += 1
        return None

    def _store(self, container_id: str, info: ContainerInfo | None) -> None:
        with self._lock:
            self._cache[container_id] = info if info else time.monotonic() + MISS_RETRY_S
            self._cache.move_to_end(container_id)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
                self.stats.evicted += 1

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Tests: True once no lookup is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._pending:
                return True
            time.sleep(0.01)
        return False


def configured_sockets() -> tuple[str, ...]:
    value = os.environ.get("FALCONET_CONTAINER_SOCKETS")
    if value is not None:
        return tuple(entry.strip() for entry in value.split(",") if entry.strip())
    return DEFAULT_SOCKETS


_RESOLVER: ContainerResolver | None = None


def resolver() -> ContainerResolver:
    """The process's resolver (created at its first use, from the configured sockets)."""
    global _RESOLVER
    if _RESOLVER is None:
        _RESOLVER = ContainerResolver()
    return _RESOLVER


def container_type(cgroups: tuple[str, ...]) -> str:
    """The runtime a container id's cgroup path names (libsinsp's container types)."""
    for entry in cgroups:
        if "/libpod-" in entry:
            return "podman"
        if "/docker" in entry:
            return "docker"
        if "/crio-" in entry:
            return "cri-o"
        if (
            "/cri-containerd-" in entry
            or "/kubepods" in entry
            or "/containerd-" in entry
            or "/k8s.io/" in entry
        ):
            return "containerd"
    return "container"
