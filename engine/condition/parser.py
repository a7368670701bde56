"""Recursive-descent parser of Falco conditions, token for token as libsinsp's `filter/parser.cpp`.

Grammar (libsinsp's EBNF):

    Expr      ::= OrExpr
    OrExpr    ::= AndExpr ('or' (blank AndExpr | '(' Expr ')'))*
    AndExpr   ::= NotExpr ('and' (blank NotExpr | '(' Expr ')'))*
    NotExpr   ::= ('not' blank+)* ('not(' Expr ')' | Check)
    Check     ::= Field Condition | FieldTransformer Condition | Identifier | '(' Expr ')'
    Condition ::= 'exists' | NumOp NumValue | StrOp StrValue | StrOp Modifier ListValue
                | ListOp ListValue   (each right side may also be a transformer or val(field))

The lexer is greedy and context-driven exactly like libsinsp's, so the same strings are accepted
and rejected with the same messages. Input stops at the first NUL character, as a C string does.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable

from engine.condition import ast
from engine.condition.errors import ConditionSyntaxError
from engine.condition.escaping import unescape_str

# Falco raises libsinsp's default (100) to 1000 for rule conditions.
MAX_DEPTH = 1000

_SPACE = " \t\n\r\f\v"  # POSIX [[:space:]]
_BLANK_CLASS = "[ \t\b\r\n]"  # what lex_blank skips (note: \b yes, \f and \v no)
_RGX_BLANKS = re.compile(f"{_BLANK_CLASS}*")
_RGX_NOT_BLANK = re.compile(f"not[{_SPACE}]+")
_RGX_IDENTIFIER = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*")
_RGX_FIELD_NAME = re.compile(r"[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+")
_RGX_FIELD_ARG_BARESTR = re.compile(f"[^][\"'{_SPACE}]+")
_RGX_HEX_NUM = re.compile(r"0[xX][0-9a-fA-F]+")
_RGX_NUMBER = re.compile(r"[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?")
_RGX_BARESTR = re.compile(f"[^()\"'{_SPACE}=,]+")

# A trailing space means "a blank must follow", as in libsinsp's operator tables.
UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
STR_OPS = (
    "==",
    "=",
    "!=",
    "glob ",
    "iglob ",
    "contains ",
    "icontains ",
    "bcontains ",
    "startswith ",
    "bstartswith ",
    "endswith ",
    "regex ",
)
STR_MODIFIERS = ("oneof ", "anyof ", "allof ")
LIST_OPS = ("intersects", "in", "pmatch")
FIELD_TRANSFORMERS = (
    "tolower(",
    "toupper(",
    "b64(",
    "basename(",
    "len(",
    "join(",
    "concat(",
    "getopt(",
)
_VAL = "val("
_BOOL_KEYWORDS = ("and", "or", "not")


@functools.cache
def _alternation(tokens: tuple[str, ...]) -> re.Pattern[str]:
    """One regex trying `tokens` in order (as libsinsp's loop over its operator tables)."""
    items = [
        f"({re.escape(t.rstrip())}){_BLANK_CLASS}+" if t.endswith(" ") else f"({re.escape(t)})"
        for t in tokens
    ]
    return re.compile("|".join(items))


def supported_operators() -> list[str]:
    return [op.strip() for op in (*UNARY_OPS, *NUM_OPS, *STR_OPS, *LIST_OPS)]


def supported_field_transformers(include_val: bool = True) -> list[str]:
    names = [t[:-1] for t in FIELD_TRANSFORMERS]
    return ["val", *names] if include_val else names


def _quoted_list(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_TRANSFORMERS_TEXT = _quoted_list(supported_field_transformers(True))


# Each unit of parser depth costs about one Python frame: make room for Falco's 1000 levels
# (plus the caller's frames) once, at import, rather than in the middle of a caller's work.
if sys.getrecursionlimit() < MAX_DEPTH + 2000:
    sys.setrecursionlimit(MAX_DEPTH + 2000)


def parse(text: str, max_depth: int = MAX_DEPTH) -> ast.Expr:
    """Parse a whole condition; raise ConditionSyntaxError (message, 0-based position)."""
    return _Parser(text, max_depth).parse()


def parse_field_or_transformer(text: str) -> tuple[ast.Field | ast.Transformer, int]:
    """Parse a field or transformer at the start of `text` (output formats use this);
    return it and the index just past it. Raise ConditionSyntaxError when there is none."""
    parser = _Parser(text, MAX_DEPTH)
    return parser.parse_field_or_transformer(), parser.pos


class _Parser:
    def __init__(self, text: str, max_depth: int) -> None:
        self.full_length = len(text)
        nul = text.find("\0")
        self.text = text if nul < 0 else text[:nul]
        self.pos = 0
        self.last_token = ""
        self.depth = 0
        self.max_depth = max_depth

    # -- errors and depth ----------------------------------------------------------------------

    def error(self, message: str) -> ConditionSyntaxError:
        return ConditionSyntaxError(message, self.pos)

    def enter(self) -> None:
        self.depth += 1
        if self.depth >= self.max_depth:
            raise self.error(f"exceeded max depth limit of {self.max_depth}")

    def leave(self) -> None:
        self.depth -= 1

    # -- entry ---------------------------------------------------------------------------------

    def parse(self) -> ast.Expr:
        if self.full_length == 0:
            raise ConditionSyntaxError("filter input string is empty", 0)
        result = self.parse_or()
        if self.pos != self.full_length:
            raise self.error(f"unexpected token after '{self.last_token}', expecting 'or', 'and'")
        return result

    def parse_field_or_transformer(self) -> ast.Field | ast.Transformer:
        self.enter()
        start = self.pos
        if self.lex_regex(_RGX_FIELD_NAME):
            result: ast.Field | ast.Transformer = self.parse_field_remainder(self.last_token, start)
        elif self.lex_any_str(FIELD_TRANSFORMERS):
            self.lex_blank()
            result = self.parse_transformer_remainder(self.last_token[:-1], start)
        else:
            raise self.error(f"unexpected token after '{self.last_token}")  # libsinsp's text
        self.leave()
        return result

    # -- boolean structure ---------------------------------------------------------------------

    def parse_or(self) -> ast.Expr:
        return self._parse_logical("or", self.parse_and, ast.Or)

    def parse_and(self) -> ast.Expr:
        return self._parse_logical("and", self.parse_not, ast.And)

    def _parse_logical(
        self,
        keyword: str,
        parse_child: Callable[[], ast.Expr],
        node_type: type[ast.And] | type[ast.Or],
    ) -> ast.Expr:
        self.enter()
        start = self.pos
        self.lex_blank()
        children = [parse_child()]
        self.lex_blank()
        while self.lex_str(keyword):
            if self.lex_blank():
                children.append(parse_child())
            elif self.lex_str("("):
                children.append(self.parse_embedded_remainder())
            else:
                raise self.error(f"expected blank or '(' after '{keyword}'")
            self.lex_blank()
        self.leave()
        if len(children) > 1:
            return node_type(tuple(children), start)
        return children[0]

    def parse_not(self) -> ast.Expr:
        self.enter()
        start = self.pos
        negate = False
        self.lex_blank()
        while self.lex_regex(_RGX_NOT_BLANK):
            negate = not negate
        if self.lex_str("not("):
            negate = not negate
            child = self.parse_embedded_remainder()
        else:
            child = self.parse_check()
        self.leave()
        return ast.Not(child, start) if negate else child

    def parse_embedded_remainder(self) -> ast.Expr:
        self.enter()
        self.lex_blank()
        child = self.parse_or()
        self.lex_blank()
        if not self.lex_str(")"):
            raise self.error("expected a ')' token")
        self.leave()
        return child

    def parse_check(self) -> ast.Expr:
        self.enter()
        start = self.pos
        self.lex_blank()
        if self.lex_str("("):
            result = self.parse_embedded_remainder()
        elif self.lex_regex(_RGX_FIELD_NAME):
            left = self.parse_field_remainder(self.last_token, start)
            result = self.parse_condition(left, start)
        elif self.lex_any_str(FIELD_TRANSFORMERS):
            self.lex_blank()
            left = self.parse_transformer_remainder(self.last_token[:-1], start)
            result = self.parse_condition(left, start)
        elif self.lex_regex(_RGX_IDENTIFIER):
            result = ast.MacroRef(self.last_token, start)
        else:
            raise self.error("expected a '(' token, a field check, or an identifier")
        self.leave()
        return result

    # -- fields and transformers ---------------------------------------------------------------

    def parse_field_remainder(self, name: str, start: int) -> ast.Field:
        self.enter()
        field = ast.Field(name, self.parse_optional_field_arg(), start)
        self.leave()
        return field

    def parse_optional_field_arg(self) -> str | None:
        if not self.lex_str("["):
            return None
        if not self.lex_quoted_str() and not self.lex_regex(_RGX_FIELD_ARG_BARESTR):
            raise self.error("expected a valid field argument: a quoted string or a bare string")
        arg = self.last_token
        if not self.lex_str("]"):
            raise self.error("expected a ']' token")
        return arg

    def parse_transformer_remainder(self, name: str, start: int) -> ast.Transformer:
        self.enter()
        self.lex_blank()
        args: list[ast.Expr] = []
        while True:
            args.append(self.parse_transformer_arg())
            self.lex_blank()
            if not self.lex_str(","):
                break
        self.lex_blank()
        if not self.lex_str(")"):
            raise self.error("expected a ')' token closing the transformer")
        result = ast.Transformer(name, tuple(args), self.parse_optional_field_arg(), start)
        self.leave()
        return result

    def parse_transformer_arg(self) -> ast.Expr:
        self.enter()
        self.lex_blank()
        start = self.pos
        if self.lex_regex(_RGX_HEX_NUM) or self.lex_regex(_RGX_NUMBER) or self.lex_quoted_str():
            result: ast.Expr = ast.Value(self.last_token, start)
        elif self.lex_str("("):
            result = self.parse_transformer_list(start)
        elif self.lex_any_str(FIELD_TRANSFORMERS):
            result = self.parse_transformer_remainder(self.last_token[:-1], start)
        elif self.lex_regex(_RGX_FIELD_NAME):
            result = self.parse_field_remainder(self.last_token, start)
        else:
            raise self.error(
                "expected field transformer argument: "
                "field, transformer, quoted string, number, or transformer list"
            )
        self.leave()
        return result

    def parse_transformer_list(self, start: int) -> ast.TransformerList:
        children: list[ast.Expr] = []
        self.lex_blank()
        if self.lex_str(")"):
            return ast.TransformerList((), start)
        children.append(self.parse_transformer_list_arg(start))
        self.lex_blank()
        while self.lex_str(","):
            self.lex_blank()
            children.append(self.parse_transformer_list_arg(start))
            self.lex_blank()
        if not self.lex_str(")"):
            raise self.error("expected ')'")
        return ast.TransformerList(tuple(children), start)

    def parse_transformer_list_arg(self, start: int) -> ast.Expr:
        if self.lex_regex(_RGX_FIELD_NAME):
            return self.parse_field_remainder(self.last_token, start)
        if self.lex_any_str(FIELD_TRANSFORMERS):
            self.lex_blank()
            return self.parse_transformer_remainder(self.last_token[:-1], start)
        if self.lex_quoted_str() or self.lex_regex(_RGX_HEX_NUM) or self.lex_regex(_RGX_NUMBER):
            return ast.Value(self.last_token, start)
        raise self.error(
            "expected transformer list argument: field, transformer, quoted string, or number"
        )

    # -- conditions ----------------------------------------------------------------------------

    def parse_condition(self, left: ast.Field | ast.Transformer, start: int) -> ast.Expr:
        self.enter()
        self.lex_blank()
        if self.lex_operator(UNARY_OPS):
            self.leave()
            return ast.UnaryCheck(left, self.last_token.strip(), start)
        self.lex_blank()
        right: ast.Value | ast.ListValue | ast.Transformer
        if self.lex_operator(NUM_OPS):
            op = self.last_token
            right = self.parse_num_value_or_transformer()
        elif self.lex_operator(STR_OPS):
            op = self.last_token
            # Word operators consumed their mandatory blank already; symbols still need one
            # before a modifier.
            had_blank = op[0].isalpha() or self.lex_blank()
            saved = (self.pos, self.last_token)
            if (
                had_blank
                and self.lex_operator(STR_MODIFIERS)
                and self.list_value_follows()
                and not self.bool_keyword_follows()
            ):
                op = f"{op.strip()} {self.last_token.strip()}"
                right = self.parse_list_value()
            else:
                self.pos, self.last_token = saved
                right = self.parse_str_value_or_transformer(no_transformer=False)
        elif self.lex_operator(LIST_OPS):
            op = self.last_token
            right = self.parse_list_value_or_transformer()
        else:
            raise self.error(
                "expected a valid check operator: one of " + _quoted_list(supported_operators())
            )
        self.leave()
        return ast.BinaryCheck(left, op.strip(), right, start)

    def parse_num_value_or_transformer(self) -> ast.Value | ast.Transformer:
        self.enter()
        self.lex_blank()
        start = self.pos
        result: ast.Value | ast.Transformer | None = self.try_parse_transformer_or_val()
        if result is None:
            if not (self.lex_regex(_RGX_HEX_NUM) or self.lex_regex(_RGX_NUMBER)):
                raise self.error(
                    "expected a number value or a field with a valid transformer: "
                    + _TRANSFORMERS_TEXT
                )
            result = ast.Value(self.last_token, start)
        self.leave()
        return result

    def parse_str_value_or_transformer(self, no_transformer: bool) -> ast.Value | ast.Transformer:
        self.enter()
        self.lex_blank()
        start = self.pos
        if not no_transformer:
            transformer = self.try_parse_transformer_or_val()
            if transformer is not None:
                self.leave()
                return transformer
        if self.lex_quoted_str() or self.lex_regex(_RGX_BARESTR):
            self.leave()
            return ast.Value(self.last_token, start)
        if no_transformer:
            raise self.error("expected a string value")
        raise self.error(
            "expected a string value or a field with a valid transformer: " + _TRANSFORMERS_TEXT
        )

    def try_parse_list(self) -> ast.ListValue | None:
        start = self.pos
        if not self.lex_str("("):
            return None
        values: list[str] = []
        self.lex_blank()
        # Each item is libsinsp's parse_str_value_or_transformer(no_transformer=true), inlined
        # (lists of hundreds of items are common once rule lists are substituted), with the same
        # depth guard and errors.
        try:
            if self.depth + 1 >= self.max_depth:
                raise self.error(f"exceeded max depth limit of {self.max_depth}")
            values.append(self.list_item())
        except ConditionSyntaxError:
            values = []  # no first item (libsinsp swallows this error): the list must be empty
        else:
            self.lex_blank()
            while self.lex_str(","):
                values.append(self.list_item())
                self.lex_blank()
        if not self.lex_str(")"):
            raise self.error("expected a ')' token")
        return ast.ListValue(tuple(values), start)

    def list_item(self) -> str:
        self.lex_blank()
        if self.lex_quoted_str() or self.lex_regex(_RGX_BARESTR):
            return self.last_token
        raise self.error("expected a string value")

    def parse_list_value(self) -> ast.Value | ast.ListValue:
        self.enter()
        self.lex_blank()
        start = self.pos
        result: ast.Value | ast.ListValue | None = self.try_parse_list()
        if result is None:
            if not self.lex_regex(_RGX_IDENTIFIER):
                raise self.error("expected a list or an identifier")
            result = ast.Value(self.last_token, start)
        self.leave()
        return result

    def parse_list_value_or_transformer(self) -> ast.Value | ast.ListValue | ast.Transformer:
        self.enter()
        self.lex_blank()
        start = self.pos
        result: ast.Value | ast.ListValue | ast.Transformer | None = self.try_parse_list()
        if result is None:
            result = self.try_parse_transformer_or_val()
        if result is None:
            if not self.lex_regex(_RGX_IDENTIFIER):
                raise self.error(
                    "expected a list, an identifier, or a field with a valid transformer: "
                    + _TRANSFORMERS_TEXT
                )
            result = ast.Value(self.last_token, start)
        self.leave()
        return result

    def try_parse_transformer_or_val(self) -> ast.Transformer | None:
        self.enter()
        self.lex_blank()
        start = self.pos
        result: ast.Transformer | None = None
        if self.lex_str(_VAL):
            self.lex_blank()
            field_start = self.pos
            if not self.lex_regex(_RGX_FIELD_NAME):
                raise self.error("expected a field within 'val' transformer")
            field = self.parse_field_remainder(self.last_token, field_start)
            self.lex_blank()
            if not self.lex_str(")"):
                raise self.error("expected a ')' token closing the transformer")
            result = ast.Transformer("val", (field,), self.parse_optional_field_arg(), start)
        elif self.lex_any_str(FIELD_TRANSFORMERS):
            self.lex_blank()
            result = self.parse_transformer_remainder(self.last_token[:-1], start)
        self.leave()
        return result

    # -- lexer ---------------------------------------------------------------------------------

    def lex_blank(self) -> bool:
        end = _RGX_BLANKS.match(self.text, self.pos).end()  # type: ignore[union-attr]
        if end == self.pos:
            return False
        self.pos = end
        return True

    def lex_regex(self, pattern: re.Pattern[str]) -> bool:
        match = pattern.match(self.text, self.pos)
        if match is None:
            return False
        self.last_token = match.group()
        self.pos = match.end()
        return True

    def lex_str(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.last_token = token
            self.pos += len(token)
            return True
        return False

    def lex_any_str(self, tokens: tuple[str, ...]) -> bool:
        return self.lex_operator(tokens)

    def lex_operator(self, operators: tuple[str, ...]) -> bool:
        """The first of `operators` found at the cursor, in list order; one ending with a space
        needs (and consumes) a following blank. The token is the operator without the blank."""
        match = _alternation(operators).match(self.text, self.pos)
        if match is None:
            return False
        self.last_token = match.group(match.lastindex)  # type: ignore[arg-type]
        self.pos = match.end()
        return True

    def lex_quoted_str(self) -> bool:
        text = self.text
        if self.pos >= len(text) or text[self.pos] not in "'\"":
            return False
        delimiter = text[self.pos]
        # The opening quote counts as "escaped" so it does not close the string; a quote right
        # after any backslash never closes it (so "a\\" is unterminated, as in libsinsp).
        previous = "\\"
        index = self.pos
        while index < len(text):
            char = text[index]
            if char == delimiter and previous != "\\":
                token = text[self.pos : index + 1]
                self.pos = index + 1
                # libsinsp reports escape errors where its cursor is: after the closing quote.
                self.last_token = unescape_str(token, self.pos)
                return True
            previous = char
            index += 1
        return False

    def list_value_follows(self) -> bool:
        if self.text.startswith("(", self.pos):
            return True
        return _RGX_IDENTIFIER.match(self.text, self.pos) is not None

    def bool_keyword_follows(self) -> bool:
        rest = self.text[self.pos : self.pos + 4]
        for keyword in _BOOL_KEYWORDS:
            if rest.startswith(keyword):
                after = rest[len(keyword) : len(keyword) + 1]
                if not after or not after.isascii() or not after.isalnum():
                    return True
        return False
