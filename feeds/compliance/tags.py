"""Tag grammar: Falco rule tags -> (framework, control), plus our canonical tag for a control.

Upstream styles: `PCI_DSS_11.5.1`, `NIST_800-53_AC-2`, `mitre_execution`, `T1059.004`, `TA0003`,
`MITRE_TA0002_execution` (Falco Feeds), gcp's `T1562-impair-defenses` / `TA0005-defense-evasion`
and bare technique names (`abuse-elevation-control-mechanism`). Ours for frameworks upstream never
tagged: `SOC2_CC7.2`, `HIPAA_164.312(b)`, `NIS2_21.2.b`, `DORA_Art10`, `FedRAMP_Moderate_AU-6`.
A tag that looks like a framework tag but fits no style is `unrecognised` (with the reason), never
an exception: upstream files must always load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from feeds.compliance.catalogue import FEDRAMP, MITRE, NIST, Catalogue

TagKind = Literal["control", "maturity", "plain", "unrecognised"]

MATURITY_LEVELS = ("stable", "incubating", "sandbox", "deprecated")

# framework -> (canonical tag prefix, regex of the whole tag with a `c` group for the control)
_FRAMEWORK_STYLES: dict[str, tuple[str, re.Pattern[str]]] = {
    "pci-dss": ("PCI_DSS_", re.compile(r"PCI_DSS_v?(?P<c>\d+(?:\.\d+)*)")),
    NIST: ("NIST_800-53_", re.compile(r"NIST_800-53_(?P<c>[A-Z]{2}-\d+(?:\(\d+\))?)")),
    "soc2": ("SOC2_", re.compile(r"SOC2_(?P<c>CC\d+\.\d+)")),
    "hipaa": ("HIPAA_", re.compile(r"HIPAA_(?P<c>164\.3(?:08|10|12|14|16)(?:\([a-zA-Z0-9]+\))*)")),
    "nis2": ("NIS2_", re.compile(r"NIS2_(?P<c>21\.2\.[a-j])")),
    "dora": ("DORA_", re.compile(r"DORA_(?P<c>Art\d+)")),
    FEDRAMP: (
        "FedRAMP_",
        re.compile(r"FedRAMP_(?P<c>(?:Low|Moderate|High)_[A-Z]{2}-\d+(?:\(\d+\))?)"),
    ),
}

_MATURITY = re.compile(r"maturity_(?P<level>[a-z]+)")
_MITRE_ID = re.compile(r"(?P<c>TA\d{4}|T\d{4}(?:\.\d{3})?)")
_MITRE_ID_WITH_NAME = re.compile(r"(?P<c>TA\d{4}|T\d{4}(?:\.\d{3})?)-[A-Za-z0-9-]+")
_MITRE_FEEDS_STYLE = re.compile(r"MITRE_(?P<c>TA\d{4}|T\d{4}(?:\.\d{3})?)_\w+")
_MITRE_NAME = re.compile(r"mitre_(?P<name>[a-z_]+)", re.IGNORECASE)
_HYPHENATED_WORDS = re.compile(r"[a-z]+(?:-[a-z]+)+")

# Prefixes that announce a framework tag: a tag starting so but fitting no style is reported.
_FRAMEWORK_LOOKALIKE = re.compile(
    r"(PCI|NIST|SOC[ _-]?2|HIPAA|NIS[ _-]?2|DORA|FedRAMP|MITRE|ATT&?CK)([_ -]|$)|TA?\d",
    re.IGNORECASE,
)
# Bare markers naming a framework (or compliance in general) without saying which control.
_FRAMEWORK_MARKERS = {
    "cis": "CIS benchmarks are not in the catalogue",
    "gdpr": "GDPR is not in the catalogue",
    "iso27001": "ISO 27001 is not in the catalogue",
    "iso_27001": "ISO 27001 is not in the catalogue",
    "compliance": "names no framework or control",
}


@dataclass(frozen=True)
class ParsedTag:
    tag: str
    kind: TagKind
    framework: str | None = None
    control: str | None = None
    style: str | None = None  # which grammar matched, for reports
    known: bool | None = None  # for controls: present in the catalogue
    reason: str | None = None  # why unrecognised / unknown

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def tag_for(framework: str, control: str) -> str:
    """The canonical tag falconet writes for a control (MITRE: the bare ATT&CK id)."""
    if framework == MITRE:
        return control
    return _FRAMEWORK_STYLES[framework][0] + control


def parse_tag(tag: str, catalogue: Catalogue) -> ParsedTag:
    """Classify one tag. Never raises: unknown styles come back as kind `unrecognised`."""
    return _parse_cached(tag, catalogue)


@cache
def _parse_cached(tag: str, catalogue: Catalogue) -> ParsedTag:
    for parse in (_parse_maturity, _parse_framework_style, _parse_mitre):
        parsed = parse(tag, catalogue)
        if parsed is not None:
            return parsed
    marker = _FRAMEWORK_MARKERS.get(tag.lower())
    if marker:
        return ParsedTag(tag, "unrecognised", style="framework marker", reason=marker)
    if _FRAMEWORK_LOOKALIKE.match(tag):
        return ParsedTag(tag, "unrecognised", reason=_expected_forms(tag))
    return ParsedTag(tag, "plain")


_EXAMPLES = {
    "pci": "PCI_DSS_10.2.1",
    "nist": "NIST_800-53_AU-6",
    "soc": "SOC2_CC7.2",
    "hipaa": "HIPAA_164.312(b)",
    "nis": "NIS2_21.2.b",
    "dora": "DORA_Art10",
    "fedramp": "FedRAMP_Moderate_AU-6 (a baseline, then a NIST SP 800-53 control)",
    "mitre": "T1059.004, TA0002, mitre_execution or MITRE_TA0002_execution",
    "t": "T1059.004 or TA0002",
}


def _expected_forms(tag: str) -> str:
    lowered = tag.lower()
    for prefix, example in _EXAMPLES.items():
        if lowered.startswith(prefix):
            return f"looks like a framework tag but fits no known style; expected e.g. {example}"
    return "looks like a framework tag but fits no known style"


def _parse_maturity(tag: str, catalogue: Catalogue) -> ParsedTag | None:
    match = _MATURITY.fullmatch(tag)
    if match is None:
        return None
    if match["level"] not in MATURITY_LEVELS:
        levels = ", ".join(f"maturity_{level}" for level in MATURITY_LEVELS)
        return ParsedTag(tag, "unrecognised", reason=f"unknown maturity level; expected {levels}")
    return ParsedTag(tag, "maturity", control=match["level"], style="maturity")


def _control_tag(tag: str, framework: str, control: str, style: str, cat: Catalogue) -> ParsedTag:
    entry = cat.frameworks[framework].control(control)
    fw = cat.frameworks[framework]
    reason = None
    if entry is None:
        reason = f"{control} is not a control of {fw.name} {fw.version} in the catalogue"
    elif not entry.active:
        # Kept (a rule may still use it) but flagged, with the replacement when there is one.
        reason = f"{entry.id} is {entry.status} in {fw.name} {fw.version}"
        reason += f", replaced by {entry.replaced_by}" if entry.replaced_by else ""
    return ParsedTag(tag, "control", framework, control, style, entry is not None, reason)


def _parse_framework_style(tag: str, catalogue: Catalogue) -> ParsedTag | None:
    for framework, (_prefix, pattern) in _FRAMEWORK_STYLES.items():
        match = pattern.fullmatch(tag)
        if match:
            return _control_tag(tag, framework, match["c"], framework, catalogue)
    return None


def _parse_mitre(tag: str, catalogue: Catalogue) -> ParsedTag | None:
    for style, pattern in (
        ("attack-id", _MITRE_ID),
        ("attack-id-name", _MITRE_ID_WITH_NAME),
        ("mitre-feeds", _MITRE_FEEDS_STYLE),
    ):
        match = pattern.fullmatch(tag)
        if match:
            return _control_tag(tag, MITRE, match["c"], style, catalogue)
    match = _MITRE_NAME.fullmatch(tag)
    if match:
        control = _mitre_ids_by_name(catalogue).get(match["name"].lower())
        if control is None:
            reason = f"{match['name']!r} is not an ATT&CK tactic or technique name"
            return ParsedTag(tag, "unrecognised", MITRE, style="mitre-name", reason=reason)
        return ParsedTag(tag, "control", MITRE, control, "mitre-name", known=True)
    if _HYPHENATED_WORDS.fullmatch(tag):
        control = _mitre_ids_by_name(catalogue).get(tag.replace("-", "_"))
        if control and control.startswith("T"):
            return ParsedTag(tag, "control", MITRE, control, "attack-technique-name", known=True)
    return None


@cache
def _mitre_ids_by_name(catalogue: Catalogue) -> dict[str, str]:
    """snake_case name -> id; tactics win over techniques of the same name (Impact, Execution)."""
    by_name: dict[str, str] = {}
    controls = catalogue.frameworks[MITRE].controls.values()
    # Active techniques win over revoked ones of the same name (kept for old tags).
    for control in sorted(controls, key=lambda c: (c.kind != "tactic", not c.active)):
        slug = re.sub(r"[^a-z0-9]+", "_", control.title.lower()).strip("_")
        by_name.setdefault(slug, control.id)
    return by_name
