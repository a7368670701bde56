"""Filesystem failures while writing falconet's files, as a diagnosis instead of a traceback.

A full disk, a quota, a read-only mount or a directory owned by someone else are the user's to
fix, not bugs: `storage(directory)` turns them into StorageError naming the directory ("no space
left on /var/lib/falconet/rules"). Nested uses name the outermost directory given (the rules
directory, not the hidden staging directory inside it), which is the one a user recognises.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from registry.errors import RegistryError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS,)
_DENIED = (errno.EACCES, errno.EPERM)


class StorageError(RegistryError):
    exit_status = "error"

    def __init__(self, message: str, hint: str | None, directory: Path, code: int) -> None:
        super().__init__(message, hint)
        self.directory = directory
        self.code = code

    def at(self, directory: Path) -> StorageError:
        """The same failure, named by an enclosing directory."""
        error = storage_error(OSError(self.code, ""), directory)
        assert error is not None
        return error


def storage_error(error: OSError, directory: Path) -> StorageError | None:
    """The diagnosis of `error` while writing into `directory`, or None when it is not a
    storage condition (the caller re-raises the original)."""
    code = error.errno or 0
    if code in _FULL:
        what = "no space left" if code == errno.ENOSPC else "disk quota exceeded"
        return StorageError(
            f"{what} on {directory}",
            "free space there (or raise the quota), or point falconet at another directory; "
            "nothing was changed",
            directory,
            code,
        )
    if code in _READ_ONLY:
        return StorageError(
            f"{directory} is read-only (read-only filesystem)",
            "remount it read-write, or configure a writable directory",
            directory,
            code,
        )
    if code in _DENIED:
        return StorageError(
            f"{directory} is not writable by this user (permission denied)",
            "run as the directory's owner, fix its permissions, or configure another directory",
            directory,
            code,
        )
    return None


@contextmanager
def storage(directory: Path) -> Iterator[None]:
    """Writes into `directory` inside this block fail with a StorageError naming it."""
    try:
        yield
    except StorageError as error:
        if error.directory != directory and error.directory.is_relative_to(directory):
            raise error.at(directory) from error
        raise
    except OSError as error:
        mapped = storage_error(error, directory)
        if mapped is None:
            raise
        raise mapped from error
