"""Cosign-format keys: generation, encryption at rest, loading of cosign/PKCS#8/SEC1 keys, and the
refusals (wrong passphrase, malformed files, unsupported key types)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cli.passphrase import PASSPHRASE_ENV_VARS
from registry import keys
from tests.conftest import REPO_ROOT

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def _pem_json(path: Path) -> dict:
    lines = path.read_text().strip().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED COSIGN PRIVATE KEY-----"
    return json.loads(base64.b64decode("".join(lines[1:-1])))


def test_key_generate_writes_a_cosign_pair(run_cli, tmp_path: Path) -> None:
    prefix = tmp_path / "release"
    result = run_cli(
        "key", "generate", "--output-prefix", str(prefix), env={"FALCONET_KEY_PASSWORD": "s3cret"}
    )
    assert result.returncode == 0, result.stderr
    private, public = tmp_path / "release.key", tmp_path / "release.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    document = _pem_json(private)
    assert document["kdf"]["name"] == "scrypt"
    assert document["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert len(base64.b64decode(document["kdf"]["salt"])) == 32
    assert document["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(document["cipher"]["nonce"])) == 24

    opened = keys.read_private_key(private, lambda: b"s3cret")
    published = keys.read_public_key(str(public))
    assert keys.fingerprint(opened.public_key()) == keys.fingerprint(published)
    assert keys.fingerprint(published) in result.stdout
    assert not list(tmp_path.glob(".*tmp"))


@needs_openssl
def test_fingerprint_is_sha256_of_the_spki_der(tmp_path: Path) -> None:
    files = keys.write_key_pair(tmp_path / "k", b"pw")
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(files.public_path), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    assert files.fingerprint == "sha256:" + hashlib.sha256(der).hexdigest()


def test_generate_refuses_to_overwrite_and_keeps_the_old_pair(run_cli, tmp_path: Path) -> None:
    env = {"FALCONET_KEY_PASSWORD": "one"}
    prefix = str(tmp_path / "cosign")
    assert run_cli("key", "generate", "--output-prefix", prefix, env=env).returncode == 0
    before = (tmp_path / "cosign.key").read_bytes()
    again = run_cli("key", "generate", "--output-prefix", prefix, env=env)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert (tmp_path / "cosign.key").read_bytes() == before
    forced = run_cli("key", "generate", "--output-prefix", prefix, "--force", env=env)
    assert forced.returncode == 0
    assert (tmp_path / "cosign.key").read_bytes() != before


def test_passphrase_file_trailing_newline_is_not_part_of_it(run_cli, tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text("from-a-file\n")
    result = run_cli(
        "key", "generate", "--output-prefix", str(tmp_path / "k"), "--passphrase-file", str(secret)
    )
    assert result.returncode == 0, result.stderr
    keys.read_private_key(tmp_path / "k.key", lambda: b"from-a-file")


def test_no_passphrase_source_without_a_terminal_is_a_usage_error(run_cli, tmp_path: Path) -> None:
    result = run_cli("key", "generate", "--output-prefix", str(tmp_path / "k"), input="")
    assert result.returncode == 2
    assert "FALCONET_KEY_PASSWORD" in result.stderr
    assert not list(tmp_path.glob("k.*"))


def test_wrong_passphrase_is_refused_with_a_hint(tmp_path: Path) -> None:
    files = keys.write_key_pair(tmp_path / "k", b"right")
    with pytest.raises(keys.PassphraseError) as caught:
        keys.read_private_key(files.private_path, lambda: b"wrong")
    assert "wrong passphrase" in str(caught.value)
    assert caught.value.exit_status == "usage" and caught.value.hint


def test_both_scrypt_costs_and_both_pem_labels_are_read() -> None:
    key = keys.generate_private_key()
    older = keys.encrypt_private_key(key, b"pw", scrypt_n=32768)
    assert _decoded_params(older)["N"] == 32768
    sigstore_label = older.replace(b"COSIGN", b"SIGSTORE")
    for pem in (older, sigstore_label):
        opened = keys.load_private_key(pem, lambda: b"pw")
        assert keys.fingerprint(opened.public_key()) == keys.fingerprint(key.public_key())


def test_unsupported_kdf_cost_is_refused_before_deriving() -> None:
    pem = keys.encrypt_private_key(keys.generate_private_key(), b"pw", scrypt_n=32768)
    body = base64.b64decode(b"".join(pem.splitlines()[1:-1]))
    document = json.loads(body)
    document["kdf"]["params"]["N"] = 1 << 22  # 4 GiB of scrypt memory: a denial of service
    forged = keys._pem_encode(keys.COSIGN_PRIVATE_PEM, json.dumps(document).encode())
    with pytest.raises(keys.KeyFormatError, match="unsupported key encryption"):
        keys.load_private_key(forged, lambda: b"pw")


def _decoded_params(pem: bytes) -> dict:
    return json.loads(base64.b64decode(b"".join(pem.splitlines()[1:-1])))["kdf"]["params"]


@needs_openssl
@pytest.mark.parametrize(
    "command",
    [
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256",  # PKCS#8
        "openssl ecparam -name prime256v1 -genkey -noout",  # SEC1 "EC PRIVATE KEY"
    ],
)
def test_plain_openssl_keys_are_accepted(command: str) -> None:
    pem = subprocess.run(command.split(), capture_output=True, check=True).stdout
    key = keys.load_private_key(pem, passphrase=None)
    assert key.curve.name == "secp256r1"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no PEM block"),
        (b"hello, I am not a key\n", "no PEM block"),
        (b"-----BEGIN PUBLIC KEY-----\n%%%%\n-----END PUBLIC KEY-----\n", "not valid base64"),
        (
            b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\nbm90IGpzb24=\n"
            b"-----END ENCRYPTED COSIGN PRIVATE KEY-----\n",
            "not cosign's scrypt/secretbox JSON",
        ),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a private key"),
    ],
)
def test_malformed_private_keys_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(keys.KeyFormatError, match=message) as caught:
        keys.load_private_key(data, lambda: b"pw", source="bad.key")
    assert caught.value.exit_status == "usage"
    assert "bad.key" in str(caught.value)


def test_rsa_keys_are_refused_with_the_reason() -> None:
    from cryptography.hazmat.primitives import serialization

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(keys.KeyFormatError, match="not supported"):
        keys.load_public_key(public_pem)


def test_a_private_key_given_where_a_public_key_is_expected(tmp_path: Path) -> None:
    files = keys.write_key_pair(tmp_path / "k", b"pw")
    with pytest.raises(keys.KeyFormatError) as caught:
        keys.read_public_key(str(files.private_path))
    assert ".pub" in (caught.value.hint or "")


def test_public_key_from_inline_pem_and_missing_file(tmp_path: Path) -> None:
    files = keys.write_key_pair(tmp_path / "k", b"pw")
    inline = files.public_path.read_text()
    assert keys.fingerprint(keys.read_public_key(inline)) == files.fingerprint
    with pytest.raises(keys.KeyFormatError, match="does not exist"):
        keys.read_public_key(str(tmp_path / "absent.pub"))


def _run_on_a_terminal(
    args: list[str], answers: list[bytes], env: dict[str, str]
) -> tuple[int, bytes]:
    """Run the CLI with a pseudo-terminal as its controlling terminal (getpass reads /dev/tty),
    answering each password prompt in turn."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal and stdio
        os.execve(sys.executable, [sys.executable, "-m", "cli", *args], env)
    transcript = b""
    pending = list(answers)
    while True:
        if not select.select([fd], [], [], 30)[0]:  # a prompt we do not answer: fail, not hang
            os.kill(pid, signal.SIGKILL)
            break
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        transcript += chunk
        if pending and chunk.rstrip().endswith(b":"):
            os.write(fd, pending.pop(0) + b"\n")
            transcript += b"\n"
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), transcript


