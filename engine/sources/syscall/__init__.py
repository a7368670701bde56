"""The syscall event source: event model, state tracker, field catalogue, capture readers.

Importing this package registers the "syscall" field catalogue and declares the upstream
container plugin it stands in for (stable rules require container >= 0.4.0): container.id comes
from the cgroups, and what only a container runtime knows reads as absent.
"""

from __future__ import annotations

import functools

from engine.fields import register_source
from engine.sources import provide_plugin

SOURCE = "syscall"
# The container plugin release whose fields this source provides (rules 5.x ask for >= 0.4.0).
CONTAINER_PLUGIN_VERSION = "0.4.0"


def _load_catalog():
    from engine.sources.syscall.catalog import build_catalog

    return build_catalog()


def event_type_of(event) -> str:
    """The evt.type a ruleset indexes an event by."""
    return event.type


register_source(SOURCE, _load_catalog)
provide_plugin("container", CONTAINER_PLUGIN_VERSION)


@functools.cache  # the tables are constant; every evt.type constant of every rule asks
def event_names() -> frozenset[str]:
    """Every evt.type value a syscall event can have: the driver event names and the syscall
    names generic events take (what libsinsp accepts on the right of `evt.type =`)."""
    from engine.sources.syscall.eventtable import event_names as table_names
    from engine.sources.syscall.eventtable_data import SYSCALL_NAMES

    return (table_names() | frozenset(SYSCALL_NAMES.values())) - {"NA"}
