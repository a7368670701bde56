"""Quoting of condition strings, as libsinsp's `filter/escaping.cpp`."""

from __future__ import annotations

from engine.condition.errors import ConditionSyntaxError

_SIMPLE_UNESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", " ": "\\", "\\": "\\"}
_SIMPLE_UNESCAPES["/"] = "/"
_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_ESCAPES['"'] = '\\"'
# Characters that force quoting but are written as is inside the quotes.
_QUOTE_ONLY = frozenset(" ='\0")
_HEX = frozenset("0123456789abcdefABCDEF")


def escape_str(value: str) -> str:
    """Quote `value` when it holds a blank, `=`, a quote, a backslash or a control escape."""
    out: list[str] = []
    quote = False
    for char in value:
        escaped = _ESCAPES.get(char)
        if escaped is not None:
            quote = True
            out.append(escaped)
        else:
            quote = quote or char in _QUOTE_ONLY
            out.append(char)
    text = "".join(out)
    return f'"{text}"' if quote else text


def unescape_str(quoted: str, position: int | None = None) -> str:
    """Decode a quoted token including its delimiters (`"a\\tb"` -> `a<TAB>b`).

    libsinsp works on bytes: `\\xHH` is one byte, so the result is decoded as UTF-8 (a
    `\\xc3\\xa9` pair is "é"); a byte that is not valid UTF-8 is kept as a surrogate escape."""
    delimiter = quoted[0]
    body = quoted[1:-1]
    out: list[str] = []
    has_bytes = False
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        i += 1
        if i >= len(body):
            # libsinsp's lexer never closes a string on an escaped delimiter, so a token cannot
            # end with a lone backslash; keep the behaviour defined anyway.
            break
        code = body[i]
        if code in _SIMPLE_UNESCAPES:
            out.append(_SIMPLE_UNESCAPES[code])
        elif code in "\"'":
            if code != delimiter:
                other = "'" if code == '"' else '"'
                raise ConditionSyntaxError(
                    f"invalid \\{code} escape in {other}-quoted string", position
                )
            out.append(code)
        elif code == "x":
            if i + 2 >= len(body):
                raise ConditionSyntaxError("truncated hex char escape sequence", position)
            digits = body[i + 1 : i + 3]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise ConditionSyntaxError(f"invalid hex char escape sequence: {digits}", position)
            byte = int(digits, 16)
            if byte < 0x80:
                out.append(chr(byte))
            else:
                out.append(chr(0xDC00 + byte))  # a raw byte, resolved below
                has_bytes = True
            i += 2
        else:
            raise ConditionSyntaxError(f"unsupported string escape sequence: \\{code}", position)
        i += 1
    text = "".join(out)
    if has_bytes:
        raw = text.encode("utf-8", "surrogateescape")
        text = raw.decode("utf-8", "surrogateescape")
    return text
