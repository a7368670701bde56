"""The Sigstore trusted root (`application/vnd.dev.sigstore.trustedroot+json`), parsed into the
keys and CA chains an offline verifier needs, each with its validity window.

The production root ships inside the sigstore-python wheel (byte-identical to root-signing's
`targets/trusted_root.json`); it is located without importing sigstore (that import costs
~300 ms). A user-installed root replaces it entirely.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry.errors import VerificationError

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
# A trusted root is a few KiB; anything far larger is not one.
MAX_TRUSTED_ROOT_BYTES = 1 << 20
_PRODUCTION_DIR = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"


class TrustRootError(VerificationError):
    """The trusted root file is missing or not a trusted root: the operator's input is wrong."""

    exit_status = "usage"


@dataclass(frozen=True)
class Window:
    """A key's or CA's validFor: start inclusive, end inclusive, end None = still valid."""

    start: datetime
    end: datetime | None

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment <= self.end)

    def to_json(self) -> dict[str, str | None]:
        return {"start": _iso(self.start), "end": _iso(self.end) if self.end else None}


@dataclass(frozen=True)
class LogKey:
    """A transparency log's (Rekor) or CT log's public key: DER SPKI and its log id."""

    base_url: str
    key_der: bytes
    key_details: str
    log_id: bytes  # sha256(DER SPKI), as Rekor's logID and RFC 6962's SCT log id
    window: Window

    def public_key(self) -> Any:
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        return load_der_public_key(self.key_der)


@dataclass(frozen=True)
class CertificateAuthority:
    """A Fulcio CA: its chain, leaf-most first (intermediate, ..., root)."""

    uri: str
    chain_der: tuple[bytes, ...]
    window: Window

    def certificates(self) -> list[Any]:
        from cryptography import x509

        return [x509.load_der_x509_certificate(der) for der in self.chain_der]


@dataclass(frozen=True)
class TrustRoot:
    source: str
    digest: str
    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    certificate_authorities: tuple[CertificateAuthority, ...]
    raw: bytes

    def tlog(self, log_id: bytes) -> LogKey | None:
        return next((key for key in self.tlogs if key.log_id == log_id), None)

    def ctlog(self, log_id: bytes) -> LogKey | None:
        return next((key for key in self.ctlogs if key.log_id == log_id), None)

    def summary(self) -> dict[str, Any]:
        def logs(keys: tuple[LogKey, ...]) -> list[dict[str, Any]]:
            return [
                {"url": k.base_url, "log_id": k.log_id.hex(), **k.window.to_json()} for k in keys
            ]

        return {
            "source": self.source,
            "sha256": self.digest,
            "tlogs": logs(self.tlogs),
            "ctlogs": logs(self.ctlogs),
            "certificate_authorities": [
                {"url": ca.uri, "certificates": len(ca.chain_der), **ca.window.to_json()}
                for ca in self.certificate_authorities
            ],
        }


def production_root_path() -> Path | None:
    """The production trusted root embedded in the installed sigstore package, if any."""
    spec = importlib.util.find_spec("sigstore")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "_store" / _PRODUCTION_DIR / "trusted_root.json"
        if path.is_file():
            return path
    return None


def load_trust_root(user_file: Path | None = None) -> TrustRoot:
    """The user's installed root when `user_file` exists, else the embedded production root."""
    if user_file is not None and user_file.exists():
        return parse_trust_root(_read_bounded(user_file), str(user_file))
    path = production_root_path()
    if path is None:
        raise TrustRootError(
            "no Sigstore trusted root: the sigstore package (which embeds the production root) "
            "is not installed",
            "pip install sigstore, or install a root with `falconet trust update --from FILE`",
        )
    return parse_trust_root(_read_bounded(path), f"embedded production root ({path.name})")


def _read_bounded(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TRUSTED_ROOT_BYTES + 1)
    except OSError as error:
        raise TrustRootError(
            f"cannot read trusted root {path}: {error.strerror}", "check the file"
        ) from error
    if len(data) > MAX_TRUSTED_ROOT_BYTES:
        raise TrustRootError(
            f"{path} is larger than {MAX_TRUSTED_ROOT_BYTES} bytes: not a trusted root",
            "give Sigstore's trusted_root.json",
        )
    return data


def parse_trust_root(data: bytes, source: str) -> TrustRoot:
    """Parse and check a trusted root; every error names what is wrong in `source`."""

    def fail(what: str) -> TrustRootError:
        return TrustRootError(
            f"{source}: not a usable Sigstore trusted root: {what}",
            "use the trusted_root.json published by Sigstore's root-signing repository",
        )

    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise fail(f"invalid JSON ({error})") from error
    if not isinstance(document, dict):
        raise fail("the document is not an object")
    media_type = document.get("mediaType")
    if not isinstance(media_type, str) or not media_type.startswith(
        "application/vnd.dev.sigstore.trustedroot"
    ):
        raise fail(f"mediaType is {media_type!r}")
    try:
        tlogs = tuple(_log_key(entry) for entry in document.get("tlogs") or [])
        ctlogs = tuple(_log_key(entry) for entry in document.get("ctlogs") or [])
        cas = tuple(_authority(entry) for entry in document.get("certificateAuthorities") or [])
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise fail(f"malformed entry ({error.__class__.__name__}: {error})") from error
    if not tlogs or not cas:
        raise fail("it names no transparency log or no certificate authority")
    return TrustRoot(source, hashlib.sha256(data).hexdigest(), tlogs, ctlogs, cas, data)


def _log_key(entry: dict[str, Any]) -> LogKey:
    public = entry["publicKey"]
    der = base64.b64decode(public["rawBytes"], validate=True)
    # The log id is defined as sha256 of the DER SPKI (Rekor v1, RFC 6962); the root's keyId
    # must agree, otherwise the entry is inconsistent.
    log_id = hashlib.sha256(der).digest()
    declared = base64.b64decode(entry["logId"]["keyId"], validate=True)
    if declared != log_id and public.get("keyDetails", "").startswith("PKIX_ECDSA"):
        raise ValueError(f"log {entry.get('baseUrl')}: keyId is not sha256 of its key")
    # Rekor v2 (Ed25519) logs use a checkpoint key id instead; keep the declared id for them.
    return LogKey(
        str(entry.get("baseUrl", "")),
        der,
        str(public.get("keyDetails", "")),
        declared,
        _window(public["validFor"]),
    )


def _authority(entry: dict[str, Any]) -> CertificateAuthority:
    chain = tuple(
        base64.b64decode(item["rawBytes"], validate=True)
        for item in entry["certChain"]["certificates"]
    )
    if not chain:
        raise ValueError(f"CA {entry.get('uri')} has an empty chain")
    return CertificateAuthority(str(entry.get("uri", "")), chain, _window(entry["validFor"]))


def _window(valid_for: dict[str, Any]) -> Window:
    # A key without the start of its validity is refused (sigstore-conformance
    # trust-root-tlog-missing-validity-start): its window cannot be honoured.
    end = valid_for.get("end")
    return Window(_parse_time(valid_for["start"]), _parse_time(end) if end else None)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
