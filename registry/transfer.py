"""Bounded reads of every HTTP body falconet takes from outside: a size cap, a minimum rate and a
deadline (docs/security.md, "Registry and feed limits").

Registries, index URLs, key URLs and token endpoints are untrusted: a body may be endless, or
trickle one byte every few seconds so that no single read ever times out. So no caller reads a
body with `response.content`, `.text` or `.json()` (they read it whole, whatever its size);
every body goes through `iter_body`/`read_body`, which

- refuses a declared Content-Length over the cap before reading, and stops as soon as the bytes
  read pass it (an endless body costs at most the cap in memory);
- reads with `read1` (at most one socket read per call), so a trickle cannot hold a call for
  longer than the socket's read timeout, and checks the pace after every read: slower than
  `low_speed_limit` bytes/s averaged over `low_speed_time` seconds, or longer than `timeout` in
  all, and the transfer is given up with `SlowTransferError` (exit status 5). This is curl's
  --speed-limit/--speed-time plus --max-time.

A `Pace` can span several attempts (a blob resumed after a reset), so retries cannot stretch
the deadline.

Before a body there are response headers, which http.client reads a line at a time: a server
that trickles them is not stopped by the socket's read timeout either. `watched(...)` arms a
watchdog over a request: past `timeout`, it shuts the request's socket down, which ends the
blocked read at once, and the request fails with SlowTransferError. Sessions made by
`watched_session()` (the registry client's, and `fetch_document`'s) report the connections they
use to the watchdog.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
import urllib3.connectionpool
import urllib3.exceptions

from registry.errors import NetworkError, RegistryError

READ_SIZE = 1 << 20
# Caps of the documents falconet reads whole (blobs, configs and signature payloads are capped
# by their descriptor's size instead). Far above anything legitimate; see docs/security.md.
MAX_INDEX_SIZE = 16 << 20  # an index.yaml (falcosecurity's is ~100 KiB)
MAX_KEY_SIZE = 64 << 10  # a public key PEM (~180 bytes)
MAX_TOKEN_RESPONSE_SIZE = 1 << 20  # a bearer / OAuth2 token response
MAX_TAG_LIST_SIZE = 8 << 20  # one page of a tag list (1000 tags)
MAX_ERROR_BODY_SIZE = 64 << 10  # an error body: only its start is shown
MAX_JSON_DOCUMENT_SIZE = 1 << 20  # small JSON documents (Falco's /versions)
# http.client follows no redirects; requests' own cap, named so the error can quote it.
MAX_REDIRECTS = 30


@dataclass(frozen=True)
class TransferLimits:
    """How slow a transfer may be before it is given up (config `transfer.*`)."""

    # Average bytes/s below which, over `low_speed_time` seconds, a transfer is given up.
    low_speed_limit: int = 1024
    low_speed_time: float = 30.0
    # Whole-transfer deadline in seconds (all attempts of one blob, manifest or document).
    timeout: float = 900.0


DEFAULT_LIMITS = TransferLimits()


class SlowTransferError(NetworkError):
    """A transfer slower than the minimum rate, or past its deadline."""


class TooLargeError(RegistryError):
    """A body over its cap (a manifest, index, key or token response)."""


TooLarge = Callable[[str], RegistryError]


class Pace:
    """The minimum-rate and deadline check of one transfer, possibly over several attempts."""

    def __init__(self, what: str, limits: TransferLimits = DEFAULT_LIMITS) -> None:
        self.what = what
        self.limits = limits
        self.started = self._window_start = time.monotonic()
        self._window_bytes = 0

    def restart_window(self) -> None:
        """A body starts: the rate is measured from here (waits before it, such as a
        Retry-After, are not slowness); the overall deadline still counts from the start."""
        now = time.monotonic()
        self._check_deadline(now)
        self._window_start, self._window_bytes = now, 0

    def check(self, received: int) -> None:
        """Account `received` new bytes (0 is fine: a check of the clock alone)."""
        now = time.monotonic()
        self._check_deadline(now)
        limits = self.limits
        self._window_bytes += received
        elapsed = now - self._window_start
        if elapsed >= limits.low_speed_time:
            if self._window_bytes < limits.low_speed_limit * elapsed:
                rate = self._window_bytes / elapsed
                raise SlowTransferError(
                    f"{self.what}: {rate:.0f} bytes/s over the last {elapsed:.0f} s, below the "
                    f"{limits.low_speed_limit} bytes/s minimum; giving up",
                    hint="the server is too slow or trickling on purpose; lower "
                    "transfer.low_speed_limit or raise transfer.low_speed_time if the link is "
                    "just slow",
                )
            self._window_start, self._window_bytes = now, 0

    def _check_deadline(self, now: float) -> None:
        if now - self.started > self.limits.timeout:
            raise SlowTransferError(
                f"{self.what}: not complete after {self.limits.timeout:g} s; giving up",
                hint="the server is too slow or stalling on purpose; raise transfer.timeout "
                "(FALCONET_TRANSFER_TIMEOUT) if the link is just slow",
            )


# -- the watchdog over a request's socket ---------------------------------------------------


@dataclass
class _Watch:
    connections: list[Any] = field(default_factory=list)
    fired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fire(self) -> None:
        with self.lock:
            self.fired = True
            for connection in self.connections:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)


_watching = threading.local()


class _WatchedPoolMixin:
    """Tells the current thread's watch which connection its request uses."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        connection = super()._get_conn(timeout)  # type: ignore[misc]
        watch: _Watch | None = getattr(_watching, "watch", None)
        if watch is not None:
            with watch.lock:
                watch.connections.append(connection)
                if watch.fired:  # too late already: do not start
                    watch.fire()
        return connection


