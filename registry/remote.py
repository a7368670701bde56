"""A repository in a remote registry (OCI distribution API v2) as an ArtifactStore."""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

from registry.auth import merge_scopes
from registry.cache import BlobCache, fetch_through_cache
from registry.client import RETRY_STATUSES, RegistryClient, TransientNetworkError
from registry.digests import VerifiedWriter, digest_bytes, verify_bytes
from registry.errors import DigestMismatchError, NetworkError, RegistryError
from registry.options import ClientOptions
from registry.progress import Progress, label_of, upload_body
from registry.reference import Reference
from registry.store import (
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_MANIFEST,
    Descriptor,
    LocalBlob,
    manifest_media_type,
    parse_manifest,
)
from registry.transfer import MAX_TAG_LIST_SIZE, Pace, iter_body

log = logging.getLogger(__name__)
T = TypeVar("T")

ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
TAG_PAGE_SIZE = 1000
# A tag list that never ends (a `next` link forever) is refused past this many tags.
MAX_TAGS = 100_000
# Errors raised while a response body streams in: the transfer is retried from the start.
_STREAM_ERRORS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)

_clients: dict[tuple[str, ClientOptions], RegistryClient] = {}
_clients_lock = threading.Lock()


def client_for(registry: str, options: ClientOptions) -> RegistryClient:
    """One client per registry and options in a process, so tokens and connections are reused."""
    key = (registry, options)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = RegistryClient(registry, options)
        return client


@dataclass
class TransferStats:
    blobs_downloaded: int = 0
    bytes_downloaded: int = 0
    blobs_from_cache: int = 0
    blobs_uploaded: int = 0


