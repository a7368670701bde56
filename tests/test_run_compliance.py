"""`--compliance` selects the same rules on install and on run (Falco's enable-by-tag meaning)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CliRunner
from tests.support.registry_server import RegistryServer
from tests.test_install import push

RULES = """\
- rule: Cat opens (PCI)
  desc: cat opened a file
  condition: evt.type = open and evt.dir = < and proc.name = cat
  output: pci (file=%fd.name)
  priority: WARNING
  tags: [PCI_DSS_10.2.1]
- rule: Cat opens (NIST)
  desc: cat opened a file
  condition: evt.type = open and evt.dir = < and proc.name = cat
  output: nist (file=%fd.name)
  priority: WARNING
  tags: [NIST_800-53_AC-6]
"""


def alert_rules(result_stdout: str) -> set[str]:
    return {json.loads(line)["rule"] for line in result_stdout.splitlines() if line.strip()}


def test_run_compliance_enables_only_the_covering_rules(
    run_cli: CliRunner, shared_dir: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "cat_rules.yaml"
    rules.write_text(RULES)
    capture = shared_dir / "upstream-captures" / "cat_write.scap"
    base = (
        "run",
        "-r",
        str(rules),
        "--replay",
        str(capture),
        "-o",
        "json",
        "--rule-matching",
        "all",
    )
    everything = run_cli(*base)
    assert everything.returncode == 0, everything.stderr
    assert alert_rules(everything.stdout) == {"Cat opens (PCI)", "Cat opens (NIST)"}
    pci = run_cli(*base, "--compliance", "pci-dss:10.2")
    assert pci.returncode == 0, pci.stderr
    assert alert_rules(pci.stdout) == {"Cat opens (PCI)"}
    bad = run_cli(*base, "--compliance", "no-such-framework")
    assert bad.returncode in (2, 3) and "Traceback" not in bad.stderr


def test_installed_selection_applies_to_run(
    run_cli: CliRunner,
    registry: RegistryServer,
    shared_dir: Path,
    falconet_home: Path,
    tmp_path: Path,
) -> None:
    push(registry, "rules/cat:1.0.0", {"cat_rules.yaml": RULES.encode()}, tmp_path)
    installed = run_cli(
        "artifact",
        "install",
        f"{registry.host}/rules/cat:1.0.0",
        "--plain-http",
        "--compliance",
        "nist-800-53",
    )
    assert installed.returncode == 0, installed.stderr
    capture = shared_dir / "upstream-captures" / "cat_write.scap"
    result = run_cli("run", "--replay", str(capture), "-o", "json", "--rule-matching", "all")
    assert result.returncode == 0, result.stderr
    assert alert_rules(result.stdout) == {"Cat opens (NIST)"}


def test_push_annotates_the_frameworks_a_rules_file_covers(
    run_cli: CliRunner, registry: RegistryServer, tmp_path: Path
) -> None:
    rules = tmp_path / "cat_rules.yaml"
    rules.write_text(RULES)
    ref = f"{registry.host}/rules/annotated:1.0.0"
    pushed = run_cli(
        "registry",
        "push",
        ref,
        str(rules),
        "--type",
        "rulesfile",
        "--version",
        "1.0.0",
        "--plain-http",
    )
    assert pushed.returncode == 0, pushed.stderr
    manifest = json.loads(run_cli("artifact", "manifest", ref, "--plain-http").stdout)
    frameworks = set(manifest["annotations"]["dev.falconet.compliance"].split(","))
    assert {"pci-dss", "nist-800-53"} <= frameworks


TACTIC_RULES = """\
- rule: Cat opens (explicit)
  desc: cat opened a file
  condition: evt.type = open and evt.dir = < and proc.name = cat
  output: explicit (file=%fd.name)
  priority: WARNING
  tags: [PCI_DSS_10.2.1]
- rule: Cat opens (tactic only)
  desc: cat opened a file
  condition: evt.type = open and evt.dir = < and proc.name = cat
  output: tactic (file=%fd.name)
  priority: WARNING
  tags: [mitre_collection]
"""


def test_run_strength_keeps_tactic_only_rules_out_unless_asked(
    run_cli: CliRunner, shared_dir: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "cat_rules.yaml"
    rules.write_text(TACTIC_RULES)
    capture = shared_dir / "upstream-captures" / "cat_write.scap"
    base = ("run", "-r", str(rules), "--replay", str(capture), "-o", "json")
    base += ("--rule-matching", "all", "--compliance", "pci-dss")
    default = run_cli(*base)
    assert default.returncode == 0, default.stderr
    assert alert_rules(default.stdout) == {"Cat opens (explicit)"}
    # TA0009 (collection) reaches PCI DSS 10.2.1.1 only through the tactic row.
    tactic = run_cli(*base, "--strength", "tactic")
    assert tactic.returncode == 0, tactic.stderr
    assert alert_rules(tactic.stdout) == {"Cat opens (explicit)", "Cat opens (tactic only)"}
    explicit = run_cli(*base, "--strength", "explicit")
    assert alert_rules(explicit.stdout) == {"Cat opens (explicit)"}
    bad = run_cli(*base, "--strength", "weak")
    assert bad.returncode == 2 and "unknown strength" in bad.stderr and "hint:" in bad.stderr
