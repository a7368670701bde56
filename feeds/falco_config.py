"""Falco's falco.yaml (and its `config_files` fragments) read for `falconet run --falco-config`.

Read as Falco reads it: the main file, then each `config_files` entry in order (a file, or every
regular file of a directory in lexicographic order), merged top-level key by top-level key with
the entry's strategy (`append`: sequences appended, other values replaced; `override`; `add-only`).
Missing entries are skipped, as Falco does. Without a `config_files` key, a `config.d` directory
next to the file is read (the layout of /etc/falco).

What falconet implements becomes run options; Falco keys falconet has no use for are reported
as ignored, one line each; any other key is an error naming the closest Falco key. Every file is
size-capped and alias-expansion-checked (engine.yamlfile.safe_load).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.append_output import AppendOutput
from engine.output import JsonOptions, Priority
from engine.ruleset import SelectionStep
from engine.yamlfile import safe_load
from feeds.config import Config, with_file_values
from feeds.errors import ConfigError

MAX_FILE_BYTES = 4 * 1024 * 1024  # one falco.yaml or fragment (upstream's is ~60 KiB)
MAX_FRAGMENTS = 256  # config.d files read in all
MAX_NODES = 200_000  # YAML nodes after alias expansion, per file

# Falco's keys falconet implements (the rest of Falco's schema is IGNORED below).
IMPLEMENTED = (
    "config_files",
    "watch_config_files",
    "rules_files",
    "rules_file",
    "rules",
    "load_plugins",
    "plugins",
    "time_format_iso_8601",
    "priority",
    "json_output",
    "json_include_output_property",
    "json_include_message_property",
    "json_include_output_fields_property",
    "json_include_tags_property",
    "rule_matching",
    "outputs_queue",
    "append_output",
    "stdout_output",
    "syslog_output",
    "file_output",
    "http_output",
    "program_output",
    "webserver",
    "metrics",
    "syscall_event_drops",
    "base_syscalls",
)
# Valid Falco keys (falco.yaml and its JSON schema, plus keys older releases documented) that
# change nothing in falconet: reported, never an error, so an operator's file carries over.
IGNORED = (
    "engine",
    "capture",
    "plugins_hostinfo",
    "buffer_format_base64",
    "buffered_outputs",
    "static_fields",
    "log_stderr",
    "log_syslog",
    "log_level",
    "libs_logger",
    "output_timeout",
    "syscall_event_timeouts",
    "falco_libs",
    "rule_files",
    "grpc",
    "grpc_output",
    "container_engines",
    "metadata_download",
    "modern_bpf",
    "syscall_buf_size_preset",
    "syscall_drop_failed_exit",
)
# The sub-keys of the sections read here (Falco's schema); others are misspellings.
SUBKEYS: dict[str, tuple[str, ...]] = {
    "stdout_output": ("enabled",),
    "syslog_output": ("enabled",),
    "file_output": ("enabled", "keep_alive", "filename"),
    "http_output": (
        "enabled",
        "url",
        "user_agent",
        "insecure",
        "ca_cert",
        "ca_bundle",
        "ca_path",
        "mtls",
        "client_cert",
        "client_key",
        "echo",
        "compress_uploads",
        "keep_alive",
        "max_consecutive_timeouts",
    ),
    "program_output": ("enabled", "keep_alive", "program"),
    "webserver": (
        "enabled",
        "threadiness",
        "listen_port",
        "listen_address",
        "k8s_healthz_endpoint",
        "prometheus_metrics_enabled",
        "ssl_enabled",
        "ssl_certificate",
    ),
    "outputs_queue": ("capacity",),
    "base_syscalls": ("custom_set", "repair", "all"),
    "syscall_event_drops": ("threshold", "actions", "rate", "max_burst", "simulate_drops"),
}
SYSLOG_SOCKET = "/dev/log"
STRATEGIES = ("append", "override", "add-only")
# `falconet run` options a falco.yaml value stands in for when the option is not given.
OPTION_NAMES = ("rules", "output", "min_priority", "time_format", "rule_matching", "web", "no_web")


@dataclass
class FalcoRunSettings:
    """What falco.yaml sets for a run: run() option values, RunRequest fields, sink specs,
    layered settings, the files read and one line per key ignored."""

    path: Path
    files: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # by run()'s parameter name
    request: dict[str, Any] = field(default_factory=dict)  # RunRequest fields
    steps: list[SelectionStep] = field(default_factory=list)  # the `rules:` selection
    sinks: list[dict[str, Any]] = field(default_factory=list)  # engine.sinks specs
    settings: dict[str, Any] = field(default_factory=dict)  # feeds.config keys
    watch: bool = True
    ignored: list[str] = field(default_factory=list)
    appends: list[AppendOutput] = field(default_factory=list)  # append_output
    origins: dict[str, str] = field(default_factory=dict)  # top-level key -> file that set it

    @property
    def selection(self) -> dict[str, Any]:
        """engine.runner.Selection fields: the `rules:` steps and append_output."""
        return {"config_steps": tuple(self.steps), "append_output": tuple(self.appends)}

    def pick(self, name: str, current: Any, given: set[str]) -> Any:
        """An option's value: the command line's when given there, else falco.yaml's."""
        return current if name in given or name not in self.options else self.options[name]

    def sink_specs(self, given: set[str]) -> list[dict[str, Any]]:
        """falco.yaml's outputs, less those an explicit --output-* flag replaces."""
        return [s for s in self.sinks if f"output_{s['type']}" not in given]

    def where(self, key: str) -> str:
        """The file that set a key (its top-level part): the main file or a fragment."""
        return self.origins.get(key.split(".", 1)[0].split("[", 1)[0], str(self.path))

    def layered(self, config: Config) -> Config:
        return with_file_values(config, self.settings, self.path)


