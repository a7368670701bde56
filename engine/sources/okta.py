"""The `okta` source: Okta System Log events with the okta plugin's `okta.*` fields
(plugins/okta/pkg/okta/okta.go), including its per-actor MFA counters
(`okta.mfa.failure.countlast[N]`, `okta.mfa.deny.countlast[N]`: how many such events the same
actor produced in the last N seconds, the current one included).

The counters are real state owned by the stream the events come from (an `MfaCounters` in each
event's `context`), fed once per event, in arrival order, by the stream's EventFactory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.fields import Extractor, ExtractorFactory, FieldCatalog, FieldSpec, register_source
from engine.sources import provide_plugin
from engine.sources.formats import RecordFormat, register_format, rfc3339_at, single_or_array
from engine.sources.json_event import (
    JsonEvent,
    add_shared,
    index_argument,
    on_object,
)
from engine.sources.json_source import plugin_catalog
from engine.sources.jsonpath import getter, string_or_empty
from engine.sources.windows import KeyedWindows, countlast_field

SOURCE = "okta"
PLUGIN = "okta"
PLUGIN_VERSION = "0.12.0"

DENY_PUSH = "user.mfa.okta_verify.deny_push"
AUTH_VIA_MFA = "user.authentication.auth_via_mfa"
# The plugin's defaults: keys expire after 84600 s, 200 timestamps per key, 10000 keys.
DEFAULT_EXPIRATION_S = 84_600
DEFAULT_PER_ACTOR = 200
DEFAULT_MAX_KEYS = 10_000

Data = dict[str, Any]


def counter_key(data: Data) -> str | None:
    """The counter an event feeds (event type + actor id), or None if it feeds none."""
    event_type = data.get("eventType")
    outcome = data.get("outcome")
    failed = type(outcome) is dict and outcome.get("result") == "FAILURE"
    if event_type == DENY_PUSH or (event_type == AUTH_VIA_MFA and failed):
        actor = data.get("actor")
        actor_id = string_or_empty(actor.get("id")) if type(actor) is dict else ""
        return f"{event_type}:{actor_id}"
    return None


class MfaCounters:
    """Timestamps of MFA failures/denies per (event type, actor), bounded like the plugin's
    cache (engine.sources.windows): a capped, de-duplicated list per key, keys expiring after
    `expiration_s` of event time without a new entry, and at most `max_keys` keys (the least
    recently fed is dropped)."""

    def __init__(
        self,
        expiration_s: int = DEFAULT_EXPIRATION_S,
        per_actor: int = DEFAULT_PER_ACTOR,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self._windows = KeyedWindows(expiration_s, per_actor, max_keys)

    def __len__(self) -> int:
        return len(self._windows)

    def record(self, data: Data, time_ns: int) -> None:
        key = counter_key(data)
        if key is not None:
            self._windows.record(key, time_ns)

    def count(self, data: Data, time_ns: int, window_s: int, kind: str | None = None) -> int | None:
        """Entries of this event's counter newer than `window_s` before it; None when the event
        feeds no counter (the plugin then extracts nothing) or, with `kind` (DENY_PUSH or
        AUTH_VIA_MFA), feeds another kind's counter."""
        key = counter_key(data)
        if key is None or (kind is not None and data.get("eventType") != kind):
            return None
        return self._windows.count(key, time_ns, window_s)


def observe(event: JsonEvent) -> None:
    """Feed the stream's counters with each event, in arrival order."""
    if isinstance(event.context, MfaCounters) and type(event.data) is dict:
        event.context.record(event.data, event.time)


def _go_float(value: Any) -> str:
    # fmt's %v of a float64: integral values print without a fraction.
    number = float(value) if type(value) in (int, float) else 0.0
    return str(int(number)) if number.is_integer() and abs(number) < 1e21 else repr(number)


def _text(*keys: str) -> Callable[[Data], str]:
    get = getter(*keys)
    return lambda data: string_or_empty(get(data))


