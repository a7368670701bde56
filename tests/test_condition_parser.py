"""Parser conformance: libsinsp's filter_parser.ut.cpp inputs, ASTs, messages and positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.condition import ast
from engine.condition.errors import ConditionSyntaxError
from engine.condition.escaping import escape_str, unescape_str
from engine.condition.parser import parse

CASES = json.loads(
    (Path(__file__).parent / "data" / "condition" / "filter_parser_cases.json").read_text()
)


def _whitespace_variants(text: str) -> list[str]:
    # libsinsp's test_accept retries every input padded, then with blanks as newlines and tabs.
    padded = f" {text} "
    return [text, padded, padded.replace(" ", "\n"), padded.replace(" ", "\t")]


@pytest.mark.parametrize("text", CASES["accept"])
def test_upstream_accepted_inputs_parse(text: str) -> None:
    for variant in _whitespace_variants(text):
        parse(variant)


@pytest.mark.parametrize("text", CASES["reject"])
def test_upstream_rejected_inputs_raise_syntax_error(text: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse(text)
    assert 0 <= info.value.position <= len(text)


def test_upstream_case_counts_are_complete() -> None:
    assert len(CASES["accept"]) == 327
    assert len(CASES["reject"]) == 191


F = ast.Field
V = ast.Value
L = ast.ListValue
T = ast.Transformer
TRANSFORMERS = "'val', 'tolower', 'toupper', 'b64', 'basename', 'len', 'join', 'concat', 'getopt'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "evt.name exists and evt.type in (a, b) or proc.name=cat",
            ast.Or(
                (
                    ast.And(
                        (
                            ast.UnaryCheck(F("evt.name"), "exists"),
                            ast.BinaryCheck(F("evt.type"), "in", L(("a", "b"))),
                        )
                    ),
                    ast.BinaryCheck(F("proc.name"), "=", V("cat")),
                )
            ),
        ),
        (
            "b64(evt.name) exists and tolower(toupper(evt.type)) in val(some.field) or "
            "proc.name=b64(tolower(some.field))",
            ast.Or(
                (
                    ast.And(
                        (
                            ast.UnaryCheck(T("b64", (F("evt.name"),)), "exists"),
                            ast.BinaryCheck(
                                T("tolower", (T("toupper", (F("evt.type"),)),)),
                                "in",
                                T("val", (F("some.field"),)),
                            ),
                        )
                    ),
                    ast.BinaryCheck(
                        F("proc.name"), "=", T("b64", (T("tolower", (F("some.field"),)),))
                    ),
                )
            ),
        ),
        (
            "not not not not not(not not(not not_macro))",
            ast.Not(ast.Not(ast.MacroRef("not_macro"))),
        ),
        (
            "proc.name == oneof (cat, nginx)",
            ast.BinaryCheck(F("proc.name"), "== oneof", L(("cat", "nginx"))),
        ),
        (
            "proc.name != anyof (cat, nginx)",
            ast.BinaryCheck(F("proc.name"), "!= anyof", L(("cat", "nginx"))),
        ),
        ("proc.name = allof (cat)", ast.BinaryCheck(F("proc.name"), "= allof", L(("cat",)))),
        ("proc.name == oneof ()", ast.BinaryCheck(F("proc.name"), "== oneof", L(()))),
        ("proc.name == oneof my_list", ast.BinaryCheck(F("proc.name"), "== oneof", V("my_list"))),
        (
            "proc.name == anyof and fd.name exists",
            ast.And(
                (
                    ast.BinaryCheck(F("proc.name"), "==", V("anyof")),
                    ast.UnaryCheck(F("fd.name"), "exists"),
                )
            ),
        ),
        (
            "proc.name startswith anyof (/etc/, /tmp/)",
            ast.BinaryCheck(F("proc.name"), "startswith anyof", L(("/etc/", "/tmp/"))),
        ),
        ("proc.aname[2] = bash", ast.BinaryCheck(F("proc.aname", "2"), "=", V("bash"))),
        ("json.value[/a/b] exists", ast.UnaryCheck(F("json.value", "/a/b"), "exists")),
        ('proc.env["a b"] = x', ast.BinaryCheck(F("proc.env", "a b"), "=", V("x"))),
        (
            "evt.arg.flags contains O_RDONLY",
            ast.BinaryCheck(F("evt.arg.flags"), "contains", V("O_RDONLY")),
        ),
        (
            "a or b and c",
            ast.Or((ast.MacroRef("a"), ast.And((ast.MacroRef("b"), ast.MacroRef("c"))))),
        ),
        ("a.b in list_name", ast.BinaryCheck(F("a.b"), "in", V("list_name"))),
        (
            'getopt(proc.args, "nt:")[t] = v',
            ast.BinaryCheck(T("getopt", (F("proc.args"), V("nt:")), "t"), "=", V("v")),
        ),
        (
            'join(",", (a.b, "x")) = y',
            ast.BinaryCheck(
                T("join", (V(","), ast.TransformerList((F("a.b"), V("x"))))), "=", V("y")
            ),
        ),
    ],
)
def test_ast_shapes_match_libsinsp(text: str, expected: ast.Expr) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "filter input string is empty"),
        ("evt.arg[] = value", "expected a valid field argument: a quoted string or a bare string"),
        ('evt.arg["x" = value', "expected a ']' token"),
        (
            'getopt(proc.args, "nt:")[] = value',
            "expected a valid field argument: a quoted string or a bare string",
        ),
        ('getopt(proc.args, "nt:")["t" = value', "expected a ']' token"),
        ("a.b exists c", "unexpected token after 'exists', expecting 'or', 'and'"),
        ("a orb", "expected blank or '(' after 'or'"),
        ("a andb", "expected blank or '(' after 'and'"),
        ("(a", "expected a ')' token"),
        (
            "a.b = (x",
            "expected a string value or a field with a valid transformer: " + TRANSFORMERS,
        ),
        ("a.b in (x", "expected a ')' token"),
        (
            "a.b < x",
            "expected a number value or a field with a valid transformer: " + TRANSFORMERS,
        ),
        ("a.b = val(x)", "expected a field within 'val' transformer"),
        (
            "a.b ~ c",
            "expected a valid check operator: one of 'exists', '<=', '<', '>=', '>', '==', '=', "
            "'!=', 'glob', 'iglob', 'contains', 'icontains', 'bcontains', 'startswith', "
            "'bstartswith', 'endswith', 'regex', 'intersects', 'in', 'pmatch'",
        ),
        ("=", "expected a '(' token, a field check, or an identifier"),
        ('a.b = "\\q"', "unsupported string escape sequence: \\q"),
        ("a.b = '\\\"'", "invalid \\\" escape in '-quoted string"),
        ('a.b = "\\\'"', "invalid \\' escape in \"-quoted string"),
        ('a.b = "\\x4"', "truncated hex char escape sequence"),
        ('a.b = "\\xzz"', "invalid hex char escape sequence: zz"),
    ],
)
def test_reject_messages_match_libsinsp(text: str, message: str) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse(text)
    assert info.value.message == message


def test_error_position_points_at_the_offending_character() -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse("proc.name = bash and fd.name ~ x")
    assert info.value.position == 29


def test_depth_limit_is_a_clean_error() -> None:
    with pytest.raises(ConditionSyntaxError, match=r"exceeded max depth limit of 100$"):
        parse("(" * 100000, max_depth=100)
    with pytest.raises(ConditionSyntaxError, match=r"exceeded max depth limit of 1000$"):
        parse("(" * 100000)
    nested = "(" * 150 + "a.b exists" + ")" * 150
    assert parse(nested) == ast.UnaryCheck(F("a.b"), "exists")


def test_input_stops_at_nul_like_a_c_string() -> None:
    with pytest.raises(ConditionSyntaxError, match="unexpected token"):
        parse("a.b = x\0 or c")


@pytest.mark.parametrize(
    ("quoted", "value"),
    [
        ('"a\\tb"', "a\tb"),
        ('"\\b\\f\\n\\r\\t"', "\b\f\n\r\t"),
        # The lexer never closes on a quote right after a backslash, even an escaped one.
        ('"\\\\"x"', '\\"x'),
        ('"\\\\"', None),
        ("'it\\'s'", "it's"),
        ('"\\x41\\x62"', "Ab"),
        ('"a\\ b"', "a\\b"),  # legacy: backslash-blank decodes to a backslash
        ('"a\\/b"', "a/b"),
    ],
)
def test_quoted_string_escapes(quoted: str, value: str | None) -> None:
    text = f"a.b = {quoted}"
    if value is None:
        with pytest.raises(ConditionSyntaxError):
            parse(text)
        return
    node = parse(text)
    assert isinstance(node, ast.BinaryCheck) and node.right == V(value)


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ("a=b", '"a=b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("it's", '"it\'s"'),
        ("tab\there", '"tab\\there"'),
        ("back\\slash", '"back\\\\slash"'),
        ("", ""),
    ],
)
def test_escape_str_quotes_only_when_needed(value: str, escaped: str) -> None:
    assert escape_str(value) == escaped
    if escaped.startswith('"'):
        assert unescape_str(escaped) == value


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a and b or c", "((a and b) or c)"),
        ("proc.name in (bash,'zsh x')", 'proc.name in (bash, "zsh x")'),
        ("not proc.name=bash", "not proc.name = bash"),
        ('json.value[""] exists', 'json.value[""] exists'),
        ('proc.env["a b"]=x', 'proc.env["a b"] = x'),
        ("tolower( proc.name ) = val(proc.pname)", "tolower(proc.name) = val(proc.pname)"),
        ("a.b startswith  oneof (x,y)", "a.b startswith oneof (x, y)"),
    ],
)
def test_to_text_is_libsinsp_as_string(text: str, canonical: str) -> None:
    assert ast.to_text(parse(text)) == canonical
    # The canonical text parses back to the same tree.
    assert parse(canonical) == parse(text)


def test_positions_are_zero_based_indexes() -> None:
    node = parse("a.b = x and  c.d exists")
    assert isinstance(node, ast.And)
    assert [child.pos for child in node.children] == [0, 13]


# libsinsp test/filter_escaping.ut.cpp, transcribed.
@pytest.mark.parametrize(
    ("plain", "escaped"),
    [
        ("some string", '"some string"'),
        ("some\\b\\f\\n\\r\\tstring", '"some\\\\b\\\\f\\\\n\\\\r\\\\tstring"'),
        ('some "quoted string"', '"some \\"quoted string\\""'),
        ("some 'quoted string'", "\"some 'quoted string'\""),
        ("a\udcffb", "a\udcffb"),  # a high byte passes raw
        ("\0", '"\0"'),
    ],
)
def test_upstream_escape_cases(plain: str, escaped: str) -> None:
    assert escape_str(plain) == escaped
    if escaped.startswith('"'):
        assert unescape_str(escaped) == plain


@pytest.mark.parametrize(
    ("body", "decoded"),
    [
        ("\\x41", "A"),
        ("\\x7f", "\x7f"),
        ("\\x01", "\x01"),
        ("\\xff", "\udcff"),  # not UTF-8: kept as the raw byte
        ("\\xAb", "\udcab"),
        ("\\xff\\xfe", "\udcff\udcfe"),
        ("a\\xffb", "a\udcffb"),
        ("\\xc3\\xa9", "é"),  # bytes, decoded as UTF-8
        ("\\x00", "\0"),
        ("a\\x00b", "a\0b"),
        ("\\x413", "A3"),
    ],
)
def test_upstream_hex_escapes(body: str, decoded: str) -> None:
    assert unescape_str(f'"{body}"') == decoded


@pytest.mark.parametrize(
    "body", ["\\x", "\\xf", "a\\xf", "\\xgg", "\\xfg", "\\x g", "\\x-1", "\\x+a"]
)
def test_upstream_bad_hex_escapes(body: str) -> None:
    with pytest.raises(ConditionSyntaxError):
        unescape_str(f'"{body}"')


@pytest.mark.parametrize(
    "plain", ["some string", "some\\b\\f\\n\\r\\tstring", 'some "q"', "a \udcff", "\0"]
)
def test_upstream_escape_round_trips(plain: str) -> None:
    assert unescape_str(escape_str(plain)) == plain


def test_nodes_hash_by_structure_and_survive_pickling() -> None:
    import pickle

    first = parse("proc.name = bash and fd.name in (a, b) or not x")
    second = parse("  proc.name = bash and  fd.name in (a,b) or not   x")
    assert first == second and hash(first) == hash(second)
    assert first != parse("proc.name = zsh and fd.name in (a, b) or not x")
    copy = pickle.loads(pickle.dumps(first))
    assert copy == first and hash(copy) == hash(first)


def test_escape_error_position_is_after_the_string_like_libsinsp() -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse('a.b = "dog\\q" or c')
    assert info.value.position == 13