def _terminal_env(falconet_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PASSPHRASE_ENV_VARS}
    env.update(PYTHONPATH=str(REPO_ROOT), FALCONET_HOME=str(falconet_home))
    return env


def test_interactive_prompt_asks_twice(tmp_path: Path, falconet_home: Path) -> None:
    prefix = str(tmp_path / "tty")
    env = _terminal_env(falconet_home)
    status, transcript = _run_on_a_terminal(
        ["key", "generate", "--output-prefix", prefix], [b"typed", b"typed"], env
    )
    assert status == 0, transcript
    assert transcript.count(b"Enter password for private key") == 2
    keys.read_private_key(tmp_path / "tty.key", lambda: b"typed")

    status, transcript = _run_on_a_terminal(
        ["key", "generate", "--output-prefix", str(tmp_path / "typo")], [b"one", b"two"], env
    )
    assert status == 2 and b"do not match" in transcript
    assert not (tmp_path / "typo.key").exists()


def test_encrypted_pkcs8_from_openssl_tools_is_accepted() -> None:
    from cryptography.hazmat.primitives import serialization

    key = keys.generate_private_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pkcs8-pass"),
    )
    opened = keys.load_private_key(pem, lambda: b"pkcs8-pass")
    assert keys.fingerprint(opened.public_key()) == keys.fingerprint(key.public_key())
    with pytest.raises(keys.PassphraseError):
        keys.load_private_key(pem, lambda: b"wrong")
    with pytest.raises(keys.PassphraseError, match="no passphrase"):
        keys.load_private_key(pem, None)
