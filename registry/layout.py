"""An OCI image layout directory as an ArtifactStore (offline feeds, air gap, mirrors).

Layout per the image-spec: `oci-layout`, `index.json` (tags as
`org.opencontainers.image.ref.name` annotations, as skopeo's `oci:DIR:tag` writes them) and
`blobs/sha256/<hex>`. Index updates hold an flock on the directory and replace index.json
atomically, so concurrent writers and readers never see a torn file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from registry.cache import BlobCache
from registry.digests import read_chunks, verify_bytes, write_verified
from registry.errors import NotFoundError, RegistryError
from registry.options import ClientOptions
from registry.progress import Progress, report_chunks
from registry.reference import Reference
from registry.store import (
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    Descriptor,
    LocalBlob,
    manifest_media_type,
)
from registry.transfer import MAX_INDEX_SIZE, read_file_limited

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}


class LayoutStore:
    def __init__(self, reference: Reference, options: ClientOptions | None = None) -> None:
        assert reference.layout is not None
        self.reference = reference
        self.root = reference.layout
        self.blobs = BlobCache(self.root)

    # -- index.json ----------------------------------------------------------------------

    def _require_layout(self) -> None:
        if not (self.root / LAYOUT_FILE).is_file():
            raise NotFoundError(
                f"{self.root} is not an OCI image layout (no {LAYOUT_FILE} file)",
                hint="mirror or push an artifact there first",
            )

    def _read_index(self) -> dict[str, Any]:
        try:
            raw = read_file_limited(self.root / "index.json", MAX_INDEX_SIZE, "OCI layout index")
            data = json.loads(raw)
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        except (OSError, ValueError) as error:
            raise RegistryError(f"{self.root}/index.json is unreadable: {error}") from error
        if not isinstance(data, dict) or not isinstance(data.get("manifests", []), list):
            raise RegistryError(f"{self.root}/index.json is not an OCI image index")
        data.setdefault("manifests", [])
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._initialise()
        fd = os.open(self.root, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _initialise(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / LAYOUT_FILE
        if not marker.exists() and any(self.root.iterdir()):
            # Never turn an unrelated directory (say, /etc/falco) into a layout by accident.
            raise RegistryError(
                f"{self.root} is not an OCI image layout and is not empty",
                hint="push to a new or empty directory, or to an existing layout",
            )
        if not marker.exists():
            _write_atomically(marker, json.dumps(LAYOUT_VERSION).encode())

    def _write_index(self, index: dict[str, Any]) -> None:
        _write_atomically(self.root / "index.json", json.dumps(index, indent=None).encode())

    def _entries(self) -> list[dict[str, Any]]:
        self._require_layout()
        return list(self._read_index()["manifests"])

    # -- ArtifactStore -------------------------------------------------------------------

    def resolve(self, tag_or_digest: str) -> Descriptor:
        entries = self._entries()
        if tag_or_digest.startswith("sha256:"):
            for entry in entries:
                if entry.get("digest") == tag_or_digest:
                    return _root_descriptor(entry)
            return self.fetch_manifest(tag_or_digest)[1]
        for entry in reversed(entries):
            if (entry.get("annotations") or {}).get(REF_NAME) == tag_or_digest:
                return _root_descriptor(entry)
        raise NotFoundError(f"tag {tag_or_digest!r} not found in {self.reference.locator}")

    def fetch_manifest(self, tag_or_digest: str) -> tuple[bytes, Descriptor]:
        self._require_layout()
        known: Descriptor | None = None
        if tag_or_digest.startswith("sha256:"):
            digest = tag_or_digest
        else:
            known = self.resolve(tag_or_digest)
            digest = known.digest
        path = self.blobs.path_for(digest)
        what = f"manifest {digest} in {self.reference.locator}"
        try:
            data = read_file_limited(path, MAX_MANIFEST_SIZE, what)
        except FileNotFoundError as error:
            raise NotFoundError(f"{what} not found") from error
        verify_bytes(data, digest, what)
        media_type = known.media_type if known else manifest_media_type(data, "")
        return data, Descriptor(media_type=media_type, digest=digest, size=len(data))

    def fetch_blob(
        self, descriptor: Descriptor, dest_path: Path, progress: Progress | None = None
    ) -> bool:
        path = self._blob_path(descriptor)
        write_verified(
            report_chunks(read_chunks(path), descriptor, progress),
            dest_path,
            descriptor.digest,
            descriptor.size,
            f"blob {descriptor.digest} in {self.reference.locator}",
        )
        return False

    def local_blob(
        self, descriptor: Descriptor, scratch: Path, progress: Progress | None = None
    ) -> LocalBlob:
        """The layout's own file, read in place: the reader verifies it (never deleted)."""
        return LocalBlob(self._blob_path(descriptor), False, False, False)

    def fetch_blob_bytes(self, descriptor: Descriptor, max_size: int) -> bytes:
        what = f"blob {descriptor.digest} in {self.reference.locator}"
        if descriptor.size > max_size:
            raise RegistryError(f"{what} is {descriptor.size} bytes, over the {max_size} limit")
        # Read no further than the descriptor's size (+1 to notice a longer file): a layout
        # is as untrusted as a registry, and its blob may be a huge or endless file.
        with open(self._blob_path(descriptor), "rb") as handle:
            data = handle.read(descriptor.size + 1)
        verify_bytes(data, descriptor.digest, what)
        return data

    def _blob_path(self, descriptor: Descriptor) -> Path:
        path = self.blobs.path_for(descriptor.digest)
        if not path.is_file():
            raise NotFoundError(f"blob {descriptor.digest} not found in {self.reference.locator}")
        return path

    def blob_exists(self, descriptor: Descriptor) -> bool:
        return self.blobs.has(descriptor.digest, descriptor.size)

    def push_blob(
        self, source: Path | bytes, descriptor: Descriptor, progress: Progress | None = None
    ) -> None:
        self._initialise()
        if self.blob_exists(descriptor):
            return
        what = f"blob {descriptor.digest} for {self.reference.locator}"
        chunks = [source] if isinstance(source, bytes) else read_chunks(source)
        self.blobs.ingest(
            report_chunks(chunks, descriptor, progress), descriptor.digest, descriptor.size, what
        )

    def push_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        from registry.digests import digest_bytes

        descriptor = Descriptor(media_type=media_type, digest=digest_bytes(data), size=len(data))
        self.push_blob(data, descriptor)
        if tag:
            self.tag(descriptor, tag)
        return descriptor

    def tag(self, descriptor: Descriptor, tag: str) -> None:
        with self._locked():
            if not self.blobs.has(descriptor.digest):
                raise NotFoundError(f"manifest {descriptor.digest} not in {self.reference.locator}")
            index = self._read_index()
            kept = [
                entry
                for entry in index["manifests"]
                if (entry.get("annotations") or {}).get(REF_NAME) != tag
            ]
            entry = Descriptor(
                media_type=descriptor.media_type,
                digest=descriptor.digest,
                size=descriptor.size,
                annotations={REF_NAME: tag},
            ).to_json()
            index["manifests"] = [*kept, entry]
            self._write_index(index)

    def list_tags(self) -> list[str]:
        tags: list[str] = []
        for entry in self._entries():
            name = (entry.get("annotations") or {}).get(REF_NAME)
            if name and name not in tags:
                tags.append(name)
        return tags


def _root_descriptor(entry: dict[str, Any]) -> Descriptor:
    """An index.json entry as a manifest descriptor (its ref.name annotation is not its own)."""
    descriptor = Descriptor.from_json(entry)
    return Descriptor(
        media_type=descriptor.media_type,
        digest=descriptor.digest,
        size=descriptor.size,
        platform=descriptor.platform,
    )


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
