"""The `github` source: GitHub webhook deliveries with the github plugin's `github.*` fields
(plugins/github/pkg/github/extract.go). The plugin stores the delivery's X-GitHub-Event header
as `webhook_type` in the document, and its server adds `files` (secrets found in push diffs) and
`workflow_miner_detections` (miners in workflow files) after asking GitHub's API; those two are
read when present in the event (falconet does not call GitHub's API).
Most fields read as "" rather than absent when the document lacks them, as upstream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.fields import FieldCatalog, register_source
from engine.sources import provide_plugin
from engine.sources.formats import RecordFormat, arrival_time, register_format, single_or_array
from engine.sources.json_source import plugin_catalog
from engine.sources.jsonpath import getter, string_or_empty

SOURCE = "github"
PLUGIN = "github"
PLUGIN_VERSION = "0.10.1"
WEBHOOK_TYPE_KEY = "webhook_type"
GITHUB_PREFIX = "https://github.com/"

Data = dict[str, Any]


def _text(*keys: str) -> Callable[[Data], str]:
    get = getter(*keys)
    return lambda data: string_or_empty(get(data))


def _u64(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _list(value: Any) -> list[Any]:
    return value if type(value) is list else []


def _commit_files(kind: str) -> Callable[[Data], str]:
    """Files added/modified/removed by the pushed commits, comma separated (per commit, as
    upstream concatenates them without a separator between commits)."""

    def extract(data: Data) -> str:
        text = ""
        for commit in _list(data.get("commits")):
            for name in _list(commit.get(kind)) if type(commit) is dict else ():
                text += string_or_empty(name) + ","
            text = text.removesuffix(",")
        return text

    return extract


def _scanned_files(data: Data) -> list[Any] | None:
    files = data.get("files")
    return files if type(files) is list else None


def has_secrets(data: Data) -> str | None:
    files = _scanned_files(data)
    if files is None:
        return ""
    return "true" if any(type(f) is dict and _list(f.get("matches")) for f in files) else "false"


def _match_field(
    render: Callable[[dict[str, Any], dict[str, Any]], str],
) -> Callable[[Data], str | None]:
    def extract(data: Data) -> str | None:
        files = _scanned_files(data)
        if files is None:
            return None
        text = ""
        for scanned in files:
            if type(scanned) is not dict:
                continue
            for match in _list(scanned.get("matches")):
                if type(match) is dict:
                    text += render(scanned, match) + ","
            text = text.removesuffix(",")
        return text

    return extract


def _secret_link(data: Data) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    repo = string_or_empty(getter("repository", "html_url")(data))
    head = string_or_empty(getter("head_commit", "id")(data))
    return lambda scanned, match: (
        f"{repo}/blob/{head}/{string_or_empty(scanned.get('name'))}/#L{_u64(match.get('line'))}"
    )


def secret_links(data: Data) -> str | None:
    return _match_field(_secret_link(data))(data)


_miner_matches = getter("workflow_miner_detections", "matches")


def has_miners(data: Data) -> str | None:
    matches = _miner_matches(data)
    if type(matches) is not list:
        return None
    return "true" if matches else "false"


def miner_types(data: Data) -> str | None:
    matches = _miner_matches(data)
    if type(matches) is not list:
        return None
    kinds = dict.fromkeys(string_or_empty(m.get("type")) for m in matches if type(m) is dict)
    return ",".join(kinds)


def repo_public(data: Data) -> str:
    return "false" if getter("repository", "private")(data) is True else "true"


def webhook_id(data: Data) -> str:
    return str(_u64(getter("hook", "id")(data)))


_FIELDS: tuple[tuple[str, str, Callable[[Data], str | None]], ...] = (
    ("github.type", "Message type, e.g. 'star' or 'repository'.", _text(WEBHOOK_TYPE_KEY)),
    ("github.action", "The github event action, qualifying github.type.", _text("action")),
    ("github.user", "Name of the user that triggered the event.", _text("sender", "login")),
    ("github.repo", "(deprecated) URL of the git repository.", _text("repository", "html_url")),
    ("github.repo.url", "URL of the git repository.", _text("repository", "html_url")),
    (
        "github.repo.name",
        "Name of the git repository (owner/name).",
        lambda d: _text("repository", "html_url")(d).removeprefix(GITHUB_PREFIX),
    ),
    (
        "github.repo.description",
        "Description of the repository.",
        _text("repository", "description"),
    ),
    (
        "github.org",
        "Name of the organization the repository belongs to.",
        _text("organization", "login"),
    ),
    ("github.owner", "Name of the repository's owner.", _text("repository", "owner", "login")),
    ("github.repo.public", "'true' if the repository is public, 'false' otherwise.", repo_public),
    (
        "github.collaborator.name",
        "The member name for messages adding or removing users.",
        _text("member", "login"),
    ),
    (
        "github.collaborator.role",
        "The member role for messages adding or removing users.",
        _text("changes", "permission", "to"),
    ),
    ("github.webhook.id", "When a new webhook has been created, the webhook id.", webhook_id),
    (
        "github.webhook.type",
        "When a new webhook has been created, the webhook type.",
        _text("hook", "type"),
    ),
    (
        "github.commit.added",
        "Comma separated list of files that have been added.",
        _commit_files("added"),
    ),
    (
        "github.commit.modified",
        "Comma separated list of files that have been modified.",
        _commit_files("modified"),
    ),
    (
        "github.commit.removed",
        "Comma separated list of files that have been removed.",
        _commit_files("removed"),
    ),
    (
        "github.diff.has_secrets",
        "For push messages, 'true' if a commit diff contains a secret.",
        has_secrets,
    ),
    (
        "github.diff.committed_secrets.desc",
        "For push messages, the description of each committed secret, comma separated.",
        _match_field(lambda scanned, match: string_or_empty(match.get("desc"))),
    ),
    (
        "github.diff.committed_secrets.files",
        "For push messages, the file of each committed secret, comma separated.",
        _match_field(lambda scanned, match: string_or_empty(scanned.get("name"))),
    ),
    (
        "github.diff.committed_secrets.lines",
        "For push messages, the line of each committed secret, comma separated.",
        _match_field(lambda scanned, match: str(_u64(match.get("line")))),
    ),
    (
        "github.diff.committed_secrets.links",
        "For push messages, a source link for each committed secret, comma separated.",
        secret_links,
    ),
    (
        "github.workflow.has_miners",
        "For workflow_run messages, 'true' if a miner was detected.",
        has_miners,
    ),
    (
        "github.workflow.miners.type",
        "For workflow_run messages, the detected miner types, comma separated.",
        miner_types,
    ),
    (
        "github.workflow.filename",
        "For workflow_run messages, the workflow definition file.",
        _text("workflow", "path"),
    ),
)


def build_catalog() -> FieldCatalog:
    return plugin_catalog(SOURCE, PLUGIN, _FIELDS)


def unwrap_delivery(record: Any) -> Any:
    """A delivery as GitHub's API returns it ({"event", "request": {"headers", "payload"}}, from
    the webhook's "Recent Deliveries") -> its payload with `webhook_type`; anything else (a
    payload saved with its `webhook_type`) is taken as it is."""
    request = record.get("request") if isinstance(record, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("payload"), dict):
        return record
    headers = request.get("headers") if isinstance(request.get("headers"), dict) else {}
    payload = dict(request["payload"])
    event_type = record.get("event") or headers.get("X-GitHub-Event")
    if event_type:
        payload.setdefault(WEBHOOK_TYPE_KEY, event_type)
    return payload


def deliveries(document: Any) -> list[Any]:
    return [unwrap_delivery(record) for record in single_or_array(document)]


register_source(SOURCE, build_catalog)
# Deliveries carry no event time: the plugin stamps their arrival.
register_format(RecordFormat(SOURCE, deliveries, arrival_time))
provide_plugin(PLUGIN, PLUGIN_VERSION)
