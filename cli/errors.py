"""Turns core errors into one line plus a hint and the matching exit status."""

from __future__ import annotations

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
        if not hasattr(error, "exit_status"):
            hint = hint or "this is a bug in falconet; run again with --debug for the traceback"
            error_line(f"{type(error).__name__}: {error}", hint)
        else:
            error_line(str(error), hint)
        sys.exit(int(ExitStatus.for_error(error)))