def read_falco_config(path: str | Path, replay: bool = False) -> FalcoRunSettings:
    """falco.yaml at `path` with its fragments, checked; raises ConfigError naming file and key.
    `replay`: Falco starts no webserver for a capture file, and neither does this."""
    main = Path(path)
    merged = _load(main)
    origins = dict.fromkeys(merged, str(main))
    files = [str(main)]
    for fragment, strategy in _fragments(main, merged.get("config_files")):
        values = _load(fragment)
        if "config_files" in values:
            raise ConfigError(
                f"{fragment}: config_files: not allowed in an included file",
                "list every fragment in the main falco.yaml (Falco does not nest them)",
            )
        files.append(str(fragment))
        _merge(merged, values, strategy, fragment, origins)
        if len(files) > MAX_FRAGMENTS:
            raise ConfigError(
                f"{main}: config_files: more than {MAX_FRAGMENTS} files", "merge some fragments"
            )
    result = FalcoRunSettings(path=main, files=files, origins=origins)
    for key in merged:
        _check_key(key, merged[key], Path(origins[key]))
    _interpret(merged, result, main, replay)
    return result


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(
            f"cannot read {path}: {error.strerror or error}", "check --falco-config's path"
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", "is it a falco.yaml?"
        )
    try:
        data = safe_load(raw.decode(), MAX_NODES)
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})", "save as UTF-8") from None
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        raise ConfigError(f"{path}: not valid YAML ({problem})", "fix the YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping", "see Falco's falco.yaml")
    return {key: _with_env(value) for key, value in data.items()}


def _with_env(value: Any) -> Any:
    """Falco resolves `${VAR}` in every scalar of its configuration when loading it (and
    `$${...}` to a literal `${...}`); the result is then read with the key's type."""
    if isinstance(value, dict):
        return {key: _with_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_env(item) for item in value]
    if not isinstance(value, str) or "$" not in value:
        return value
    expanded = expand_env(value)
    if expanded == value:
        return value
    try:  # `enabled: ${FLAG}` with FLAG=true is a boolean, as yaml-cpp reads it
        typed = yaml.safe_load(expanded) if "\n" not in expanded else expanded
    except yaml.YAMLError:
        return expanded
    return typed if isinstance(typed, bool | int | float) else expanded


def expand_env(text: str) -> str:
    """Falco's `${VAR}` substitution: unset variables become empty; `$${` is a literal `${`;
    a `$` followed by neither ends the scan, as in Falco. Substituted text is not scanned
    again (Falco's would loop forever on VAR='${VAR}')."""
    position = text.find("$")
    while position != -1:
        rest = text[position:]
        if rest.startswith("${"):
            end = rest.find("}")
            if end == -1:
                break
            value = os.environ.get(rest[2:end], "")
            text = text[:position] + value + text[position + end + 1 :]
            position += len(value)
        elif rest.startswith("$${"):
            if "}" not in rest:
                break
            text = text[:position] + text[position + 1 :]
            position += 2
        else:
            break
        position = text.find("$", position)
    return text