def _number_text(*keys: str) -> Callable[[Data], str]:
    get = getter(*keys)
    return lambda data: str(value) if type(value := get(data)) is int else "0"


def _targets(data: Data) -> list[dict[str, Any]]:
    targets = data.get("target")
    return [t for t in targets if type(t) is dict] if type(targets) is list else []


def _target(kind: str, key: str) -> Callable[[Data], str | None]:
    """The last target of that type (the plugin loops and keeps overwriting)."""

    def extract(data: Data) -> str | None:
        found = None
        for target in _targets(data):
            if target.get("type") == kind:
                found = string_or_empty(target.get(key))
        return found

    return extract


_request_uri = _text("debugContext", "debugData", "requestUri")


def app(data: Data) -> str | None:
    uri = _request_uri(data)
    return uri.split("/")[2] if uri.startswith("/app/") else None


_DEBUG = ("debugContext", "debugData")
_PRINCIPAL = (*_DEBUG, "originalPrincipal")
_AUTH = ("authenticationContext",)
_SECURITY = ("securityContext",)
_GEO = ("client", "geographicalContext")

_FIELDS: tuple[tuple[str, str, Callable[[Data], str | None]], ...] = (
    ("okta.app", "Application", app),
    ("okta.behaviors", "Behaviors", _text(*_DEBUG, "behaviors")),
    ("okta.org", "Organization (the plugin's configuration; empty here)", lambda data: ""),
    ("okta.evt.type", "Event Type", _text("eventType")),
    ("okta.evt.legacytype", "Event Legacy Type", _text("legacyEventType")),
    ("okta.severity", "Severity", _text("severity")),
    ("okta.message", "Message", _text("displayMessage")),
    ("okta.published", "Event Source Timestamp", _text("published")),
    ("okta.logonlysecuritydata", "Log Only Security Data", _text(*_DEBUG, "logOnlySecurityData")),
    ("okta.actor.id", "Actor ID", _text("actor", "id")),
    ("okta.actor.Type", "Actor Type", _text("actor", "type")),
    ("okta.actor.alternateid", "Actor Alternate ID", _text("actor", "alternateId")),
    ("okta.actor.name", "Actor Display Name", _text("actor", "displayName")),
    ("okta.client.zone", "Client Zone", _text("client", "zone")),
    ("okta.client.ip", "Client IP Address", _text("client", "ipAddress")),
    ("okta.client.device", "Client Device", _text("client", "device")),
    ("okta.client.id", "Client ID", _text("client", "id")),
    ("okta.client.geo.city", "Client Geographical City", _text(*_GEO, "city")),
    ("okta.client.geo.state", "Client Geographical State", _text(*_GEO, "state")),
    ("okta.client.geo.country", "Client Geographical Country", _text(*_GEO, "country")),
    ("okta.client.geo.postalcode", "Client Geographical Postal Code", _text(*_GEO, "postalCode")),
    (
        "okta.client.geo.lat",
        "Client Geographical Latitude",
        lambda d: _go_float(getter(*_GEO, "geolocation", "lat")(d)),
    ),
    (
        "okta.client.geo.lon",
        "Client Geographical Longitude",
        lambda d: _go_float(getter(*_GEO, "geolocation", "lon")(d)),
    ),
    ("okta.useragent.os", "Useragent OS", _text("client", "userAgent", "os")),
    ("okta.useragent.browser", "Useragent Browser", _text("client", "userAgent", "browser")),
    ("okta.useragent.raw", "Raw Useragent", _text("client", "userAgent", "rawUserAgent")),
    ("okta.result", "Outcome Result", _text("outcome", "result")),
    ("okta.reason", "Outcome Reason", _text("outcome", "reason")),
    ("okta.transaction.id", "Transaction ID", _text("transaction", "id")),
    ("okta.transaction.type", "Transaction Type", _text("transaction", "type")),
    ("okta.requesturi", "Request URI", _request_uri),
    ("okta.principal.id", "Principal ID", _text(*_PRINCIPAL, "id")),
    ("okta.principal.alternateid", "Principal Alternate ID", _text(*_PRINCIPAL, "alternateId")),
    ("okta.principal.type", "Principal Type", _text(*_PRINCIPAL, "type")),
    ("okta.principal.name", "Principal Name", _text(*_PRINCIPAL, "displayName")),
    ("okta.authentication.step", "Authentication Step", _number_text(*_AUTH, "authenticationStep")),
    ("okta.authentication.sessionid", "External Session ID", _text(*_AUTH, "externalSessionId")),
    (
        "okta.authentication.provider",
        "Authentication Provider",
        _text(*_AUTH, "authenticationProvider"),
    ),
    (
        "okta.authentication.credentialprovider",
        "Credential Provider",
        _text(*_AUTH, "credentialProvider"),
    ),
    ("okta.security.asorg", "Security AS Org", _text(*_SECURITY, "asOrg")),
    ("okta.security.isp", "Security ISP", _text(*_SECURITY, "isp")),
    ("okta.security.domain", "Security Domain", _text(*_SECURITY, "domain")),
    ("okta.security.isproxy", "Is Proxy", _text(*_SECURITY, "isProxy")),
    ("okta.target.user.id", "Target User ID", _target("User", "id")),
    ("okta.target.user.alternateid", "Target User Alternate ID", _target("User", "alternateId")),
    ("okta.target.user.name", "Target User Name", _target("User", "displayName")),
    ("okta.target.group.id", "Target Group ID", _target("UserGroup", "id")),
    (
        "okta.target.group.alternateid",
        "Target Group Alternate ID",
        _target("UserGroup", "alternateId"),
    ),
    ("okta.target.group.name", "Target Group Name", _target("UserGroup", "displayName")),
    (
        "okta.target.app.alternateid",
        "Target App Alternate ID",
        _target("AppInstance", "alternateId"),
    ),
)


