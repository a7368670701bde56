"""Who a Fulcio certificate says signed, and whether a keyless policy accepts that signer.

Fulcio puts the signer in the SAN (a URI for workflows, an email for people) and the OIDC issuer
in extension 1.3.6.1.4.1.57264.1.8 (a DER UTF8String) or, in older certificates, 1.1 (raw
bytes). GitHub Actions certificates also carry workflow claims (1.2-1.6 legacy, 1.9-1.22).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FULCIO_OID = "1.3.6.1.4.1.57264.1."
ISSUER_V1 = FULCIO_OID + "1"  # raw bytes
ISSUER_V2 = FULCIO_OID + "8"  # DER UTF8String
# Claim name -> (legacy raw-bytes OID, newer DER-string OID or None): the names are cosign's
# --certificate-github-workflow-* flags, without the prefix.
GITHUB_CLAIMS: dict[str, tuple[str, str | None]] = {
    "trigger": (FULCIO_OID + "2", FULCIO_OID + "20"),
    "sha": (FULCIO_OID + "3", FULCIO_OID + "13"),
    "name": (FULCIO_OID + "4", None),
    "repository": (FULCIO_OID + "5", None),
    "ref": (FULCIO_OID + "6", FULCIO_OID + "14"),
}
GITHUB_POLICY_PREFIX = "certificate-github-workflow-"


@dataclass(frozen=True)
class SignerIdentity:
    sans: tuple[str, ...]
    issuer: str | None
    github: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"identities": list(self.sans), "issuer": self.issuer, "github": self.github}


def signer_identity(certificate: Any) -> SignerIdentity:
    from cryptography import x509

    sans: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [
            *san.get_values_for_type(x509.UniformResourceIdentifier),
            *san.get_values_for_type(x509.RFC822Name),
        ]
        sans += [str(other.value) for other in san.get_values_for_type(x509.OtherName)]
    except x509.ExtensionNotFound:
        pass
    raw = {ext.oid.dotted_string: ext.value for ext in certificate.extensions}
    issuer = _der_string(raw.get(ISSUER_V2)) or _raw_string(raw.get(ISSUER_V1))
    github: dict[str, str] = {}
    for name, (legacy, newer) in GITHUB_CLAIMS.items():
        value = _raw_string(raw.get(legacy)) or (_der_string(raw.get(newer)) if newer else None)
        if value:
            github[name] = value
    return SignerIdentity(tuple(sans), issuer, github)


def _bytes_of(value: Any) -> bytes | None:
    # Extensions cryptography does not know come back as UnrecognizedExtension(.value = DER).
    data = getattr(value, "value", None)
    return data if isinstance(data, bytes) else None


def _raw_string(value: Any) -> str | None:
    data = _bytes_of(value)
    if not data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _der_string(value: Any) -> str | None:
    """A DER UTF8String (tag 12) with a short or long length."""
    data = _bytes_of(value)
    if not data or len(data) < 2 or data[0] != 0x0C:
        return None
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 3 or len(data) < 2 + count:
            return None
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    body = data[offset : offset + length]
    if len(body) != length:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class KeylessPolicy:
    """Which signer a keyless signature must come from. Regexps are RE2 (linear time: they may
    come from an index file) and anchored at the start; cosign's are unanchored MatchString,
    which lets `https://github.com/falcosecurity/rules/` match inside an attacker's URL."""

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    github: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_fields(cls, fields: dict[str, Any], where: str) -> KeylessPolicy:
        """From falcoctl's index `signature.cosign` keys (or the same keys in falconet.yaml)."""
        github = []
        for key, value in fields.items():
            if key.startswith(GITHUB_POLICY_PREFIX) and value:
                claim = key[len(GITHUB_POLICY_PREFIX) :]
                if claim not in GITHUB_CLAIMS:
                    raise ValueError(f"{where}: unknown GitHub workflow claim {key!r}")
                github.append((claim, str(value)))
        policy = cls(
            identity=_text(fields.get("certificate-identity")),
            identity_regexp=_text(fields.get("certificate-identity-regexp")),
            issuer=_text(fields.get("certificate-oidc-issuer")),
            issuer_regexp=_text(fields.get("certificate-oidc-issuer-regexp")),
            github=tuple(sorted(github)),
        )
        if not (policy.identity or policy.identity_regexp):
            raise ValueError(f"{where}: a keyless policy needs certificate-identity(-regexp)")
        if not (policy.issuer or policy.issuer_regexp):
            raise ValueError(f"{where}: a keyless policy needs certificate-oidc-issuer(-regexp)")
        for pattern in (policy.identity_regexp, policy.issuer_regexp):
            if pattern is not None:
                _compile(pattern, where)
        return policy

    def describe(self) -> str:
        who = self.identity or f"~{self.identity_regexp}"
        issuer = self.issuer or f"~{self.issuer_regexp}"
        return f"{who} (issuer {issuer})"

    def mismatch(self, signer: SignerIdentity) -> str | None:
        """None when `signer` is acceptable, else why not."""
        if self.identity is not None and self.identity not in signer.sans:
            return f"certificate identity {_list(signer.sans)} is not {self.identity}"
        if self.identity_regexp is not None and not any(
            _matches(self.identity_regexp, san) for san in signer.sans
        ):
            return (
                f"certificate identity {_list(signer.sans)} does not match {self.identity_regexp}"
            )
        if signer.issuer is None:
            return "the certificate names no OIDC issuer"
        if self.issuer is not None and signer.issuer != self.issuer:
            return f"certificate issuer {signer.issuer} is not {self.issuer}"
        if self.issuer_regexp is not None and not _matches(self.issuer_regexp, signer.issuer):
            return f"certificate issuer {signer.issuer} does not match {self.issuer_regexp}"
        for claim, wanted in self.github:
            got = signer.github.get(claim)
            if got != wanted:
                return f"GitHub workflow {claim} is {got!r}, not {wanted!r}"
        return None


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(values) or "(none)"


def _compile(pattern: str, where: str) -> Any:
    import re2

    try:
        return re2.compile(pattern)
    except re2.error as error:
        raise ValueError(f"{where}: invalid regexp {pattern!r}: {error}") from error


def _matches(pattern: str, value: str) -> bool:
    import re2

    return re2.match(f"(?:{pattern})", value) is not None
