"""What falconet adds when it publishes: the compliance frameworks a rules artifact covers, as a
manifest annotation (indexes can copy it into an entry's `compliance:` list; `artifact search
--compliance` filters on that list without pulling)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

COMPLIANCE_ANNOTATION = "dev.falconet.compliance"


def compliance_annotations(artifact_type: str, files: Sequence[Path]) -> dict[str, str]:
    """{COMPLIANCE_ANNOTATION: "pci-dss,nist-800-53,..."} for a rules YAML; {} otherwise."""
    if artifact_type != "rulesfile" or not all(
        f.suffix in (".yaml", ".yml") and f.is_file() for f in files
    ):
        return {}
    from feeds.compliance.operations import frameworks_covered

    try:
        covered = frameworks_covered(files)
    except Exception as error:
        log.debug("no compliance annotation for %s: %s", files, error)
        return {}
    return {COMPLIANCE_ANNOTATION: ",".join(covered)} if covered else {}