class RemoteRepository:
    def __init__(self, reference: Reference, options: ClientOptions) -> None:
        self.reference = reference
        self.options = options
        self.client = client_for(reference.registry, options)
        self.cache = BlobCache(options.cache_dir) if options.cache_dir else None
        self.stats = TransferStats()
        self._path = f"/v2/{reference.repository}"
        self._pull_scope = f"repository:{reference.repository}:pull"
        self._push_scope = f"repository:{reference.repository}:pull,push"

    def _what(self, target: str) -> str:
        separator = "@" if target.startswith("sha256:") else ":"
        return f"{self.reference.locator}{separator}{target}"

    # -- manifests -----------------------------------------------------------------------

    def resolve(self, tag_or_digest: str) -> Descriptor:
        """HEAD the manifest: one small request, the cheap check `follow` does on every tick."""
        response = self.client.request(
            "HEAD",
            f"{self._path}/manifests/{tag_or_digest}",
            scope=self._pull_scope,
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        self.client.check(response, f"manifest {self._what(tag_or_digest)}")
        response.close()  # a HEAD: no body, and the connection goes back to the pool
        digest = response.headers.get("Docker-Content-Digest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        length = response.headers.get("Content-Length")
        if not digest or not length or media_type not in MANIFEST_MEDIA_TYPES:
            # Some registries do not describe manifests on HEAD; the body tells for sure.
            return self.fetch_manifest(tag_or_digest)[1]
        if tag_or_digest.startswith("sha256:") and digest != tag_or_digest:
            raise DigestMismatchError(
                f"{self.reference.registry} describes {tag_or_digest} as {digest}"
            )
        return Descriptor(media_type=media_type, digest=digest, size=int(length))

    def fetch_manifest(self, tag_or_digest: str) -> tuple[bytes, Descriptor]:
        what = f"manifest {self._what(tag_or_digest)}"

        def get(pace: Pace) -> tuple[bytes, requests.Response]:
            response = self.client.request(
                "GET",
                f"{self._path}/manifests/{tag_or_digest}",
                scope=self._pull_scope,
                headers={"Accept": ACCEPT_MANIFESTS},
                stream=True,
            )
            self.client.check(response, what)
            return self.client.read(response, what, MAX_MANIFEST_SIZE, pace), response

        data, response = self._retrying_transfer(what, get)
        digest = digest_bytes(data)
        if tag_or_digest.startswith("sha256:"):
            verify_bytes(data, tag_or_digest, what)
        else:
            claimed = response.headers.get("Docker-Content-Digest")
            if claimed and claimed != digest:
                raise DigestMismatchError(
                    f"{what}: content digest {digest} does not match the registry's {claimed}",
                    hint="the registry holds corrupted or tampered data",
                )
        header_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        media_type = manifest_media_type(
            data, header_type if header_type in MANIFEST_MEDIA_TYPES else OCI_MANIFEST
        )
        return data, Descriptor(media_type=media_type, digest=digest, size=len(data))

    def push_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        digest = digest_bytes(data)
        target = tag or digest
        response = self.client.request(
            "PUT",
            f"{self._path}/manifests/{target}",
            scope=self._push_scope,
            headers={"Content-Type": media_type},
            body=lambda: data,
        )
        self.client.check(response, f"manifest push {self._what(target)}")
        response.close()
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    def tag(self, descriptor: Descriptor, tag: str) -> None:
        data, _ = self.fetch_manifest(descriptor.digest)
        self.push_manifest(data, descriptor.media_type, tag)

    def list_tags(self) -> list[str]:
        tags: list[str] = []
        url: str | None = f"{self._path}/tags/list"
        params: dict[str, str] | None = {"n": str(TAG_PAGE_SIZE)}
        what = f"tag list of {self.reference.locator}"
        while url:
            response = self.client.request("GET", url, scope=self._pull_scope, params=params)
            self.client.check(response, what)
            next_link = response.links.get("next", {}).get("url")
            # parse_manifest is the store's "one JSON object" parser; a tag list page is one too.
            page = parse_manifest(self.client.read(response, what, MAX_TAG_LIST_SIZE), what)
            page_tags = page.get("tags") or []
            if not isinstance(page_tags, list):
                raise RegistryError(f"{what}: 'tags' is not a list")
            tags.extend(str(tag) for tag in page_tags)
            if len(tags) > MAX_TAGS:
                raise RegistryError(
                    f"{what}: more than {MAX_TAGS} tags",
                    hint="the registry's tag list does not end; use a digest or an exact tag",
                )
            url = urllib.parse.urljoin(self.client.base_url, next_link) if next_link else None
            params = None
        return tags

    # -- blobs ---------------------------------------------------------------------------

    def blob_exists(self, descriptor: Descriptor) -> bool:
        response = self.client.request(
            "HEAD", f"{self._path}/blobs/{descriptor.digest}", scope=self._pull_scope
        )
        response.close()
        if response.status_code == 404:
            return False
        self.client.check(response, f"blob {descriptor.digest}")
        return True

    def _open_blob(self, descriptor: Descriptor, offset: int = 0) -> requests.Response:
        headers = {"Range": f"bytes={offset}-"} if offset else None
        response = self.client.request(
            "GET",
            f"{self._path}/blobs/{descriptor.digest}",
            scope=self._pull_scope,
            headers=headers,
            stream=True,
        )
        self.client.check(response, f"blob {descriptor.digest} of {self.reference.locator}")
        return response

    def _blob_chunks(self, descriptor: Descriptor, pace: Pace) -> Iterator[bytes]:
        """The blob's bytes, never more than its descriptor declares (an endless body stops
        there) and at the minimum rate."""
        what = f"blob {descriptor.digest} of {self.reference.locator}"
        with self._open_blob(descriptor) as response:
            for chunk in iter_body(
                response, what, max_size=descriptor.size, pace=pace, too_large=_over_descriptor
            ):
                self.stats.bytes_downloaded += len(chunk)
                yield chunk

    def _download(self, descriptor: Descriptor, target: Path, progress: Progress | None) -> None:
        """Stream a blob into target (verified, atomic), resuming with Range after a reset."""
        what = f"blob {descriptor.digest} of {self.reference.locator}"
        label = label_of(descriptor)
        writer = VerifiedWriter(target, descriptor.digest, descriptor.size, what)
        pace = Pace(what, self.options.transfer)  # one deadline for every attempt
        try:
            attempt = 0
            while writer.written < descriptor.size or descriptor.size == 0:
                try:
                    with self._open_blob(descriptor, writer.written) as response:
                        if writer.written and response.status_code != 206:
                            writer.restart()  # the server ignored Range: the whole blob again
                        for chunk in iter_body(response, what, max_size=None, pace=pace):
                            self.stats.bytes_downloaded += len(chunk)
                            writer.write(chunk)
                            if progress is not None:
                                progress(label, len(chunk), descriptor.size)
                    break
                except _STREAM_ERRORS as error:
                    if attempt >= self.options.max_retries:
                        raise _transfer_failed(what, attempt, error) from error
                    log.info("%s: interrupted at byte %d; resuming", what, writer.written)
                    self.client.sleep_before_retry(attempt, None, f"{what}: transfer interrupted")
                    attempt += 1
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def _retrying_transfer(self, what: str, transfer: Callable[[Pace], T]) -> T:
        """Run a streamed transfer again from the start when the connection breaks mid-way;
        one Pace (minimum rate, deadline) spans every attempt."""
        pace = Pace(what, self.options.transfer)
        for attempt in range(self.options.max_retries + 1):
            try:
                return transfer(pace)
            except _STREAM_ERRORS as error:
                if attempt >= self.options.max_retries:
                    raise _transfer_failed(what, attempt, error) from error
                self.client.sleep_before_retry(attempt, None, f"{what}: transfer interrupted")
        raise AssertionError("unreachable")

    def fetch_blob(
        self, descriptor: Descriptor, dest_path: Path, progress: Progress | None = None
    ) -> bool:
        """Stream the blob to dest (verified, atomic). Returns True when it was downloaded."""
        what = f"blob {descriptor.digest} of {self.reference.locator}"
        downloaded = fetch_through_cache(
            self.cache,
            descriptor.digest,
            descriptor.size,
            dest_path,
            lambda target: self._download(descriptor, target, progress),
            what,
        )
        if downloaded:
            self.stats.blobs_downloaded += 1
        else:
            self.stats.blobs_from_cache += 1
        return downloaded

    def local_blob(
        self, descriptor: Descriptor, scratch: Path, progress: Progress | None = None
    ) -> LocalBlob:
        """The blob as a local file: the cache's copy when there is one (verified by the
        reader), else downloaded (verified on the way) into the cache, or into scratch when
        there is no cache."""
        if self.cache is not None and self.cache.has(descriptor.digest, descriptor.size):
            self.stats.blobs_from_cache += 1
            return LocalBlob(self.cache.path_for(descriptor.digest), False, False, True)
        if self.cache is not None:
            target = self.cache.path_for(descriptor.digest)
        else:
            target = scratch / descriptor.digest.replace(":", "-")
        self._download(descriptor, target, progress)
        self.stats.blobs_downloaded += 1
        return LocalBlob(target, True, True, self.cache is not None)

    def fetch_blob_bytes(self, descriptor: Descriptor, max_size: int) -> bytes:
        what = f"blob {descriptor.digest} of {self.reference.locator}"
        if descriptor.size > max_size:
            raise RegistryError(f"{what} is {descriptor.size} bytes, over the {max_size} limit")
        if self.cache is not None and self.cache.has(descriptor.digest, descriptor.size):
            data = self.cache.path_for(descriptor.digest).read_bytes()
            verify_bytes(data, descriptor.digest, what)
            self.stats.blobs_from_cache += 1
            return data
        data = self._retrying_transfer(
            what, lambda pace: b"".join(self._blob_chunks(descriptor, pace))
        )
        if len(data) != descriptor.size:
            raise DigestMismatchError(f"{what}: got {len(data)} bytes, expected {descriptor.size}")
        verify_bytes(data, descriptor.digest, what)
        self.stats.blobs_downloaded += 1
        if self.cache is not None:
            self.cache.ingest([data], descriptor.digest, descriptor.size, what)
        return data

    def push_blob(
        self, source: Path | bytes, descriptor: Descriptor, progress: Progress | None = None
    ) -> None:
        """Monolithic upload streamed from disk; a failed session is restarted from the POST."""
        if self.blob_exists(descriptor):
            log.debug("blob %s already in %s", descriptor.digest, self.reference.locator)
            return
        what = f"blob upload {descriptor.digest} to {self.reference.locator}"
        for attempt in range(self.options.max_retries + 1):
            try:
                response = self._upload_once(source, descriptor, progress)
            except TransientNetworkError as error:
                if attempt >= self.options.max_retries:
                    raise NetworkError(f"{what} failed: {error}") from error
                self.client.sleep_before_retry(attempt, None, f"{what}: {error}")
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.options.max_retries:
                response.close()
                self.client.sleep_before_retry(attempt, None, f"{what}: {response.status_code}")
                continue
            self.client.check(response, what)
            response.close()
            self.stats.blobs_uploaded += 1
            return

    def mount_blob(self, descriptor: Descriptor, from_repository: str) -> bool:
        """Cross-repository mount within this registry: no bytes move. False if refused."""
        response = self.client.request(
            "POST",
            f"{self._path}/blobs/uploads/",
            scope=merge_scopes(self._push_scope, f"repository:{from_repository}:pull"),
            params={"mount": descriptor.digest, "from": from_repository},
        )
        response.close()
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            # The registry opened an ordinary upload instead: cancel it, the caller copies.
            location = response.headers.get("Location")
            if location:
                cancel = self.client.request(
                    "DELETE",
                    urllib.parse.urljoin(self.client.base_url, location),
                    scope=self._push_scope,
                )
                cancel.close()
            return False
        self.client.check(response, f"blob mount {descriptor.digest} from {from_repository}")
        return False

    def _upload_once(
        self, source: Path | bytes, descriptor: Descriptor, progress: Progress | None
    ) -> requests.Response:
        response = self.client.request(
            "POST", f"{self._path}/blobs/uploads/", scope=self._push_scope
        )
        self.client.check(response, f"blob upload to {self.reference.locator}")
        response.close()
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.reference.registry} started an upload without a Location")
        with upload_body(source, descriptor, progress) as body:
            return self.client.request(
                "PUT",
                urllib.parse.urljoin(self.client.base_url, location),
                scope=self._push_scope,
                params={"digest": descriptor.digest},
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(descriptor.size),
                },
                body=lambda: _rewound(body),
                retry=False,
            )


def _rewound(body: Any) -> Any:
    """The upload body from its start (an auth retry resends it)."""
    if hasattr(body, "seek"):
        body.seek(0)
    return body


def _over_descriptor(message: str) -> DigestMismatchError:
    """A blob body longer than its descriptor's size: the registry is lying."""
    return DigestMismatchError(
        f"{message} (the size its descriptor declares)",
        hint="the registry holds corrupted or tampered data; nothing was kept",
    )


def _transfer_failed(what: str, attempt: int, error: BaseException) -> NetworkError:
    return NetworkError(
        f"{what}: transfer failed after {attempt + 1} attempts: {error}",
        hint="the registry or the network is unstable; nothing was written",
    )
