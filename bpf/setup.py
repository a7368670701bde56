"""The environment bcc needs, checked (and, as root, repaired) before any probe is loaded.

Each check returns a `Check` with the exact fix. Repairs are the ones that are safe to do on the
fly and that this kind of machine needs: mounting tracefs, and linking Debian's kernel headers
under /lib/modules/$(uname -r) when the running kernel has no headers package of its own (bcc
compiles its C programs against them; our programs use only stable UAPI types and tracepoint
arguments, so a nearby header version is enough).
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bpf.errors import BpfRequirementError

log = logging.getLogger(__name__)

TRACEFS = Path("/sys/kernel/tracing")
BTF = Path("/sys/kernel/btf/vmlinux")
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
HEADERS_GLOB = "/usr/src/linux-headers-*"
DEBIAN_PACKAGES = "bpfcc-tools python3-bpfcc linux-headers-amd64"
# Capabilities (bit numbers, linux/capability.h) live capture needs: CAP_SYS_ADMIN covers all of
# them on kernels before 5.8; CAP_BPF + CAP_PERFMON (+ CAP_SYS_RESOURCE for memlock) after.
CAP_SYS_ADMIN = 21
CAP_SYS_PTRACE = 19
CAP_SYS_RESOURCE = 24
CAP_PERFMON = 38
CAP_BPF = 39
MIN_KERNEL = (5, 8)  # BPF ring buffer


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


def kernel_release() -> str:
    return platform.release()


def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


def check_kernel() -> Check:
    release = kernel_release()
    ok = _kernel_version(release) >= MIN_KERNEL
    return Check(
        "kernel", ok, release, None if ok else "boot a kernel >= 5.8 (BPF ring buffer needed)"
    )


def check_btf() -> Check:
    ok = os.path.exists(BTF)
    # bcc does not need BTF (it compiles against headers); reported because Falco's modern
    # probe does, and it tells the user what the kernel offers.
    return Check("btf", ok, str(BTF) if ok else "absent", None if ok else "optional for falconet")


def effective_capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_capabilities() -> Check:
    caps = effective_capabilities()
    has = lambda bit: bool(caps >> bit & 1)  # noqa: E731
    ok = has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON) and has(CAP_SYS_RESOURCE))
    return Check(
        "capabilities",
        ok,
        f"CapEff={caps:#x}",
        None if ok else "run as root, or grant CAP_BPF,CAP_PERFMON,CAP_SYS_RESOURCE,CAP_SYS_PTRACE",
    )


def check_bpf_permitted() -> Check:
    """Ask the kernel directly: BPF_PROG_LOAD-free probe with bpf(BPF_MAP_CREATE) of an array."""
    libc = ctypes.CDLL(None, use_errno=True)
    # union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries.
    attr = (ctypes.c_uint32 * 30)(2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY
    syscall_bpf = 321  # x86_64
    fd = libc.syscall(syscall_bpf, 0, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        err = ctypes.get_errno()
        return Check(
            "bpf syscall",
            False,
            os.strerror(err),
            "run as root (or with CAP_BPF) and set kernel.unprivileged_bpf_disabled as needed",
        )
    os.close(fd)
    return Check("bpf syscall", True, "permitted")


def _tracefs_mounted() -> bool:
    # /proc/self/mounts, not the directory: an unprivileged user may not look inside tracefs.
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[1] == str(TRACEFS) and fields[2] == "tracefs":
            return True
    return False


def mount_tracefs() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tracefs", str(TRACEFS).encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def check_tracefs(repair: bool) -> Check:
    fix = f"mount -t tracefs tracefs {TRACEFS}"
    if not _tracefs_mounted() and repair and os.geteuid() == 0:
        try:
            mount_tracefs()
            log.info("mounted tracefs at %s", TRACEFS)
        except OSError as exc:
            return Check("tracefs", False, f"mount failed: {exc.strerror}", fix)
    ok = _tracefs_mounted()
    return Check("tracefs", ok, str(TRACEFS) if ok else "not mounted", None if ok else fix)


def import_bcc() -> ModuleType:
    """bcc's Python module; Debian installs it for the system Python only, so add that path."""
    try:
        import bcc  # type: ignore[import-not-found]
    except ImportError:
        if DIST_PACKAGES not in sys.path and os.path.isdir(Path(DIST_PACKAGES, "bcc")):
            sys.path.append(DIST_PACKAGES)
        try:
            import bcc  # type: ignore[import-not-found]
        except ImportError as exc:
            raise BpfRequirementError(
                f"bcc is not importable: {exc}", hint=f"apt-get install {DEBIAN_PACKAGES}"
            ) from exc
    return bcc


