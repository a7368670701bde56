"""Rebuild the embedded default feed: `python -m feeds.default_feed.build`.

The artifact is built reproducibly (fixed tar metadata, no timestamps), so rebuilding from the
same rules file gives the same digest; the shipped layout is then left as it is (its signature
included). A changed rules file gives a new digest, signed with the feed key
(deploy/keys/README.md). Tests check that the shipped layout is up to date and verifies.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

FEED_DIR = Path(str(resources.files("feeds.default_feed")))
RULES_FILE = FEED_DIR / "falconet_rules.yaml"
PUBLIC_KEY = FEED_DIR / "falconet-feed.pub.pem"
DEV_SIGNING_KEY = FEED_DIR.parent.parent / "deploy" / "keys" / "falconet-feed-dev.key"
REPOSITORY = "falconet-rules"
VERSION = "0.2.0"


def build_layout(layout: Path, rules_file: Path = RULES_FILE) -> str:
    """Push the rules file as a rulesfile artifact into the OCI layout; returns its digest."""
    from registry.artifacts import PushSpec, push_artifact
    from registry.reference import parse_reference
    from registry.store import open_store

    store = open_store(parse_reference(f"oci-layout:{layout}:{VERSION}"))
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "falconet_rules.yaml"  # the layer title is the file's basename
        shutil.copyfile(rules_file, staged)
        spec = PushSpec(
            "rulesfile", [staged], VERSION, name=REPOSITORY, tags=["latest"], add_floating_tags=True
        )
        return push_artifact(store, spec).digest


def sign_layout(layout: Path, digest: str, key_file: Path) -> None:
    from registry.keys import read_private_key
    from registry.reference import Reference, parse_reference
    from registry.signatures import sign_artifact
    from registry.store import open_store

    store = open_store(parse_reference(f"oci-layout:{layout}:{VERSION}"))
    # The payload names the feed as shipped, not the build machine's path.
    identity = Reference("", REPOSITORY, VERSION, layout=Path(REPOSITORY))
    sign_artifact(store, identity, digest, read_private_key(key_file, None))


def shipped_digest(layout: Path) -> str | None:
    from registry.reference import parse_reference
    from registry.store import open_store

    if not (layout / "index.json").is_file():
        return None
    return open_store(parse_reference(f"oci-layout:{layout}:{VERSION}")).resolve(VERSION).digest


def build(feed_dir: Path = FEED_DIR, key_file: Path = DEV_SIGNING_KEY) -> tuple[str, bool]:
    """(digest, rebuilt): rebuild only when the rules changed, then sign."""
    layout = feed_dir / "layout" / REPOSITORY
    with tempfile.TemporaryDirectory() as tmp:
        digest = build_layout(Path(tmp) / REPOSITORY)
        if digest == shipped_digest(layout):
            return digest, False
        if layout.exists():
            shutil.rmtree(layout)
        shutil.copytree(Path(tmp) / REPOSITORY, layout)
    sign_layout(layout, digest, key_file)
    return digest, True


def main() -> int:
    digest, rebuilt = build()
    state = "rebuilt and signed" if rebuilt else "unchanged"
    sys.stdout.write(f"{REPOSITORY}:{VERSION} {digest} ({state})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
