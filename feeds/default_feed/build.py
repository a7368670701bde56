"""Rebuild the embedded default feed: `python -m feeds.default_feed.build`.

The layout is built reproducibly (fixed tar metadata, no timestamps), so rebuilding from the same
rules file gives the same digests; tests check that the shipped layout is up to date.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

FEED_DIR = Path(str(resources.files("feeds.default_feed")))
RULES_FILE = FEED_DIR / "falconet_rules.yaml"
REPOSITORY = "falconet-rules"
VERSION = "0.1.0"


def build(feed_dir: Path, rules_file: Path = RULES_FILE) -> str:
    """Push the rules file into <feed_dir>/layout/<REPOSITORY>; returns the manifest digest."""
    from registry.artifacts import PushSpec, push_artifact
    from registry.reference import parse_reference
    from registry.store import open_store

    layout = feed_dir / "layout" / REPOSITORY
    if layout.exists():
        shutil.rmtree(layout)
    store = open_store(parse_reference(f"oci-layout:{layout}:{VERSION}"))
    staged = feed_dir / "layout" / ".build" / "falconet_rules.yaml"
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(rules_file, staged)  # the layer title is the file's basename
    try:
        result = push_artifact(
            store,
            PushSpec(
                "rulesfile",
                [staged],
                VERSION,
                name=REPOSITORY,
                tags=["latest"],
                add_floating_tags=True,
            ),
        )
    finally:
        shutil.rmtree(staged.parent)
    return result.digest


def main() -> int:
    digest = build(FEED_DIR)
    sys.stdout.write(f"{REPOSITORY}:{VERSION} {digest}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