def check_bcc() -> Check:
    try:
        bcc = import_bcc()
    except BpfRequirementError as exc:
        return Check("bcc", False, str(exc), exc.hint)
    return Check("bcc", True, f"{Path(bcc.__file__).parent}")


def _debian_header_dirs() -> tuple[str | None, str | None]:
    """The arch-specific (build) and common (source) header dirs, newest version first."""
    dirs = sorted(glob.glob(HEADERS_GLOB), reverse=True)
    build = next(
        (d for d in dirs if not d.endswith("-common") and os.path.exists(Path(d, "Makefile"))), None
    )
    source = next((d for d in dirs if d.endswith("-common")), None)
    return build, source


def _link_headers(modules: Path, build: str, source: str | None) -> None:
    modules.mkdir(parents=True, exist_ok=True)
    for name, target in (("build", build), ("source", source or build)):
        link = modules / name
        if not os.path.exists(link):
            if link.is_symlink():
                link.unlink()  # dangling
            link.symlink_to(target)
            log.info("linked %s -> %s", link, target)


def check_headers(repair: bool) -> Check:
    modules = Path("/lib/modules") / kernel_release()
    build_dir = modules / "build"
    if os.path.exists(build_dir):
        return Check("kernel headers", True, f"{build_dir} -> {os.path.realpath(build_dir)}")
    build, source = _debian_header_dirs()
    if build is None:
        return Check(
            "kernel headers",
            False,
            f"{build_dir} missing and no {HEADERS_GLOB}",
            f"apt-get install linux-headers-amd64 (or linux-headers-{kernel_release()})",
        )
    fix = f"ln -s {build} {build_dir} && ln -s {source or build} {modules / 'source'}"
    if repair and os.geteuid() == 0:
        try:
            _link_headers(modules, build, source)
        except OSError as exc:
            return Check("kernel headers", False, f"linking failed: {exc.strerror}", fix)
        return Check("kernel headers", True, f"{build_dir} -> {build} (linked)")
    return Check("kernel headers", False, f"{build_dir} missing; {build} is available", fix)


def run_checks(repair: bool = True) -> list[Check]:
    """Every check, in the order a user fixes them; repairs what root can repair."""
    return [
        check_kernel(),
        check_btf(),
        check_capabilities(),
        check_bpf_permitted(),
        check_tracefs(repair),
        check_bcc(),
        check_headers(repair),
    ]


def check_privileges() -> None:
    """The checks a user without privileges fails, alone (no repair, no bcc import): cheap
    enough to run before any other work of a live run."""
    for check in (check_capabilities(), check_bpf_permitted()):
        if not check.ok:
            raise BpfRequirementError(
                f"{check.name}: {check.detail}: live capture is not possible",
                hint=f"{check.fix}; or replay a capture instead: falconet run --replay FILE",
            )


def ensure_ready() -> ModuleType:
    """Repair what can be repaired and return bcc, or raise with the first blocking fix."""
    for check in run_checks(repair=True):
        if not check.ok and check.name != "btf":
            raise BpfRequirementError(f"{check.name}: {check.detail}", hint=check.fix)
    return import_bcc()
