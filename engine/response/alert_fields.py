"""A FieldCatalog over a Falco JSON alert's `output_fields`, so response rules can use the
condition language (`fd.rip startswith 10.`, `proc.pid = 42`) on what an alert carries.

Any field name is accepted: an alert only carries the fields its rule's output names, and a field
absent from the alert cannot be extracted (the check is then false, as in Falco). A field is
compared as an integer when a registered source declares it with an integer type and as text
otherwise; addresses stay text so that `fd.rip startswith 10.` works on what the alert printed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.condition.compiler import CompiledCondition, compile_condition
from engine.condition.errors import ConditionError
from engine.condition.parser import parse
from engine.fields import INTEGER_TYPES, FieldCatalog, FieldSpec, catalog
from engine.response.errors import ResponseRulesError

# Sources whose field types decide how a name is compared (first declaration wins).
_TYPED_SOURCES = ("syscall", "k8s_audit", "aws_cloudtrail", "okta", "github", "gcp_auditlog")


def _declared_type(name: str) -> str:
    for source in _TYPED_SOURCES:
        try:
            fields = catalog(source)
        except Exception:  # a source that cannot load has no say on types
            fields = None
        spec = fields.spec(name) if fields is not None else None
        if spec is not None:
            return "int" if spec.type in INTEGER_TYPES else "string"
    return "string"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class AlertFieldCatalog(FieldCatalog):
    """Creates a field on first use; its extractor reads `event["output_fields"][key]`."""

    def __init__(self) -> None:
        super().__init__("response")

    def split(self, name: str) -> tuple[FieldSpec, str | None] | None:
        found = super().split(name)
        if found is None:
            self._add_output_field(name)
            found = super().split(name)
        return found

    def _add_output_field(self, name: str) -> None:
        field_type = _declared_type(name)
        convert = _as_int if field_type == "int" else _as_text

        def factory(arg: str | None) -> Any:
            key = name if arg is None else f"{name}[{arg}]"

            def extract(alert: Mapping[str, Any]) -> Any:
                return convert(alert.get("output_fields", {}).get(key))

            return extract

        self.add(FieldSpec(name, field_type, arg="optional"), factory)


def compile_alert_condition(text: str) -> CompiledCondition:
    """Compile a condition over an alert document; ResponseRulesError when it does not parse."""
    try:
        return compile_condition(parse(text), AlertFieldCatalog())
    except ConditionError as error:
        raise ResponseRulesError(
            f"invalid output_fields condition {text!r}: {error}",
            "use the Falco condition syntax, e.g. 'fd.rip startswith 10.'",
        ) from error
