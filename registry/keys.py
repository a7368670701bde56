"""Signing keys in cosign's formats.

Public key: PEM `PUBLIC KEY` (SPKI DER of an ECDSA P-256 key). Private key: PEM
`ENCRYPTED COSIGN PRIVATE KEY` (what cosign 1.x and skopeo write) or `ENCRYPTED SIGSTORE PRIVATE
KEY` (cosign 2.x), whose body is the JSON of go-securesystemslib's `encrypted` package: scrypt
derives a 32-byte key from the passphrase, NaCl secretbox seals the PKCS#8 DER of the key. Plain
(unencrypted) PKCS#8 and SEC1 PEM keys are accepted too, so keys made with openssl work.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry.errors import NetworkError, RegistryError
from registry.transfer import (
    DEFAULT_LIMITS,
    MAX_KEY_SIZE,
    TransferLimits,
    fetch_document,
    is_loopback_url,
)

COSIGN_PRIVATE_PEM = "ENCRYPTED COSIGN PRIVATE KEY"
SIGSTORE_PRIVATE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
ENCRYPTED_PEM_TYPES = (COSIGN_PRIVATE_PEM, SIGSTORE_PRIVATE_PEM)
PUBLIC_PEM = "PUBLIC KEY"

# skopeo 1.18 and cosign write N=65536; the older go-tuf `encrypted` package demands 32768.
WRITE_SCRYPT_N = 65536
READ_SCRYPT_N = (32768, 65536)
SCRYPT_R = 8
SCRYPT_P = 1
# hashlib's default scrypt memory limit (32 MiB) is below the 64 MiB that N=65536, r=8 needs.
SCRYPT_MAXMEM = 256 << 20
SALT_SIZE = 32
KEY_URL_TIMEOUT_S = 10.0
MAX_KEY_FILE_SIZE = MAX_KEY_SIZE

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey
PassphraseSource = Callable[[], bytes]


class KeyFormatError(RegistryError):
    """A key file that is not a usable cosign/PKCS#8/SPKI ECDSA key."""

    exit_status = "usage"


class PassphraseError(RegistryError):
    """The passphrase does not open the encrypted private key."""

    exit_status = "usage"


@dataclass(frozen=True)
class KeyPairFiles:
    private_path: Path
    public_path: Path
    fingerprint: str