class _WatchedHTTPPool(_WatchedPoolMixin, urllib3.connectionpool.HTTPConnectionPool):
    pass


class _WatchedHTTPSPool(_WatchedPoolMixin, urllib3.connectionpool.HTTPSConnectionPool):
    pass


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def watched_session(pool_connections: int = 4, pool_maxsize: int = 8) -> requests.Session:
    """A requests session whose requests `watched()` can cut short."""
    session = requests.Session()
    adapter = _WatchedAdapter(
        pool_connections=pool_connections, pool_maxsize=pool_maxsize, max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@contextlib.contextmanager
def watched(what: str, timeout: float) -> Iterator[None]:
    """Requests of a watched session made in this block are cut off after `timeout` seconds
    (from sending to the end of the response headers), with SlowTransferError."""
    watch = _Watch()
    timer = threading.Timer(timeout, watch.fire)
    timer.daemon = True
    previous = getattr(_watching, "watch", None)
    _watching.watch = watch
    timer.start()
    try:
        yield
    except Exception as error:
        if watch.fired and not isinstance(error, SlowTransferError):
            raise _cut_off(what, timeout) from error
        raise
    finally:
        timer.cancel()
        _watching.watch = previous
    # A socket shut down mid-headers can also look like headers ended early: never use that.
    if watch.fired:
        raise _cut_off(what, timeout)


def _cut_off(what: str, timeout: float) -> SlowTransferError:
    return SlowTransferError(
        f"{what}: no complete answer within {timeout:g} s; giving up",
        hint="the server is stalling or trickling its answer; raise transfer.timeout "
        "(FALCONET_TRANSFER_TIMEOUT) if it is just slow",
    )


def iter_body(
    response: requests.Response,
    what: str,
    *,
    max_size: int | None,
    pace: Pace,
    too_large: TooLarge = TooLargeError,
    read_size: int = READ_SIZE,
) -> Iterator[bytes]:
    """The body of a streamed response (stream=True), piece by piece, bounded and paced.

    More than `max_size` bytes (declared or received) raises `too_large`; a slow body raises
    SlowTransferError. Connection errors are raised as requests' own exceptions, as
    `iter_content` raises them, so callers' retry logic sees the same types."""
    if max_size is not None:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_size:
            raise too_large(f"{what} is {declared} bytes, over its {max_size}-byte limit")
    raw = response.raw
    total = 0
    pace.restart_window()
    while True:
        try:
            piece = raw.read1(read_size, decode_content=True)
        except urllib3.exceptions.ProtocolError as error:
            raise requests.exceptions.ChunkedEncodingError(error) from error
        except urllib3.exceptions.DecodeError as error:
            raise requests.exceptions.ContentDecodingError(error) from error
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.SSLError) as error:
            raise requests.exceptions.ConnectionError(error) from error
        if not piece:
            return
        total += len(piece)
        if max_size is not None and total > max_size:
            raise too_large(f"{what} is over its {max_size}-byte limit")
        pace.check(len(piece))
        yield piece


