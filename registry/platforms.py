"""Platforms of multi-arch plugins: `os/arch` strings, the host's, and index selection."""

from __future__ import annotations

import platform as host_platform
import re
import sys
from typing import Any

from registry.errors import NotFoundError, ReferenceError_
from registry.store import Descriptor

_PLATFORM_RE = re.compile(r"^[a-z]+/[a-z0-9_]+$")


# uname's machine names -> the GOARCH names registries use (falcoctl defaults to GOOS/GOARCH).
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def host_platform_string() -> str:
    """This host as falcoctl's default --platform: linux/amd64 on x86_64, linux/arm64 on aarch64."""
    machine = host_platform.machine().lower()
    os_name = "linux" if sys.platform.startswith("linux") else sys.platform
    return f"{os_name}/{_GOARCH.get(machine, machine)}"


def parse_platform(text: str) -> dict[str, str]:
    if not _PLATFORM_RE.match(text):
        raise ReferenceError_(
            f"invalid platform {text!r}", hint="use os/arch, e.g. linux/amd64 or linux/arm64"
        )
    os_name, arch = text.split("/")
    # Field order as image-spec's Platform struct serialises it.
    return {"architecture": arch, "os": os_name}


def platform_string(platform: dict[str, str] | None) -> str:
    if not platform:
        return ""
    return f"{platform.get('os', '')}/{platform.get('architecture', '')}"


def select_platform(index: dict[str, Any], wanted: str, what: str) -> Descriptor:
    """The index entry whose os/architecture match exactly (falcoctl does no variant matching)."""
    available: list[str] = []
    for raw in index.get("manifests") or ():
        entry = Descriptor.from_json(raw)
        text = platform_string(entry.platform)
        available.append(text or "(no platform)")
        if text == wanted:
            return entry
    raise NotFoundError(
        f"{what} has no manifest for platform {wanted}",
        hint=f"available: {', '.join(available) or 'none'}; pass --platform",
    )
