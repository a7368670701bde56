"""Where a signing-key passphrase comes from: --passphrase-file, FALCONET_KEY_PASSWORD (or cosign's
COSIGN_PASSWORD, so existing CI secrets keep working), else an interactive prompt."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

PASSPHRASE_ENV_VARS = ("FALCONET_KEY_PASSWORD", "COSIGN_PASSWORD")


class PassphraseUnavailable(Exception):
    exit_status = "usage"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def read_passphrase(passphrase_file: Path | None, confirm: bool) -> bytes:
    """The passphrase, asked twice on a terminal when `confirm` (a new key)."""
    if passphrase_file is not None:
        return _from_file(passphrase_file)
    for name in PASSPHRASE_ENV_VARS:
        value = os.environ.get(name)
        if value is not None:
            return value.encode()
    if not sys.stdin.isatty():
        raise PassphraseUnavailable(
            "no passphrase for the private key, and stdin is not a terminal to ask for one",
            "set FALCONET_KEY_PASSWORD or pass --passphrase-file",
        )
    return _prompt(confirm)


def _from_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PassphraseUnavailable(
            f"cannot read passphrase file {path}: {error.strerror}", "check --passphrase-file"
        ) from error
    # Files written by `echo` end with a newline that is not part of the passphrase.
    return data.rstrip(b"\r\n")


def _prompt(confirm: bool) -> bytes:
    first = getpass.getpass("Enter password for private key: ")
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise PassphraseUnavailable("the passwords do not match", "run the command again")
    return first.encode()


def load_signing_key(key_path: Path, passphrase_file: Path | None = None) -> Any:
    """The private key at `key_path`; its passphrase is asked only if it is encrypted."""
    from registry.keys import read_private_key

    return read_private_key(key_path, lambda: read_passphrase(passphrase_file, confirm=False))
