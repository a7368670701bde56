"""`falconet.lock`: what each requested reference resolved to, reviewable in git.

YAML in a stable order (keys sorted, one artifact per block) so a change reads as a small diff:

    lock_version: 1
    refs:
      falco-rules@^5:          # as the user asked for it
        name: falco-rules
        version: 5.1.0
        digest: sha256:...
        dependencies: [container]
    artifacts:                 # every artifact of the resolution, requested or not
      container: {version: 0.4.1, digest: sha256:..., reference: ..., dependencies: []}

`install --locked` installs exactly `artifacts[*].reference` at their digests and never resolves;
a plain `install` keeps every locked version that still satisfies the constraints, and
`install --update NAME` re-resolves NAME (and its dependencies) to the newest allowed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from feeds.errors import ConfigError, NotFoundError
from feeds.plan import Plan
from feeds.solver import Resolution
from feeds.versions import Version, parse_version

LOCK_FILE_NAME = "falconet.lock"
LOCK_VERSION = 1
_HEADER = (
    "# falconet.lock: written by `falconet artifact install` (or `resolve --write-lock`).\n"
    "# Commit it and review changes;"
    " `install --locked` installs exactly these digests.\n"
)


@dataclass(frozen=True)
class LockedArtifact:
    name: str
    version: str
    digest: str | None
    reference: str | None
    dependencies: tuple[str, ...] = ()
    provided_by_engine: bool = False

    def to_yaml_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.version}
        if self.provided_by_engine:
            data["provided_by_engine"] = True
        else:
            data["digest"] = self.digest
            data["reference"] = self.reference
        data["dependencies"] = list(self.dependencies)
        return data


@dataclass(frozen=True)
class LockFile:
    refs: dict[str, str]  # requested ref -> artifact name
    artifacts: dict[str, LockedArtifact]

    def artifact_for(self, ref: str) -> LockedArtifact:
        if ref not in self.refs:
            raise NotFoundError(
                f"{ref} is not in {LOCK_FILE_NAME}",
                "run install without --locked to resolve it and update the lock file",
            )
        return self.artifacts[self.refs[ref]]

    def closure(self, refs: Iterable[str]) -> list[LockedArtifact]:
        """The locked artifacts `refs` need (themselves and their dependencies), by name."""
        names: set[str] = set()
        stack = [self.artifact_for(ref).name for ref in refs]
        while stack:
            name = stack.pop()
            if name not in names:
                names.add(name)
                stack.extend(self.artifacts[name].dependencies)
        return [self.artifacts[name] for name in sorted(names)]

    def locked_versions(self, unlocked: Iterable[str] = ()) -> dict[str, Version]:
        """The version of every locked artifact except `unlocked` and what they depend on
        (install --update NAME: a new NAME may need newer dependencies). The solver prefers
        these versions while they satisfy the constraints."""
        wanted = set(unlocked)
        unknown = sorted(wanted - set(self.artifacts))
        if unknown:
            raise NotFoundError(
                f"{', '.join(unknown)} not in {LOCK_FILE_NAME}",
                f"locked artifacts: {', '.join(sorted(self.artifacts)) or 'none'}",
            )
        free = wanted | {a.name for name in wanted for a in self._dependencies_of(name)}
        return {
            name: parse_version(artifact.version, f"{LOCK_FILE_NAME}: {name} version")
            for name, artifact in self.artifacts.items()
            if name not in free and not artifact.provided_by_engine
        }

    def to_yaml(self) -> str:
        document = {
            "lock_version": LOCK_VERSION,
            "refs": {ref: self._ref_block(name) for ref, name in sorted(self.refs.items())},
            "artifacts": {
                name: artifact.to_yaml_dict() for name, artifact in sorted(self.artifacts.items())
            },
        }
        return _HEADER + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)

    def _ref_block(self, name: str) -> dict[str, Any]:
        artifact = self.artifacts[name]
        return {
            "name": name,
            "version": artifact.version,
            "digest": artifact.digest,
            "dependencies": [a.name for a in self._dependencies_of(name)],
        }

    def _dependencies_of(self, name: str) -> list[LockedArtifact]:
        seen: set[str] = set()
        stack = list(self.artifacts[name].dependencies)
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.artifacts[current].dependencies)
        return [self.artifacts[n] for n in sorted(seen)]

    @classmethod
    def from_yaml(cls, text: str, source: str = LOCK_FILE_NAME) -> LockFile:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"{source} is not valid YAML: {error}", _REGENERATE) from None
        if not isinstance(document, dict) or document.get("lock_version") != LOCK_VERSION:
            raise ConfigError(
                f"{source}: not a falconet lock file (lock_version {LOCK_VERSION} expected)",
                _REGENERATE,
            )
        try:
            artifacts = {
                str(name): _artifact(str(name), body)
                for name, body in (document.get("artifacts") or {}).items()
            }
            ref_blocks = (document.get("refs") or {}).items()
            refs = {str(ref): str(body["name"]) for ref, body in ref_blocks}
        except (KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{source}: malformed entry ({error})", _REGENERATE) from None
        dangling = sorted(
            {n for n in refs.values() if n not in artifacts}
            | {d for a in artifacts.values() for d in a.dependencies if d not in artifacts}
        )
        if dangling:
            raise ConfigError(
                f"{source}: names without an artifacts entry: {', '.join(dangling)}", _REGENERATE
            )
        return cls(refs, artifacts)


_REGENERATE = "delete it and run install to regenerate it"


def _artifact(name: str, body: dict[str, Any]) -> LockedArtifact:
    return LockedArtifact(
        name=name,
        version=str(body["version"]),
        digest=body.get("digest"),
        reference=body.get("reference"),
        dependencies=tuple(str(d) for d in body.get("dependencies") or ()),
        provided_by_engine=bool(body.get("provided_by_engine", False)),
    )


def lock_from(resolution: Resolution, plan: Plan, previous: LockFile | None = None) -> LockFile:
    """The lock after an install: this run's refs and artifacts, merged over the previous lock.

    Artifacts of earlier refs not re-requested are kept, so `install a` then `install b`
    locks both.
    """
    artifacts = dict(previous.artifacts) if previous else {}
    refs = dict(previous.refs) if previous else {}
    for entry in plan.entries:
        selected = resolution.selected[entry.name]
        artifacts[entry.name] = LockedArtifact(
            name=entry.name,
            version=entry.version,
            digest=entry.digest,
            reference=entry.reference,
            dependencies=selected.dependencies,
            provided_by_engine=selected.provided_by_engine,
        )
    for request in resolution.requests:
        if not request.installed:
            refs[request.label] = request.name
    return _without_unreachable(LockFile(refs, artifacts))


def _without_unreachable(lock: LockFile) -> LockFile:
    """Drop artifacts no locked ref needs any more (a dependency a new version dropped)."""
    keep = {artifact.name for artifact in lock.closure(lock.refs)}
    return LockFile(lock.refs, {n: a for n, a in lock.artifacts.items() if n in keep})


def read_lock(path: Path) -> LockFile | None:
    """The lock file at `path`, or None when there is none yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is unreadable ({error})", _REGENERATE) from None
    return LockFile.from_yaml(text, str(path))


def require_lock(path: Path) -> LockFile:
    lock = read_lock(path)
    if lock is None:
        raise NotFoundError(
            f"{path} does not exist: --locked needs a lock file",
            "run install without --locked once to write it",
        )
    return lock


def write_lock(path: Path, lock: LockFile) -> None:
    """Write atomically (temp file in the same directory, fsync, rename)."""
    from registry.storage import storage

    with storage(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(lock.to_yaml())
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
