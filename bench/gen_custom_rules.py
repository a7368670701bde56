#!/usr/bin/env python3
"""Write a rules file of many varied custom syscall rules, mostly not matching a busy host.

    python bench/gen_custom_rules.py OUT.yaml [--rules 1000] [--seed 1] [--kind mixed]

What an organisation writing its own detections produces: each rule restricts evt.type to a few
syscalls (file, network, process and the busy read/write ones) and tests proc.name, proc.pname
and fd.name with `=`, `in`, `startswith`, `endswith`, `contains`, `glob`, `regex` and `pmatch`,
joined with and/or/not, some with exceptions. Most constants name services and paths the
busy-host stream (gen_syscall_stream.py) never produces; a few rules match its suspicious
events (a shell reading /etc/shadow, netcat...). `--kind startswith` / `--kind regex` write
rules differing only in their operator (`fd.name startswith /opt/appN/` against
`fd.name regex '/opt/appN/.*'`), to compare the two.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

FILE_TYPES = ("open", "openat", "openat2", "creat", "unlink", "unlinkat", "rename", "chmod")
NET_TYPES = ("connect", "accept", "accept4", "bind", "listen", "socket")
PROC_TYPES = ("execve", "execveat", "clone", "fork", "ptrace", "setuid")
BUSY_TYPES = ("read", "write", "sendto", "recvfrom", "close", "readv", "writev")
REAL_NAMES = ("cat", "nc", "bash", "sh", "curl", "java", "nginx", "postgres", "python3", "git")
REAL_PATHS = ("/etc/shadow", "/etc/hosts", "/etc/ld.so.cache", "/dev/shm/x", "/etc/localtime")


def _types(rng: random.Random) -> str:
    pools = [FILE_TYPES, NET_TYPES, PROC_TYPES, BUSY_TYPES]
    pool = rng.choices(pools, weights=(5, 2, 2, 1))[0]
    chosen = rng.sample(pool, rng.randint(1, min(3, len(pool))))
    return ", ".join(chosen)


def _name(rng: random.Random, index: int) -> str:
    if rng.random() < 0.03:
        return rng.choice(REAL_NAMES)
    return f"svc{index}{rng.choice('abcdefgh')}"


def _predicate(rng: random.Random, index: int) -> str:
    """One indexable-looking test on proc.name or fd.name."""
    kind = rng.randrange(11)
    if kind == 0:
        return f"proc.name = {_name(rng, index)}"
    if kind == 1:
        names = ", ".join(_name(rng, index + k) for k in range(rng.randint(2, 5)))
        return f"proc.name in ({names})"
    if kind == 2:
        return f"fd.name startswith /opt/app{index}/"
    if kind == 3:
        return f"fd.name contains /secret{index}/"
    if kind == 4:
        return f"fd.name endswith .key{index}"
    if kind == 5:
        return f"fd.name glob '/data/*/key{index}.pem'"
    if kind == 6:
        return f"fd.name regex '/srv/svc{index}/[a-z]+[.](log|sock)'"
    if kind == 7:
        return f"fd.name regex '[a-z]+{index}[.]tmp'"  # no literal prefilter: an RE2 set
    if kind == 8:
        return f"fd.name pmatch (/var/run/svc{index}, /run/svc{index})"
    if kind == 9:
        return f"proc.pname in ({_name(rng, index)}, {_name(rng, index + 1)})"
    if rng.random() < 0.2:
        return f"fd.name = {rng.choice(REAL_PATHS)}"
    return f"fd.name in (/etc/app{index}.conf, /etc/app{index}.d/main.conf)"


def _condition(rng: random.Random, index: int) -> str:
    first = _predicate(rng, index)
    shape = rng.randrange(6)
    if shape == 0:
        body = f"({first} or {_predicate(rng, index + 7)})"
    elif shape == 1:
        body = f"{first} and not proc.name in (systemd, cron)"
    elif shape == 2:
        body = f"{first} and {_predicate(rng, index + 3)}"
    else:
        body = first
    return f"evt.type in ({_types(rng)}) and {body}"


def _rule(index: int, condition: str, exceptions: bool = False) -> str:
    text = (
        f"- rule: custom rule {index}\n"
        f"  desc: generated custom rule {index}\n"
        f"  condition: >\n    {condition}\n"
        f"  output: custom rule {index} (proc=%proc.name file=%fd.name type=%evt.type)\n"
        f"  priority: WARNING\n"
        f"  tags: [custom, group{index % 17}]\n"
    )
    if exceptions:
        text += (
            "  exceptions:\n"
            "    - name: known_tools\n"
            "      fields: [proc.name, fd.name]\n"
            "      comps: [=, startswith]\n"
            "      values:\n"
            "        - [nginx, /etc/]\n"
            "        - [postgres, /var/lib/]\n"
        )
    return text


def generate_rules(count: int, seed: int = 1, kind: str = "mixed") -> str:
    """The rules file text: `count` rules of `kind` (mixed, startswith or regex)."""
    rng = random.Random(seed)
    parts = []
    for index in range(count):
        if kind == "startswith":
            condition = f"evt.type in (openat, read) and fd.name startswith /opt/app{index}/"
        elif kind == "regex":
            condition = f"evt.type in (openat, read) and fd.name regex '/opt/app{index}/.*'"
        elif kind == "mixed":
            condition = _condition(rng, index)
        else:
            raise ValueError(f"unknown kind {kind!r}")
        parts.append(_rule(index, condition, exceptions=kind == "mixed" and index % 10 == 3))
    if kind == "mixed":
        # A few detections the busy host does trigger, wherever the generated rules end.
        parts.append(
            _rule(count, "evt.type in (open, openat) and fd.name = /etc/shadow and proc.name = cat")
        )
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kind", choices=("mixed", "startswith", "regex"), default="mixed")
    args = parser.parse_args(argv)
    args.out.write_text(generate_rules(args.rules, args.seed, args.kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
