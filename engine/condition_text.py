"""Condition text built exactly as Falco builds it before parsing (rule_loader_compiler.cpp):
list names substituted textually, exceptions appended as `and not (...)` clauses.

Both are string manipulations with Falco's naive quoting (an item is wrapped in double quotes
only when it contains a space and is not already quoted; inner quotes are not escaped), kept
as is so that `condition_compiled` and the accepted inputs match Falco's.
"""

from __future__ import annotations

from engine.load_result import Context, ErrorCode, RuleLoadError
from engine.rule_collector import is_list_operator
from engine.rule_items import ExceptionInfo

_BLANKS = " \t\n\r"
_DELIMITERS = _BLANKS + "(),="


def quote_item(item: str) -> str:
    if " " in item and item[:1] not in ('"', "'"):
        return f'"{item}"'
    return item


def paren_item(item: str) -> str:
    return item if item[:1] == "(" else f"({item})"


def substitute_list(condition: str, name: str, items: list[str]) -> tuple[str, bool]:
    """Replace every delimited occurrence of list `name` by its items (Falco's resolve_list).

    Also rewrites occurrences inside quoted strings, as Falco does. Returns (text, used)."""
    used = False
    start = condition.find(name)
    while start != -1:
        end = start + len(name)
        before_ok = start == 0 or condition[start - 1] in _DELIMITERS
        after_ok = end >= len(condition) or condition[end] in _DELIMITERS
        if before_ok and after_ok:
            while start > 0 and condition[start - 1] in _BLANKS:
                start -= 1
            while end < len(condition) and condition[end] in _BLANKS:
                end += 1
            substitute = ", ".join(quote_item(item) for item in items)
            if not substitute:
                # An empty list must also take away one adjacent comma.
                if start > 0 and condition[start - 1] == ",":
                    start -= 1
                elif end < len(condition) and condition[end] == ",":
                    end += 1
            prefix = condition[:start] + " " if start > 0 else ""
            condition = prefix + substitute + " " + condition[end:]
            start += len(substitute) + 1
            used = True
        start = condition.find(name, start + 1)
    return condition, used


def _fail(message: str, context: Context) -> RuleLoadError:
    return RuleLoadError(ErrorCode.LOAD_ERR_VALIDATE, message, context)


def _scalar_field_clause(exception: ExceptionInfo, fields_used: set[str]) -> str:
    values = []
    for value in exception.values:
        if value.is_list:
            raise _fail("Expected values array to contain a list of strings", exception.context)
        fields_used.add(exception.fields.item)
        values.append(quote_item(value.item))
    if not values:
        return ""
    return f"({exception.fields.item} {exception.comps.item} ({', '.join(values)}))"


def _value_text(value_entry_is_list: bool, value: str, items: list[str], comp: str) -> str:
    if value_entry_is_list:
        return "(" + ", ".join(quote_item(v) for v in items) + ")"
    return paren_item(value) if is_list_operator(comp) else quote_item(value)


def _field_list_clause(exception: ExceptionInfo, fields_used: set[str]) -> str:
    rows = []
    for row in exception.values:
        if len(exception.fields.items) != len(row.items):
            raise _fail("Fields and values lists must have equal length", exception.context)
        checks = []
        for field, comp, value in zip(
            exception.fields.items, exception.comps.items, row.items, strict=True
        ):
            text = _value_text(value.is_list, value.item, [v.item for v in value.items], comp.item)
            checks.append(f" {field.item} {comp.item} {text}")
            fields_used.add(field.item)
        rows.append("(" + " and ".join(checks) + ")")
    if not rows:
        return ""
    return "(" + " or ".join(rows) + ")"


def with_exceptions(condition: str, exceptions: list[ExceptionInfo], fields_used: set[str]) -> str:
    """`(condition)` followed by one `and not (...)` per exception that has values."""
    out = f"({condition})"
    for exception in exceptions:
        if exception.fields.is_list:
            clause = _field_list_clause(exception, fields_used)
        else:
            clause = _scalar_field_clause(exception, fields_used)
        if clause:
            out += " and not " + clause
    return out