def _fragments(main: Path, entries: Any) -> list[tuple[Path, str]]:
    """The fragment files in merge order, each with its strategy."""
    if entries is None:
        entries = [str(main.parent / "config.d")]
    if not isinstance(entries, list):
        raise ConfigError(f"{main}: config_files: must be a list", "e.g. [/etc/falco/config.d]")
    found: list[tuple[Path, str]] = []
    for entry in entries:
        if isinstance(entry, str):
            where, strategy = entry, "append"
        elif isinstance(entry, dict) and isinstance(entry.get("path"), str):
            where, strategy = entry["path"], entry.get("strategy", "append")
            if strategy not in STRATEGIES:
                raise ConfigError(
                    f"{main}: config_files: strategy {strategy!r} unknown",
                    f"use {', '.join(STRATEGIES)}",
                )
        else:
            raise ConfigError(
                f"{main}: config_files: entry {entry!r} is neither a path nor {{path, strategy}}",
                "e.g. - path: /etc/falco/config.d\n  strategy: override",
            )
        target = Path(where)
        if target.resolve() == main.resolve():
            raise ConfigError(f"{main}: config_files: includes the main file", "remove it")
        if target.is_file():
            found.append((target, strategy))
        elif target.is_dir():
            names = sorted(str(p) for p in target.iterdir() if p.is_file())
            if len(names) > MAX_FRAGMENTS:
                raise ConfigError(
                    f"{target}: more than {MAX_FRAGMENTS} config files", "merge some fragments"
                )
            found += [(Path(name), strategy) for name in names]
        # absent: skipped, as Falco does
    return found


def _merge(
    merged: dict[str, Any],
    values: Mapping[str, Any],
    strategy: str,
    where: Path,
    origins: dict[str, str],
) -> None:
    # Falco merges top-level keys only: a fragment's `file_output` replaces the whole section.
    for key, value in values.items():
        if strategy == "add-only" and key in merged:
            continue
        origins[key] = str(where)
        if strategy == "append" and isinstance(value, list) and key in merged:
            if not isinstance(merged[key], list):
                raise ConfigError(f"{where}: {key}: a list, not mergeable", "match the main file")
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value


def _check_key(key: Any, value: Any, main: Path) -> None:
    if key in IMPLEMENTED or key in IGNORED:
        if key in SUBKEYS and value is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{main}: {key}: must be a mapping", f"see falco.yaml's {key}")
            for inner in value:
                if inner not in SUBKEYS[key]:
                    raise ConfigError(
                        f"{main}: {key}.{inner}: not a Falco key{_hint(inner, SUBKEYS[key])}",
                        f"{key} takes: {', '.join(SUBKEYS[key])}",
                    )
        return
    raise ConfigError(
        f"{main}: {key}: not a Falco key{_hint(str(key), (*IMPLEMENTED, *IGNORED))}",
        "see the keys of Falco's falco.yaml",
    )


