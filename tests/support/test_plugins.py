"""Build falconet's own test plugins (tests/data/plugins/*.c, written for the project from the
plugin ABI facts) with the system C compiler, once per test session."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SOURCES = Path(__file__).resolve().parent.parent / "data" / "plugins"

# library name -> (source file, extra compiler flags)
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "testsrc": ("testsrc.c", ()),
    "testsrc_toonew": ("testsrc.c", ("-DTOO_NEW",)),
    "testsrc_badfields": ("testsrc.c", ("-DBAD_FIELDS",)),
    "testsrc_initfail": ("testsrc.c", ("-DINIT_FAIL",)),
    "testsrc_schema": ("testsrc.c", ("-DWITH_SCHEMA",)),
    "testsrc_badextract": ("testsrc.c", ("-DBAD_EXTRACT",)),
    "testsrc_badevent": ("testsrc.c", ("-DBAD_EVENT",)),
    "testsrc_extrafield": ("testsrc.c", ("-DEXTRA_FIELD",)),
    "testsrc_json": ("testsrc.c", ('-DPLUGIN_SOURCE="json"',)),
    "testext": ("testext.c", ()),
    "testany": ("testext.c", ("-DANY_SOURCE",)),
}


def build_plugins(directory: Path) -> Path:
    """Compile every variant into `directory` as lib<name>.so; skip when there is no cc."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) to build the test plugins")
    directory.mkdir(parents=True, exist_ok=True)
    for name, (source, flags) in VARIANTS.items():
        command = [
            compiler,
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            f'-DPLUGIN_NAME="{name}"',
            *flags,
            "-o",
            str(directory / f"lib{name}.so"),
            str(SOURCES / source),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"building {name} failed:\n{done.stderr}")
    return directory
