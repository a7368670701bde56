"""The `nomad` source: HashiCorp Nomad event-stream events with the fields of the community
nomad plugin (albertollamaso/nomad-plugin, pkg/nomad/fields.go, extract.go, helpers.go).

Nomad's `/v1/event/stream` sends newline-delimited frames `{"Index": N, "Events": [...]}` and a
heartbeat `{}` (skipped). Each event becomes one event shaped as the plugin re-encodes it:
`{Topic, Type, Key, FilterKeys, Index, Payload}` (the wire `Namespace` is dropped), stamped with
its time of arrival (Nomad events carry no timestamp). Files may hold frames or such events.

The live stream client lives in nomad_stream.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from engine.fields import FieldCatalog, FieldSpec, register_source
from engine.sources import provide_plugin
from engine.sources.errors import InputFormatError
from engine.sources.formats import RecordFormat, arrival_time, register_format
from engine.sources.json_event import on_object
from engine.sources.json_source import plugin_catalog

SOURCE = "nomad"
PLUGIN = "nomad"
PLUGIN_VERSION = "0.2.0"
EVENT_KEYS = ("Topic", "Type", "Key", "FilterKeys", "Index", "Payload")

Data = dict[str, Any]


def plugin_event(event: Data) -> Data:
    """A wire event as the plugin's `json.Encoder` writes Nomad's api.Event."""
    return {key: event.get(key) for key in EVENT_KEYS}


def is_heartbeat(frame: Any) -> bool:
    return type(frame) is dict and not frame.get("Events") and "Topic" not in frame


def split(document: Any) -> Iterable[Data]:
    """The events of a frame, of one event, or of an array of either; none of a heartbeat."""
    items = document if type(document) is list else [document]
    out: list[Data] = []
    for item in items:
        if type(item) is not dict:
            raise InputFormatError("a Nomad event-stream frame is a JSON object")
        if "Topic" in item:
            out.append(plugin_event(item))
            continue
        events = item.get("Events")
        if events is None and is_heartbeat(item):
            continue
        if type(events) is not list:
            raise InputFormatError("not a Nomad event-stream frame: no Events array")
        for event in events:
            if type(event) is not dict:
                raise InputFormatError("a Nomad event is a JSON object")
            out.append(plugin_event(event))
    return out


def _allocation(data: Data) -> Data | None:
    # api.Event.Allocation(): the payload's Allocation object (upstream dereferences a nil
    # allocation on other topics and crashes; here the fields are simply absent).
    payload = data.get("Payload")
    if type(payload) is not dict:
        return None
    allocation = payload.get("Allocation")
    return allocation if type(allocation) is dict else None


def _alloc_text(key: str) -> Callable[[Data], str | None]:
    def extract(data: Data) -> str | None:
        allocation = _allocation(data)
        if allocation is None:
            return None
        value = allocation.get(key)
        return value if type(value) is str else ""

    return extract


def _resource(key: str) -> Callable[[Data], int | None]:
    def extract(data: Data) -> int | None:
        allocation = _allocation(data)
        resources = allocation.get("Resources") if allocation is not None else None
        value = resources.get(key) if type(resources) is dict else None
        # Absent rather than upstream's nil dereference (cpu, cores, iops) or 0 (disk, memory).
        return value if type(value) is int and value >= 0 else None

    return extract


def _task_events(data: Data) -> Iterator[Data]:
    """Every task event of the allocation, task states in document order."""
    allocation = _allocation(data)
    states = allocation.get("TaskStates") if allocation is not None else None
    if type(states) is not dict:
        return
    for state in states.values():
        events = state.get("Events") if type(state) is dict else None
        if type(events) is list:
            yield from (event for event in events if type(event) is dict)


def _images(data: Data) -> Iterator[str]:
    for event in _task_events(data):
        details = event.get("Details")
        image = details.get("image") if type(details) is dict else None
        # Upstream also adds "" for every task event without an image: not kept.
        if type(image) is str and image:
            yield image


def image_name(image: str) -> str:
    """`registry/path/name:tag` -> `name` (helpers.go getAllocImages)."""
    return image.split(":")[0].split("/")[-1]


def image_tag(image: str) -> str:
    """The text after the last `:` (the whole reference without one), as upstream."""
    return image.split(":")[-1]


def image_repository(image: str) -> str | None:
    """`registry/path/name:tag` -> `registry/path`; `name:tag` -> `docker.io`; None for a
    reference without exactly one `:` (upstream skips those: no tag, a port, a digest)."""
    tokens = image.split(":")
    if len(tokens) != 2:
        return None
    head = tokens[0]
    return head.rsplit("/", 1)[0] if "/" in head else "docker.io"


def _listed(values: Iterable[str | None]) -> tuple[str, ...] | None:
    found = tuple(value for value in values if value is not None)
    return found or None  # a list field with no value is not extracted (libsinsp)


def _drivers(data: Data) -> tuple[str, ...] | None:
    return _listed(
        event.get("Type") for event in _task_events(data) if event.get("Type") == "Driver"
    )


def _index(data: Data) -> int | None:
    value = data.get("Index")
    return value if type(value) is int and value >= 0 else None


def _event_text(key: str) -> Callable[[Data], str]:
    return lambda data: value if type(value := data.get(key)) is str else ""


_FIELDS: tuple[tuple[FieldSpec, Callable[[Data], Any]], ...] = (
    (FieldSpec("nomad.index", "uint", "the index of the nomad event."), _index),
    (
        FieldSpec("nomad.alloc.name", "string", "the name of the nomad allocation."),
        _alloc_text("Name"),
    ),
    (
        FieldSpec("nomad.alloc.namespace", "string", "the namespace of the allocation."),
        _alloc_text("Namespace"),
    ),
    (
        FieldSpec("nomad.alloc.jobID", "string", "the job ID of the allocation."),
        _alloc_text("JobID"),
    ),
    (
        FieldSpec("nomad.alloc.clientStatus", "string", "the client status of the allocation."),
        _alloc_text("ClientStatus"),
    ),
    (
        FieldSpec(
            "nomad.alloc.images",
            "string",
            "the list of container images on allocations.",
            is_list=True,
        ),
        lambda data: _listed(image_name(image) for image in _images(data)),
    ),
    (
        FieldSpec(
            "nomad.alloc.images.tags",
            "string",
            "the tags of each container image on allocations.",
            is_list=True,
        ),
        lambda data: _listed(image_tag(image) for image in _images(data)),
    ),
    (
        FieldSpec(
            "nomad.alloc.images.repositories",
            "string",
            "the container repositories used on allocations container images.",
            is_list=True,
        ),
        lambda data: _listed(image_repository(image) for image in _images(data)),
    ),
    (
        FieldSpec(
            "nomad.alloc.taskStates.type",
            "string",
            "the state of the task on the allocations.",
            is_list=True,
        ),
        _drivers,
    ),
    (
        FieldSpec("nomad.alloc.res.cpu", "uint", "the CPU required to run this allocation in MHz."),
        _resource("CPU"),
    ),
    (
        FieldSpec(
            "nomad.alloc.res.cores",
            "uint",
            "the number of CPU cores to reserve for the allocation.",
        ),
        _resource("Cores"),
    ),
    (
        FieldSpec(
            "nomad.alloc.res.diskMB", "uint", "the amount of disk required for the allocation."
        ),
        _resource("DiskMB"),
    ),
    (
        FieldSpec(
            "nomad.alloc.res.iops", "uint", "the number of iops required for the allocation."
        ),
        _resource("IOPS"),
    ),
    (
        FieldSpec(
            "nomad.alloc.res.memoryMB", "uint", "the memory required in MB for the allocation."
        ),
        _resource("MemoryMB"),
    ),
    (
        FieldSpec(
            "nomad.alloc.res.memoryMaxMB", "uint", "the maximum memory the allocation may use."
        ),
        _resource("MemoryMaxMB"),
    ),
    (
        FieldSpec("nomad.event.topic", "string", "the topic of the nomad event."),
        _event_text("Topic"),
    ),
    (FieldSpec("nomad.event.type", "string", "the type of the nomad event."), _event_text("Type")),
)


def build_catalog() -> FieldCatalog:
    """The plugin's 17 fields, in its order, after the evt.* and json.* fields."""
    catalog = plugin_catalog(SOURCE, PLUGIN)
    for spec, extract in _FIELDS:
        catalog.add_simple(spec, on_object(extract))
    return catalog


register_source(SOURCE, build_catalog)
register_format(RecordFormat(SOURCE, split, arrival_time))
provide_plugin(PLUGIN, PLUGIN_VERSION)
