"""The `keycloak` source: Keycloak user and admin events with the fields of the community
keycloak plugin (mattiaforc/falco-keycloak-plugin, pkg/fields.go and pkg/extract.go).

Events are what Keycloak itself serialises: `Event`/`EventRepresentation` (user events: `type`,
`clientId`, `userId`, `sessionId`, `ipAddress`, `details`) and `AdminEvent`/
`AdminEventRepresentation` (`authDetails`, `resourceType`, `operationType`, `resourcePath`,
`representation`), both with `id`, `time` (ms), `realmId`, `error`. An event is an admin event
when its `resourceType` is non-empty; as the plugin does, its `representation` (a JSON string) is
parsed into the object `Representation` and the string emptied, so rules read
`json.value[/Representation/username]`.

falconet adds two fields the plugin does not have, for brute-force detection without relying on
Keycloak's own protection: `keycloak.login.failures.countlast[N]` and
`keycloak.login.failures.ip.countlast[N]`, the LOGIN_ERROR events of the same user (or from the
same address) in the realm in the last N seconds, the current one included: per-stream state fed
in arrival order, bounded as the okta counters are (engine.sources.windows).

The transports (webhook endpoint, admin REST API poller) live in keycloak_transport.py.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Any

from engine.fields import ExtractorFactory, FieldCatalog, FieldSpec, register_source
from engine.sources import provide_plugin
from engine.sources.errors import InputFormatError
from engine.sources.formats import RecordFormat, register_format
from engine.sources.json_event import JsonEvent, add_shared, now_ns, on_object
from engine.sources.json_source import plugin_catalog
from engine.sources.jsonpath import getter, string_or_empty
from engine.sources.windows import KeyedWindows, countlast_field

SOURCE = "keycloak"
PLUGIN = "keycloak"
PLUGIN_VERSION = "0.1.0"
LOGIN_ERROR = "LOGIN_ERROR"
# A day of event time, 200 failures per user or address, 10,000 users and addresses.
FAILURES_EXPIRATION_S = 86_400
FAILURES_PER_KEY = 200
FAILURES_MAX_KEYS = 10_000

Data = dict[str, Any]


def is_admin(record: Data) -> bool:
    resource_type = record.get("resourceType")
    return type(resource_type) is str and resource_type != ""


def normalise(record: Data) -> Data:
    """The event as the plugin hands it to extraction: an admin event's `representation`
    string parsed into `Representation` (left as it is when it is not JSON)."""
    if is_admin(record):
        text = record.get("representation")
        if type(text) is str and text:
            try:
                record["Representation"] = json.loads(text)
            except ValueError:
                return record
            record["representation"] = ""
    return record


def split(document: Any) -> Iterable[Data]:
    """One event (the webhook's POST body, a JSON line) or an array of them (an API page)."""
    records = document if type(document) is list else [document]
    for record in records:
        if type(record) is not dict:
            raise InputFormatError("a Keycloak event is a JSON object")
    return [normalise(record) for record in records]


def event_time(record: Data) -> int:
    """`time` (ms since the epoch), as the plugin stamps events; arrival without one."""
    value = record.get("time")
    if type(value) is int and value >= 0:
        return value * 1_000_000
    return now_ns()


def _failure_keys(record: Data) -> tuple[str | None, str | None]:
    """(user key, address key) of a failed login; (None, None) for any other event. A login
    with an unknown username has no userId: the attempted username counts instead."""
    if record.get("type") != LOGIN_ERROR:
        return None, None
    realm = string_or_empty(record.get("realmId"))
    details = record.get("details")
    user = string_or_empty(record.get("userId"))
    if not user and type(details) is dict:
        user = "username:" + string_or_empty(details.get("username"))
    address = string_or_empty(record.get("ipAddress"))
    return (f"{realm}/{user}" if user else None), (f"{realm}/{address}" if address else None)


class LoginFailures:
    """One stream's failed-login timestamps, by user and by address."""

    def __init__(self) -> None:
        self.by_user = KeyedWindows(FAILURES_EXPIRATION_S, FAILURES_PER_KEY, FAILURES_MAX_KEYS)
        self.by_address = KeyedWindows(FAILURES_EXPIRATION_S, FAILURES_PER_KEY, FAILURES_MAX_KEYS)


def observe(event: JsonEvent) -> None:
    if isinstance(event.context, LoginFailures) and type(event.data) is dict:
        user, address = _failure_keys(event.data)
        if user is not None:
            event.context.by_user.record(user, event.time)
        if address is not None:
            event.context.by_address.record(address, event.time)


def _failures(by_address: bool) -> ExtractorFactory:
    def count(failures: LoginFailures, data: Data, time_ns: int, window_s: int) -> int | None:
        key = _failure_keys(data)[1 if by_address else 0]
        if key is None:
            return None
        windows = failures.by_address if by_address else failures.by_user
        return windows.count(key, time_ns, window_s)

    return countlast_field(LoginFailures, count)


def _text(*keys: str) -> Callable[[Data], str]:
    # The plugin unmarshals into Go structs: an absent member reads "", not absent.
    get = getter(*keys)
    return lambda data: string_or_empty(get(data))


def _address(*keys: str) -> Callable[[Data], Any]:
    get = getter(*keys)

    def extract(data: Data) -> Any:
        # net.ParseIP: no value at all when the text is not an address.
        text = get(data)
        if type(text) is not str:
            return None
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            return None

    return extract


_STRINGS: tuple[tuple[str, str, Callable[[Data], str]], ...] = (
    ("keycloak.eventID", "The ID of the keycloak event.", _text("id")),
    ("keycloak.error", "The event error, if any.", _text("error")),
    ("keycloak.realmID", "The ID of the realm.", _text("realmId")),
    ("keycloak.user.eventType", "The event type.", _text("type")),
    ("keycloak.user.clientID", "The ID of the client.", _text("clientId")),
    ("keycloak.user.userID", "The ID of the user.", _text("userId")),
    ("keycloak.user.sessionID", "The user session ID.", _text("sessionId")),
)
_ADMIN_STRINGS: tuple[tuple[str, str, Callable[[Data], str]], ...] = (
    (
        "keycloak.admin.authDetails.realmID",
        "The authentication realmID for this AdminEvent.",
        _text("authDetails", "realmId"),
    ),
    (
        "keycloak.admin.authDetails.clientID",
        "The authentication clientID for this AdminEvent.",
        _text("authDetails", "clientId"),
    ),
    (
        "keycloak.admin.authDetails.userID",
        "The authenticated userID that triggered this AdminEvent.",
        _text("authDetails", "userId"),
    ),
)
_ADMIN_TAIL: tuple[tuple[str, str, Callable[[Data], str]], ...] = (
    (
        "keycloak.admin.resourceType",
        "The resource the AdminEvent was triggered for.",
        _text("resourceType"),
    ),
    (
        "keycloak.admin.operationType",
        "The type of the AdminEvent operation.",
        _text("operationType"),
    ),
    ("keycloak.admin.resourcePath", "The resource path for the AdminEvent.", _text("resourcePath")),
)


def build_catalog() -> FieldCatalog:
    """The plugin's 15 fields, in its order, after the evt.* and json.* fields."""
    catalog = plugin_catalog(SOURCE, PLUGIN, _STRINGS)
    catalog.add_simple(
        FieldSpec("keycloak.user.ipAddress", "ipaddr", "The user IP address."),
        on_object(_address("ipAddress")),
    )
    for name, desc, extract in _ADMIN_STRINGS:
        catalog.add_simple(FieldSpec(name, "string", desc), on_object(extract))
    catalog.add_simple(
        FieldSpec(
            "keycloak.admin.authDetails.ipAddress",
            "ipaddr",
            "The IP address of the user that triggered this AdminEvent.",
        ),
        on_object(_address("authDetails", "ipAddress")),
    )
    for name, desc, extract in _ADMIN_TAIL:
        catalog.add_simple(FieldSpec(name, "string", desc), on_object(extract))
    for name, what, by_address in (
        ("keycloak.login.failures.countlast", "user", False),
        ("keycloak.login.failures.ip.countlast", "address", True),
    ):
        add_shared(
            catalog,
            FieldSpec(
                name,
                "uint",
                f"falconet: failed logins (LOGIN_ERROR) of this event's {what} in the realm in "
                "the last N seconds, this one included: countlast[N]",
                arg="required",
            ),
            _failures(by_address),
        )
    return catalog


register_source(SOURCE, build_catalog)
register_format(RecordFormat(SOURCE, split, event_time, LoginFailures, observe))
provide_plugin(PLUGIN, PLUGIN_VERSION)