def _hint(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _interpret(values: dict[str, Any], out: FalcoRunSettings, main: Path, replay: bool) -> None:
    def typed(key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        node: Any = values
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return default
        if not isinstance(node, kind) or (kind is int and isinstance(node, bool)):
            name = kind.__name__ if isinstance(kind, type) else kind[0].__name__
            raise ConfigError(
                f"{out.where(key)}: {key}: must be a {name}, got {node!r}", "see falco.yaml"
            )
        return node

    for key in values:
        if key in IGNORED:
            out.ignored.append(f"{out.where(key)}: {key}: ignored (no effect in falconet)")
    _rules(values, typed, out, main)
    if (json := typed("json_output", bool)) is not None:
        out.options["output"] = "json" if json else "text"
    if (iso := typed("time_format_iso_8601", bool)) is not None:
        out.options["time_format"] = "iso8601" if iso else None
    if (priority := typed("priority", str)) is not None:
        try:
            out.options["min_priority"] = Priority.parse(priority).falco_name.lower()
        except ValueError as error:
            raise ConfigError(
                f"{out.where('priority')}: priority: {error}", "e.g. priority: warning"
            ) from None
    if (matching := typed("rule_matching", str)) is not None:
        if matching not in ("first", "all"):
            raise ConfigError(
                f"{out.where('rule_matching')}: rule_matching: {matching!r}", "use first or all"
            )
        out.options["rule_matching"] = matching
    defaults = JsonOptions()
    out.request["json_options"] = JsonOptions(
        include_output=typed("json_include_output_property", bool, defaults.include_output),
        include_output_fields=typed(
            "json_include_output_fields_property", bool, defaults.include_output_fields
        ),
        include_tags=typed("json_include_tags_property", bool, defaults.include_tags),
        include_message=typed("json_include_message_property", bool, defaults.include_message),
    )
    out.request["stdout"] = typed("stdout_output.enabled", bool, True)
    _outputs(values, typed, out, main)
    _services(values, typed, out, main, replay)
    _settings(values, typed, out, main)
    out.watch = typed("watch_config_files", bool, True)


def _rules(values: dict[str, Any], typed: Any, out: FalcoRunSettings, main: Path) -> None:
    plural, singular = typed("rules_files", list), typed("rules_file", list)
    if plural is not None and singular is not None:
        raise ConfigError(
            f"{out.where('rules_files')}: both rules_files and rules_file are set",
            "keep rules_files (plural)",
        )
    files = plural if plural is not None else singular
    if files is not None:
        # Missing entries are skipped, as Falco does; directories give their .yaml/.yml files.
        out.options["rules"] = [str(f) for f in files if Path(str(f)).exists()]
        out.ignored += [
            f"{out.where('rules_files')}: rules_files: {f} is absent: skipped"
            for f in files
            if not Path(str(f)).exists()
        ]
    for index, entry in enumerate(typed("rules", list, [])):
        where = f"{out.where('rules')}: rules[{index}]"
        action, target = _single(entry, ("enable", "disable"), where)
        kind, name = _single(target, ("rule", "tag"), f"{where}.{action}")
        out.steps.append(SelectionStep(enable=action == "enable", **{kind: str(name)}))


def _single(entry: Any, keys: tuple[str, str], where: str) -> tuple[str, Any]:
    """The one `key: value` of a `rules:` entry or of its enable/disable mapping."""
    if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in keys:
        raise ConfigError(
            f"{where}: must be a mapping with one of {' or '.join(keys)}",
            "e.g. - disable: {tag: network}",
        )
    key, value = next(iter(entry.items()))
    return key, value


def _outputs(values: dict[str, Any], typed: Any, out: FalcoRunSettings, main: Path) -> None:
    if typed("file_output.enabled", bool, False):
        out.sinks.append(
            {
                "type": "file",
                "path": typed("file_output.filename", str, "./events.txt"),
                "keep_alive": typed("file_output.keep_alive", bool, False),
            }
        )
    if typed("program_output.enabled", bool, False):
        program = typed("program_output.program", str, "")
        if not program:
            raise ConfigError(
                f"{out.where('program_output')}: program_output.program: empty", "name the program"
            )
        spec = {"type": "program", "command": program}
        if not typed("program_output.keep_alive", bool, False):
            spec["keep_alive"] = False
        out.sinks.append(spec)
    if typed("syslog_output.enabled", bool, True):  # Falco's default: on
        if Path(SYSLOG_SOCKET).exists():
            out.sinks.append({"type": "syslog", "address": SYSLOG_SOCKET})
        else:
            out.ignored.append(
                f"{out.where('syslog_output')}: syslog_output: ignored ({SYSLOG_SOCKET} is absent)"
            )
    if typed("http_output.enabled", bool, False):
        url = typed("http_output.url", str, "")
        if not url:
            raise ConfigError(
                f"{out.where('http_output')}: http_output.url: empty", "the collector's URL"
            )
        spec = {
            "type": "http",
            "url": url,
            "headers": {"User-Agent": typed("http_output.user_agent", str, "falcosecurity/falco")},
            "insecure": typed("http_output.insecure", bool, False),
            "compress": typed("http_output.compress_uploads", bool, False),
        }
        # As curl under Falco: ca_cert or ca_bundle is the CA file; ca_path the directory.
        ca_file = typed("http_output.ca_cert", str, "") or typed("http_output.ca_bundle", str, "")
        spec["ca_file"] = ca_file or None
        spec["ca_path"] = typed("http_output.ca_path", str, "") or None
        if typed("http_output.mtls", bool, False):
            spec["client_cert"] = typed("http_output.client_cert", str, "")
            spec["client_key"] = typed("http_output.client_key", str, "")
        out.sinks.append(spec)
        for key in ("echo", "keep_alive", "max_consecutive_timeouts"):
            if typed(f"http_output.{key}", (bool, int)) is not None:
                out.ignored.append(
                    f"{out.where('http_output')}: http_output.{key}: ignored "
                    "(no effect in falconet)"
                )
    for index, entry in enumerate(typed("append_output", list, [])):
        appended = _append_entry(entry, f"{out.where('append_output')}: append_output[{index}]")
        if appended is not None:
            out.appends.append(appended)


def _append_entry(entry: Any, where: str) -> AppendOutput | None:
    """One append_output entry (Falco's schema); None when it only sets suggested_output
    (fields plugins suggest: none in falconet's built-in sources)."""
    keys = ("match", "extra_output", "extra_fields", "suggested_output")
    if not isinstance(entry, dict) or not set(entry) <= set(keys):
        raise ConfigError(f"{where}: a mapping of {', '.join(keys)}", "see falco.yaml")
    match = entry.get("match") or {}
    if not isinstance(match, dict) or not set(match) <= {"source", "tags", "rule"}:
        raise ConfigError(f"{where}.match: a mapping of source, tags, rule", "see falco.yaml")
    tags = match.get("tags") or []
    extra_output = entry.get("extra_output") or ""
    fields: list[tuple[str, str]] = []
    for item in entry.get("extra_fields") or []:
        if isinstance(item, str):
            fields.append((item, "%" + item))
        elif isinstance(item, dict) and all(isinstance(v, str) for v in item.values()):
            fields += [(str(name), value) for name, value in item.items()]
        else:
            raise ConfigError(f"{where}.extra_fields: {item!r}", "a field name or NAME: FORMAT")
    if not isinstance(tags, list) or not isinstance(extra_output, str):
        raise ConfigError(f"{where}: match.tags is a list, extra_output a string", "see falco.yaml")
    if not extra_output and not fields:
        return None
    return AppendOutput(
        source=None if match.get("source") is None else str(match["source"]),
        rule=None if match.get("rule") is None else str(match["rule"]),
        tags=tuple(str(t) for t in tags),
        extra_output=extra_output,
        extra_fields=tuple(fields),
    )


def _services(
    values: dict[str, Any], typed: Any, out: FalcoRunSettings, main: Path, replay: bool
) -> None:
    if "webserver" in values and not replay:  # Falco serves nothing for a capture file either
        if typed("webserver.enabled", bool, True):
            host = typed("webserver.listen_address", str, "0.0.0.0")
            port = typed("webserver.listen_port", int, 8765)
            out.options["web"] = f"{host}:{port}"
        else:
            out.options["no_web"] = True
    endpoint = typed("webserver.k8s_healthz_endpoint", str, "/healthz")
    if endpoint != "/healthz":
        out.ignored.append(
            f"{out.where('webserver')}: webserver.k8s_healthz_endpoint: ignored "
            "(falconet serves /healthz)"
        )
    if typed("metrics.enabled", bool) is not None:
        out.ignored.append(
            f"{out.where('metrics')}: metrics: ignored "
            "(falconet serves /metrics on the webserver address)"
        )


def _settings(values: dict[str, Any], typed: Any, out: FalcoRunSettings, main: Path) -> None:
    """Keys falconet.yaml shares with falco.yaml: laid over the layered configuration."""
    for section in ("base_syscalls", "syscall_event_drops"):
        for inner, value in (typed(section, dict, {}) or {}).items():
            if value is not None:
                out.settings[f"{section}.{inner}"] = value
    capacity = typed("outputs_queue.capacity", int, 0)
    if capacity < 0:
        raise ConfigError(
            f"{out.where('outputs_queue')}: outputs_queue.capacity: {capacity} < 0",
            "0 is unbounded",
        )
    if capacity:  # Falco's 0 (unbounded) keeps falconet's bounded default
        out.settings["outputs.queue_capacity"] = capacity
    if "plugins" in values:
        out.settings["plugins"] = typed("plugins", list, [])
    if "load_plugins" in values:
        out.settings["load_plugins"] = typed("load_plugins", list, [])