def _display_names(arg: str | None) -> Extractor:
    index = index_argument(arg)

    def extract(data: Data) -> str | None:
        names = [string_or_empty(target.get("displayName")) for target in _targets(data)]
        if not names:
            return None
        if index is None:
            return "(" + ",".join(names) + ")"
        return names[index] if index < len(names) else None

    return on_object(extract)


def _countlast(kind: str) -> ExtractorFactory:
    # Upstream gives both fields the count of whichever kind the current event is, so a run of
    # MFA failures also fires the "denied pushes" rule; each field counts its own kind here.
    return countlast_field(
        MfaCounters,
        lambda counters, data, time_ns, window_s: counters.count(data, time_ns, window_s, kind),
    )


def build_catalog() -> FieldCatalog:
    catalog = plugin_catalog(SOURCE, PLUGIN, _FIELDS)
    catalog.add_simple(
        FieldSpec("okta.security.asnumber", "uint", "Security AS Number"),
        on_object(lambda d: v if type(v := getter(*_SECURITY, "asNumber")(d)) is int else 0),
    )
    add_shared(
        catalog,
        FieldSpec("okta.targets.displayName", "string", "Targets Display Names", arg="optional"),
        _display_names,
    )
    for kind, what, event_type in (
        ("failure", "MFA failures", AUTH_VIA_MFA),
        ("deny", "MFA push denies", DENY_PUSH),
    ):
        add_shared(
            catalog,
            FieldSpec(
                f"okta.mfa.{kind}.countlast",
                "uint",
                f"Count of this actor's {what} in the last N seconds: countlast[N]",
                arg="required",
            ),
            _countlast(event_type),
        )
    return catalog


register_source(SOURCE, build_catalog)
# The plugin stamps events with `published` (the System Log API always sets it).
register_format(
    RecordFormat(
        SOURCE, single_or_array, rfc3339_at("published", or_arrival=True), MfaCounters, observe
    )
)
provide_plugin(PLUGIN, PLUGIN_VERSION)