def read_body(
    response: requests.Response,
    what: str,
    *,
    max_size: int,
    pace: Pace | None = None,
    limits: TransferLimits = DEFAULT_LIMITS,
    too_large: TooLarge = TooLargeError,
) -> bytes:
    """The whole body of a streamed response, at most `max_size` bytes (see iter_body)."""
    pace = pace or Pace(what, limits)
    return b"".join(iter_body(response, what, max_size=max_size, pace=pace, too_large=too_large))


def read_prefix(response: requests.Response, size: int, limits: TransferLimits) -> bytes:
    """At most the first `size` bytes of a body (error details): never raises for size."""
    parts: list[bytes] = []
    total = 0
    pace = Pace("error response", limits)
    try:
        for piece in iter_body(response, "error response", max_size=None, pace=pace):
            parts.append(piece)
            total += len(piece)
            if total >= size:
                break
    except (requests.RequestException, RegistryError):
        pass  # a detail is a courtesy: whatever arrived is shown
    finally:
        response.close()
    return b"".join(parts)[:size]


@dataclass(frozen=True)
class Fetched:
    """A small document fetched by `fetch_document`."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


def fetch_document(
    method: str,
    url: str,
    what: str,
    *,
    max_size: int,
    limits: TransferLimits = DEFAULT_LIMITS,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    session: requests.Session | None = None,
    too_large: TooLarge = TooLargeError,
    **kwargs: Any,
) -> Fetched:
    """One request for a small document outside the registry client (an index, a key URL, an
    OAuth2 token, Falco's /versions): bounded like every other body. A network failure or a
    redirect loop raises NetworkError; an error status is returned with an empty body (at most
    the start of it) for the caller to report."""
    sender = session or watched_session(1, 1)
    try:
        with watched(f"{what} from {url}", limits.timeout):
            response = sender.request(
                method, url, stream=True, timeout=(connect_timeout, read_timeout), **kwargs
            )
    except SlowTransferError:
        raise
    except requests.exceptions.TooManyRedirects as error:
        raise redirect_loop(what, url) from error
    except requests.RequestException as error:
        raise NetworkError(f"cannot fetch {what} from {url}: {short_reason(error)}") from error
    with response:
        if response.status_code >= 300:
            body = read_prefix(response, 4096, limits)
        else:
            try:
                body = read_body(
                    response, what, max_size=max_size, limits=limits, too_large=too_large
                )
            except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
                raise NetworkError(
                    f"cannot fetch {what} from {url}: {short_reason(error)}"
                ) from error
        return Fetched(response.status_code, response.headers, body, response.url or url)


def read_file_limited(path: Any, max_size: int, what: str) -> bytes:
    """A local file that came from outside (an OCI layout's index.json, a file:// index), read
    no further than `max_size` (an endless file such as /dev/zero stops there too)."""
    with open(path, "rb") as handle:
        data = handle.read(max_size + 1)
    if len(data) > max_size:
        raise TooLargeError(f"{what} ({path}) is over its {max_size}-byte limit")
    return data


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_loop(what: str, url: str) -> NetworkError:
    return NetworkError(
        f"{what}: redirect loop at {url} (more than {MAX_REDIRECTS} redirects)",
        hint="the server redirects in a circle; check the URL and the server's configuration",
    )


def short_reason(error: BaseException) -> str:
    """The telling part of urllib3's long nested messages."""
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "Read timed out",
                   "certificate verify failed", "Connection reset by peer"):  # fmt: skip
        if marker in text:
            return marker
    first = text.splitlines()[0] if text else type(error).__name__
    return first if len(first) < 200 else first[:200] + "..."