def generate_private_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def fingerprint(public_key: PublicKey) -> str:
    """sha256 of the SPKI DER: stable across PEM line wrapping, matches `openssl pkey -pubin
    -outform DER | sha256sum`."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def public_key_pem(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_pkcs8_pem(private_key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM: the form openssl reads (used for interop, never written by
    `key generate`)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def encrypt_private_key(
    private_key: PrivateKey, passphrase: bytes, scrypt_n: int = WRITE_SCRYPT_N
) -> bytes:
    """The `ENCRYPTED COSIGN PRIVATE KEY` PEM of `private_key`."""
    der = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    import nacl.secret  # only sealed (cosign-encrypted) keys need libsodium

    salt = os.urandom(SALT_SIZE)
    box = nacl.secret.SecretBox(_derive_key(passphrase, salt, scrypt_n, SCRYPT_R, SCRYPT_P))
    nonce = os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
    sealed = box.encrypt(der, nonce).ciphertext
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": _b64(salt),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(sealed),
    }
    return _pem_encode(COSIGN_PRIVATE_PEM, json.dumps(document, separators=(",", ":")).encode())


def load_private_key(
    data: bytes, passphrase: PassphraseSource | None, source: str = "private key"
) -> PrivateKey:
    """Parse a private key; `passphrase` is only asked for when the key is encrypted."""
    block_type, body = _first_pem_block(data, source)
    if block_type in ENCRYPTED_PEM_TYPES:
        if passphrase is None:
            raise PassphraseError(
                f"{source} is encrypted and no passphrase was given",
                "set FALCONET_KEY_PASSWORD or pass --passphrase-file",
            )
        der = _decrypt_sealed_key(body, passphrase(), source)
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, UnsupportedAlgorithm) as error:
            raise KeyFormatError(
                f"{source}: the decrypted key is not PKCS#8 DER", _KEY_HINT
            ) from error
    elif block_type in ("PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        key = _load_standard_private_pem(data, block_type, passphrase, source)
    else:
        raise KeyFormatError(f"{source}: PEM block '{block_type}' is not a private key", _KEY_HINT)
    return _require_ecdsa_private(key, source)


def load_public_key(data: bytes, source: str = "public key") -> PublicKey:
    block_type, _ = _first_pem_block(data, source)
    if block_type != PUBLIC_PEM:
        hint = (
            "that is a private key: verify with the .pub file"
            if "PRIVATE" in block_type
            else "give the cosign.pub file written by `falconet key generate` or `cosign "
            "generate-key-pair`"
        )
        raise KeyFormatError(f"{source}: PEM block '{block_type}' is not a public key", hint)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise KeyFormatError(
            f"{source}: not a valid PUBLIC KEY PEM ({error})", _KEY_HINT
        ) from error
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise KeyFormatError(
            f"{source}: {type(key).__name__.removeprefix('_')} keys are not supported",
            "falconet verifies ECDSA (P-256) keys, cosign's default",
        )
    return key


def read_private_key(path: Path, passphrase: PassphraseSource | None) -> PrivateKey:
    return load_private_key(_read_key_file(path), passphrase, source=str(path))


def read_public_key(key_ref: str, limits: TransferLimits = DEFAULT_LIMITS) -> PublicKey:
    """A public key given as inline PEM, an http(s) URL to a PEM, or a file path."""
    if "-----BEGIN" in key_ref:
        return load_public_key(key_ref.encode(), source="inline public key")
    if key_ref.startswith(("https://", "http://")):
        if key_ref.startswith("http://") and not is_loopback_url(key_ref):
            # A key fetched in clear could be swapped on the way: it would verify anything.
            raise KeyFormatError(
                f"refusing to fetch public key {key_ref} over plain HTTP",
                "use an https:// URL or a local key file",
            )
        return load_public_key(_download_key(key_ref, limits), source=key_ref)
    return load_public_key(_read_key_file(Path(key_ref).expanduser()), source=key_ref)


def write_key_pair(prefix: Path, passphrase: bytes, overwrite: bool = False) -> KeyPairFiles:
    """Write `<prefix>.key` (0600, encrypted) and `<prefix>.pub`; nothing is written when either
    exists (unless `overwrite`), and a failure leaves no partial file."""
    private_path = prefix.with_name(prefix.name + ".key")
    public_path = prefix.with_name(prefix.name + ".pub")
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not overwrite:
        raise KeyFormatError(
            f"{existing[0]} already exists",
            "choose another --output-prefix, or pass --force to replace the pair",
        )
    if not private_path.parent.is_dir():
        raise KeyFormatError(
            f"directory {private_path.parent} does not exist", "create it or fix --output-prefix"
        )
    key = generate_private_key()
    private_pem = encrypt_private_key(key, passphrase)
    _write_atomically(private_path, private_pem, mode=0o600)
    try:
        _write_atomically(public_path, public_key_pem(key.public_key()), mode=0o644)
    except OSError:
        private_path.unlink(missing_ok=True)
        raise
    return KeyPairFiles(private_path, public_path, fingerprint(key.public_key()))


_KEY_HINT = (
    "use a key from `falconet key generate` or `cosign generate-key-pair`, or an ECDSA P-256 "
    "PKCS#8 PEM"
)


def _derive_key(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    import nacl.secret

    return hashlib.scrypt(
        passphrase,
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=SCRYPT_MAXMEM,
        dklen=nacl.secret.SecretBox.KEY_SIZE,
    )


def _decrypt_sealed_key(body: bytes, passphrase: bytes, source: str) -> bytes:
    import nacl.exceptions
    import nacl.secret

    document = _parse_sealed_document(body, source)
    kdf, cipher = document["kdf"], document["cipher"]
    params = kdf["params"]
    key = _derive_key(
        passphrase, _unb64(kdf["salt"], source), params["N"], params["r"], params["p"]
    )
    box = nacl.secret.SecretBox(key)
    try:
        return box.decrypt(_unb64(document["ciphertext"], source), _unb64(cipher["nonce"], source))
    except nacl.exceptions.CryptoError as error:
        raise PassphraseError(
            f"{source}: wrong passphrase (decryption failed)",
            "check FALCONET_KEY_PASSWORD / --passphrase-file; the key cannot be opened without it",
        ) from error


def _parse_sealed_document(body: bytes, source: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
        kdf, cipher = document["kdf"], document["cipher"]
        params = kdf["params"]
        valid = (
            kdf["name"] == "scrypt"
            and cipher["name"] == "nacl/secretbox"
            and params["N"] in READ_SCRYPT_N
            and params["r"] == SCRYPT_R
            and params["p"] == SCRYPT_P
            and isinstance(document["ciphertext"], str)
        )
    except (ValueError, KeyError, TypeError) as error:
        raise KeyFormatError(
            f"{source}: the encrypted key is not cosign's scrypt/secretbox JSON", _KEY_HINT
        ) from error
    if not valid:
        raise KeyFormatError(
            f"{source}: unsupported key encryption (kdf {kdf.get('name')!r} "
            f"{params!r}, cipher {cipher.get('name')!r})",
            "falconet reads scrypt (N=32768 or 65536, r=8, p=1) with nacl/secretbox, as cosign "
            "writes",
        )
    return document


def _load_standard_private_pem(
    data: bytes, block_type: str, passphrase: PassphraseSource | None, source: str
) -> Any:
    password = None
    if block_type == "ENCRYPTED PRIVATE KEY":
        if passphrase is None:
            raise PassphraseError(
                f"{source} is encrypted and no passphrase was given",
                "set FALCONET_KEY_PASSWORD or pass --passphrase-file",
            )
        password = passphrase()
    try:
        return serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        if password is not None:
            raise PassphraseError(
                f"{source}: wrong passphrase or damaged key ({error})",
                "check FALCONET_KEY_PASSWORD / --passphrase-file",
            ) from error
        raise KeyFormatError(
            f"{source}: not a valid private key PEM ({error})", _KEY_HINT
        ) from error


def _require_ecdsa_private(key: Any, source: str) -> PrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFormatError(
            f"{source}: {type(key).__name__.removeprefix('_')} keys are not supported",
            "falconet signs with ECDSA P-256 keys, cosign's default",
        )
    return key


def _first_pem_block(data: bytes, source: str) -> tuple[str, bytes]:
    match = _PEM_BLOCK.search(data)
    if match is None:
        raise KeyFormatError(f"{source}: no PEM block found (not a key file?)", _KEY_HINT)
    block_type = match.group(1).decode()
    body = match.group(2)
    # Standard PEM may carry RFC 1421 headers ("Proc-Type: ..."); cosign's never do.
    if b":" in body.split(b"\n", 1)[0]:
        return block_type, b""
    try:
        return block_type, base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error as error:
        raise KeyFormatError(f"{source}: the PEM body is not valid base64", _KEY_HINT) from error


def _pem_encode(block_type: str, der: bytes) -> bytes:
    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (
        f"-----BEGIN {block_type}-----\n" + "\n".join(lines) + f"\n-----END {block_type}-----\n"
    ).encode()


def _read_key_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_KEY_FILE_SIZE:
            raise KeyFormatError(f"{path}: {size} bytes is too large for a key file", _KEY_HINT)
        return path.read_bytes()
    except FileNotFoundError as error:
        raise KeyFormatError(f"key file {path} does not exist", "check the --key path") from error
    except IsADirectoryError as error:
        raise KeyFormatError(f"key file {path} is a directory", "check the --key path") from error
    except PermissionError as error:
        raise KeyFormatError(
            f"key file {path} is not readable by this user", "check the file's permissions"
        ) from error


@functools.lru_cache(maxsize=16)
def _download_key(url: str, limits: TransferLimits = DEFAULT_LIMITS) -> bytes:
    """Cached per process: an install verifying many artifacts fetches a key URL once. Read
    bounded (a key is a few hundred bytes; an endless body stops at MAX_KEY_SIZE)."""
    try:
        fetched = fetch_document(
            "GET",
            url,
            f"public key {url}",
            max_size=MAX_KEY_SIZE,
            limits=limits,
            connect_timeout=KEY_URL_TIMEOUT_S,
            read_timeout=KEY_URL_TIMEOUT_S,
            too_large=_key_too_large,
        )
    except NetworkError as error:
        raise NetworkError(
            str(error), error.hint or "check the URL, or use a local key file"
        ) from error
    if fetched.status != 200:
        raise NetworkError(
            f"cannot fetch public key {url}: HTTP {fetched.status}",
            "check the URL, or use a local key file",
        )
    return fetched.body


def _key_too_large(message: str) -> KeyFormatError:
    return KeyFormatError(f"{message}: not a key file", _KEY_HINT)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)  # the umask may have narrowed or widened it
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, source: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError) as error:
        raise KeyFormatError(
            f"{source}: a field of the encrypted key is not base64", _KEY_HINT
        ) from error
