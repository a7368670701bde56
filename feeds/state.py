"""What is installed: one JSON record per artifact name under <state_dir>/installed/.

Each record holds the ref asked for, the resolved digest and version, the type, every file with
its sha256, the verification outcome and the time. Written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from feeds.errors import StateError

log = logging.getLogger(__name__)

# What can go wrong reading a JSON record someone (or a failing disk) damaged.
_DAMAGE = (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError)


def load_json_record(path: Path, what: str, fix: str, kind: type | None = dict) -> Any:
    """A JSON file of falconet's own state, or StateError naming the file and the repair."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except _DAMAGE as error:
        raise StateError(f"{what} {path} is damaged ({_reason(error)})", fix) from None
    if kind is not None and not isinstance(data, kind):
        raise StateError(f"{what} {path} is damaged (not a JSON {kind.__name__})", fix)
    return data


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:120] if text else type(error).__name__


@dataclass(frozen=True)
class InstalledFile:
    path: str  # absolute path of the installed file
    sha256: str
    # Size and mtime at install: an unchanged stat means the content need not be re-hashed.
    size: int | None = None
    mtime_ns: int | None = None

    def unchanged_on_disk(self) -> bool:
        """True when the file is still exactly as installed (stat first, hash when in doubt)."""
        import os

        from feeds.install import sha256_file

        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False
        if stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns:
            return True
        return sha256_file(Path(self.path)) == self.sha256


@dataclass
class InstalledArtifact:
    name: str
    type: str
    ref: str
    reference: str  # the full reference installed from (repository@digest)
    version: str
    digest: str
    files: list[InstalledFile] = field(default_factory=list)
    installed_at: str = ""
    verification: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstalledArtifact:
        files = [InstalledFile(**f) for f in data.get("files", [])]
        return cls(**{**data, "files": files})


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "installed"

    def _path(self, name: str) -> Path:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"unsafe artifact name {name!r}")
        return self.directory / f"{name}.json"

    def get(self, name: str) -> InstalledArtifact | None:
        path = self._path(name)
        if not path.is_file():
            return None
        return self._load(path)

    def all(self) -> list[InstalledArtifact]:
        """Every readable record; a damaged one is reported (file and repair) and skipped, so
        one bad file cannot stop every `artifact` command."""
        if not self.directory.is_dir():
            return []
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(self._load(path))
            except StateError as error:
                log.warning("%s; %s", error, error.hint)
        return records

    @staticmethod
    def _load(path: Path) -> InstalledArtifact:
        fix = f"delete {path} and install {path.stem} again (`falconet artifact install`)"
        data = load_json_record(path, "installed-state record", fix)
        try:
            return InstalledArtifact.from_dict(data)
        except _DAMAGE as error:
            raise StateError(
                f"installed-state record {path} is damaged ({_reason(error)})", fix
            ) from None

    def put(self, record: InstalledArtifact) -> None:
        from registry.storage import storage

        path = self._path(record.name)
        tmp = path.with_name(f".{path.name}.tmp")
        with storage(self.directory):
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(tmp, "w") as handle:
                json.dump(record.to_dict(), handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
