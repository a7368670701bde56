"""A minimal inotify(7) wrapper (ctypes, Linux): wait until something changes in a set of
directories. Directories, not files, are watched: editors and `artifact follow` replace a file
by renaming a new one over it, which a watch on the old inode would miss."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
from collections.abc import Iterable
from pathlib import Path

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
CHANGES = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
)


class InotifyUnavailable(OSError):
    """No inotify here (not Linux, or no instance left): poll instead."""


class DirectoryWatch:
    def __init__(self, directories: Iterable[Path]) -> None:
        name = ctypes.util.find_library("c")
        if name is None:
            raise InotifyUnavailable("no libc")
        libc = ctypes.CDLL(name, use_errno=True)
        if not hasattr(libc, "inotify_init1"):
            raise InotifyUnavailable("no inotify in this libc")
        self._fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise InotifyUnavailable(os.strerror(ctypes.get_errno()))
        for directory in {str(Path(d).resolve()) for d in directories}:
            if libc.inotify_add_watch(self._fd, directory.encode(), CHANGES) < 0:
                self.close()
                raise InotifyUnavailable(f"{directory}: {os.strerror(ctypes.get_errno())}")

    def wait(self, timeout: float) -> bool:
        """True when something changed within `timeout` seconds (the events are consumed)."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return False
        try:
            while os.read(self._fd, 65536):
                pass
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
