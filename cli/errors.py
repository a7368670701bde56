"""Turns core errors into one line plus a hint and the matching exit status."""

from __future__ import annotations

import errno
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from cli.context import ENV
from cli.render import error_line
from cli.status import ExitStatus


@contextmanager
def exit_on_error() -> Iterator[None]:
    try:
        yield
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as error:  # the one place every failure is rendered
        if ENV.debug:
            traceback.print_exc()
        hint = getattr(error, "hint", None)
        if isinstance(error, OSError) and error.errno in _STORAGE_HINTS:
            # Core code names the directory (registry.storage); this is the net under it.
            where = f": {error.filename}" if error.filename else ""
            error_line(f"{error.strerror or error}{where}", _STORAGE_HINTS[error.errno])
            sys.exit(int(ExitStatus.ERROR))
        if not hasattr(error, "exit_status"):
            hint = hint or "this is a bug in falconet; run again with --debug for the traceback"
            error_line(f"{type(error).__name__}: {error}", hint)
        else:
            error_line(str(error), hint)
        sys.exit(int(ExitStatus.for_error(error)))


_STORAGE_HINTS = {
    errno.ENOSPC: "free space on that filesystem, or configure another directory",
    errno.EDQUOT: "free space (or raise the quota), or configure another directory",
    errno.EROFS: "the filesystem is mounted read-only: remount it or configure another directory",
    errno.EACCES: "fix the permissions, or run as the owner of that path",
    errno.EPERM: "fix the permissions, or run as the owner of that path",
}
