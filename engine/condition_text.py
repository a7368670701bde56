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


class ConditionTooLongError(ValueError):
    """A substitution made the condition longer than the caller's bound."""


def substitute_list(
    condition: str, name: str, items: list[str], max_chars: int | None = None
) -> tuple[str, bool]:
    """Replace every delimited occurrence of list `name` by its items (Falco's resolve_list).

    Also rewrites occurrences inside quoted strings, as Falco does. Returns (text, used).
    Raises ConditionTooLongError as soon as the text exceeds `max_chars`.

    Falco rewrites the whole string at each occurrence; the same result is built here in one
    pass (the text before the cursor as parts), so a list used many times costs linear time:
    lists substituted into lists can make conditions of a million characters before the bound
    stops them."""
    substitute = ", ".join(quote_item(item) for item in items)
    head: list[str] = []  # the rewritten text before `cursor` (whose rest is unchanged)
    head_len = 0
    cursor = 0
    used = False
    found = condition.find(name)
    while found != -1:
        end = found + len(name)
        before = condition[found - 1] if found > cursor else (head[-1][-1] if head_len else "")
        before_ok = not before or before in _DELIMITERS
        after_ok = end >= len(condition) or condition[end] in _DELIMITERS
        if not (before_ok and after_ok):
            found = condition.find(name, found + 1)
            continue
        start = found
        while start > cursor and condition[start - 1] in _BLANKS:
            start -= 1
        if start == cursor:
            head_len = _strip_head(head, head_len, _BLANKS)
        while end < len(condition) and condition[end] in _BLANKS:
            end += 1
        if not substitute:
            # An empty list must also take away one adjacent comma.
            if start > cursor and condition[start - 1] == ",":
                start -= 1
            elif start == cursor and head_len and head[-1][-1] == ",":
                head_len = _strip_head(head, head_len, ",", once=True)
            elif end < len(condition) and condition[end] == ",":
                end += 1
        head.append(condition[cursor:start])
        head_len += start - cursor
        had_prefix = head_len > 0
        if had_prefix:
            head.append(" ")
            head_len += 1
        head.append(substitute + " ")
        head_len += len(substitute) + 1
        cursor = end
        used = True
        if max_chars is not None and head_len + len(condition) - cursor > max_chars:
            raise ConditionTooLongError(name)
        # Falco resumes one character after the end of the substitute: the first character
        # after it when there was text before, the second one otherwise.
        found = condition.find(name, end if had_prefix else end + 1)
    if not used:
        return condition, False
    return "".join(head) + condition[cursor:], True


def _strip_head(head: list[str], head_len: int, chars: str, once: bool = False) -> int:
    """Remove trailing `chars` from the parts (one character with `once`); the new length."""
    while head:
        last = head[-1]
        kept = last[:-1] if once else last.rstrip(chars)
        head_len -= len(last) - len(kept)
        if kept:
            head[-1] = kept
            return head_len
        head.pop()
        if once:
            return head_len
    return head_len


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
