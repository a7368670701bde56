"""The rules `falconet run` uses when no -r is given: every .yaml/.yml of the configured rules
directory (artifact.install.rulesfiles_dir), sorted; when none is installed, the configured refs
(by default the embedded, signed falconet-rules feed) are installed first, so `falconet run`
works with no configuration at all."""

from __future__ import annotations

import logging
from pathlib import Path

from feeds.context import FeedsContext

log = logging.getLogger(__name__)

RULES_SUFFIXES = (".yaml", ".yml")


def installed_rules_files(context: FeedsContext) -> list[Path]:
    directory = Path(context.config["artifact.install.rulesfiles_dir"])
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in RULES_SUFFIXES)


def rules_for_run(context: FeedsContext) -> list[Path]:
    """The installed rules files, installing the default refs first when there are none."""
    files = installed_rules_files(context)
    if files:
        return files
    from feeds.install import install, install_dirs_from

    refs = list(context.config["artifact.install.refs"])
    log.warning("no rules installed: installing %s", ", ".join(refs))
    report = install(context, refs, install_dirs_from(context), allowed_types=["rulesfile"])
    for artifact in report.artifacts:
        if artifact.files:
            log.warning(
                "installed %s %s %s (signature: %s): %s",
                artifact.name,
                artifact.version,
                artifact.digest,
                artifact.verification.get("verdict", "n/a"),
                ", ".join(artifact.files),
            )
    return installed_rules_files(context)


def installed_selection(context: FeedsContext) -> list[str] | None:
    """The rule names `artifact install --compliance ...` selected (its config.d fragment next to
    the rules), so that `falconet run` on the installed rules enables the same rules as Falco."""
    from feeds.compliance.operations import SELECTION_NAME
    from feeds.compliance.selection import read_selection

    path = Path(context.config["artifact.install.rulesfiles_dir"]) / SELECTION_NAME
    return read_selection(path) if path.is_file() else None
