"""Reaching a file named by event data without following any symlink.

A path from an alert is hostile: any of its directories may be a symlink planted to send a
response elsewhere (quarantine `/tmp/x/passwd` where `/tmp/x -> /etc`). `open_parent` walks the
path from `/` one component at a time with directory file descriptors, each opened with
O_NOFOLLOW | O_DIRECTORY relative to the one before, so no component can be a symlink (the walk
fails with ELOOP / ENOTDIR instead), and returns the final directory's descriptor and the last
name: what the caller opens or renames relative to that descriptor (`dir_fd=`), never by path.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from engine.response.errors import ActionError, ActionRefused

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Parent:
    """An open directory (`fd`), the name in it, the walked path, and the (st_dev, st_ino) of
    every directory on the way, `/` first."""

    fd: int
    name: str
    path: str
    directories: list[tuple[int, int]] = field(default_factory=list)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Parent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def components(path: str) -> list[str]:
    """The names of an absolute path; `.` and `..` are refused (they would be resolved through
    whatever the directory before them really is)."""
    if not path.startswith("/"):
        raise ActionError(f"not an absolute path: {path!r}")
    if "\0" in path:
        raise ActionRefused(f"refusing a path with a NUL byte: {path!r}")
    names = [name for name in path.split("/") if name]
    if any(name in (".", "..") for name in names):
        raise ActionRefused(f"refusing {path!r}: it has '.' or '..' components")
    if not names:
        raise ActionRefused("refusing '/'")
    return names


def open_parent(path: str) -> Parent:
    """The directory holding `path`'s last component, reached without following symlinks.
    ActionRefused when a directory on the way is a symlink (or not a directory); ActionError
    when it does not exist."""
    names = components(path)
    fd = os.open("/", _DIRECTORY_FLAGS)
    walked = "/"
    directories = [_identity(fd)]
    try:
        for name in names[:-1]:
            try:
                next_fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=fd)
            except OSError as error:
                here = os.path.join(walked, name)
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ActionRefused(
                        f"refusing {path}: {here} is a symlink or not a directory",
                        "a response never follows symlinks in event paths",
                    ) from None
                if error.errno == errno.ENOENT:
                    raise ActionError(f"{path} no longer exists ({here} is gone)") from None
                raise ActionError(f"cannot open {here}: {error.strerror}") from None
            os.close(fd)
            fd = next_fd
            walked = os.path.join(walked, name)
            directories.append(_identity(fd))
    except BaseException:
        os.close(fd)
        raise
    return Parent(fd, names[-1], "/" + "/".join(names), directories)


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino
