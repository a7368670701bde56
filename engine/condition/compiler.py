"""Compile a condition AST against a FieldCatalog into one Python function.

The whole boolean structure becomes a single generated expression (`and`/`or`/`not` short-circuit
natively); each check is inlined when it is a plain comparison (`_x3(e) == _c3`,
`_x4(e) in _c4`) and calls a prepared closure otherwise. Extractors and typed constants (frozensets,
RE2 regexes, globs, path-prefix tries, IP networks) are bound once, here. A field read by
several checks is extracted at most once per evaluation. Semantics follow libsinsp: a field that
cannot be extracted (None) makes its check false.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.condition import ast
from engine.condition import transformers as tr
from engine.condition.errors import ConditionCompileError
from engine.condition.operators import (
    CMPOP_NAMES,
    SET_OPS,
    cached_path_matcher,
    comparability_error,
    compile_glob,
    compile_regex,
    in_network,
    network_matcher,
    scalar_comparator,
    split_operator,
)
from engine.condition.parser import supported_field_transformers
from engine.condition.values import parse_value, type_name, unhex
from engine.errors import UnknownFieldError
from engine.fields import FieldCatalog, is_any_of, text_renderer, value_check

# Python's parser refuses deeply nested parentheses; deeper subtrees become their own function.
_MAX_INLINE_NESTING = 40
_EQ_ONLY_TYPES = frozenset({"ipaddr", "ipnet"})
_REGEX_SPECIAL = ".+*?^$()[]{}|\\"


@dataclass(frozen=True)
class CompileWarning:
    """A libsinsp filter warning (value that looks like a field, regex that could be simpler)."""

    message: str
    position: int


@dataclass(frozen=True)
class CompiledCondition:
    """`evaluate(event) -> bool`, plus what the condition reads."""

    evaluate: Callable[[Any], bool]
    fields: frozenset[str]
    warnings: tuple[CompileWarning, ...] = ()
    source: str = field(default="", repr=False)

    def __call__(self, event: Any) -> bool:
        return self.evaluate(event)


def compile_condition(
    node: ast.Expr, catalog: FieldCatalog, *, share_extractions: bool = True, lazy: bool = False
) -> CompiledCondition:
    """Compile `node` (macros already substituted) for the fields of `catalog`.

    With `share_extractions`, a field checked several times (typical once macros are expanded)
    is extracted at most once per evaluation, like libsinsp's per-node extraction cache.
    Raises ConditionCompileError (message as libsinsp's, position of the check). With `lazy`,
    the condition is checked and its code generated now, but turned into Python bytecode on
    the first evaluation (loading rules files mostly validates: rulesets evaluate the rules of
    an event type through their own shared chain, and bytecode compilation is most of a load).
    """
    compiler = _Compiler(catalog)
    if share_extractions:
        compiler.repeated = _repeated_fields(node)
    evaluate = compiler.compile_function(node, lazy=lazy)
    return CompiledCondition(
        evaluate=evaluate,
        fields=frozenset(compiler.fields),
        warnings=tuple(compiler.warnings),
        source="\n".join(compiler.sources),
    )


def compile_chain(
    nodes: Sequence[ast.Expr | bool], catalog: FieldCatalog, *, first: bool
) -> Callable[[Any], Sequence[int]]:
    """One function evaluating several conditions in order on the same event; it returns the
    positions of those that match (only the first one with `first`).

    This is how a ruleset evaluates the rules of one event type: their conditions share most
    of their fields (the open_read, spawned_process, container... macros), and here a field
    read by more than one check of any of them is extracted once per event for all of them,
    with one Python call for the lot instead of one per rule. Each condition keeps its own
    short-circuit order, so what matches, and in which order, is what evaluating each
    condition alone gives. The conditions must already compile (ConditionCompileError
    otherwise). A node may be a constant (a condition already decided, see
    evttypes.specialize_for_event_type)."""
    compiler = _Compiler(catalog)
    trees = tuple(node for node in nodes if not isinstance(node, bool))
    compiler.repeated = _repeated_fields(ast.And(trees))
    compiler.repeated_subtrees = _repeated_subtrees(trees)
    return compiler.compile_chain(nodes, first)


@dataclass(frozen=True)
class CompiledValue:
    """A field or transformer compiled for extraction (output formats use this)."""

    extract: Callable[[Any], Any]
    type: str
    is_list: bool
    fields: frozenset[str]
    to_text: Callable[[Any], str] | None = None


def compile_value(node: ast.Field | ast.Transformer, catalog: FieldCatalog) -> CompiledValue:
    """Compile `proc.name`, `proc.aname[2]`, `tolower(fd.name)`... into an extractor."""
    compiler = _Compiler(catalog)
    operand = compiler.operand(node)
    to_text = None
    if isinstance(node, ast.Field):
        # A plain field is its extractor: no generated code in between.
        extract = compiler.namespace[operand.code.removesuffix("(e)")]
        to_text = text_renderer(extract)
        if operand.any_of:
            extract = _first_candidate(extract)
    else:
        extract = compiler.evaluator(operand)
    return CompiledValue(
        extract=extract,
        type=operand.type,
        is_list=operand.is_list,
        fields=frozenset(compiler.fields),
        to_text=to_text,
    )


_UNSET = object()  # a shared extraction not done yet in this evaluation


def _repeated_fields(node: ast.Expr) -> frozenset[tuple[str, str | None]]:
    """Fields (name, argument) that more than one check of the condition reads."""
    seen: set[tuple[str, str | None]] = set()
    repeated: set[tuple[str, str | None]] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        match current:
            case ast.And(children) | ast.Or(children) | ast.TransformerList(children):
                stack.extend(children)
            case ast.Not(child):
                stack.append(child)
            case ast.UnaryCheck(left):
                stack.append(left)
            case ast.BinaryCheck(left, _, right):
                stack.extend((left, right))
            case ast.Transformer(_, args):
                stack.extend(args)
            case ast.Field(name, arg):
                key = (name, arg)
                (repeated if key in seen else seen).add(key)
    return frozenset(repeated)


def _repeated_subtrees(trees: Sequence[ast.Expr]) -> frozenset[ast.Expr]:
    """and/or/not subtrees found more than once across `trees`: the expanded macros several
    rules share (open_read, spawned_process, inbound, outbound...). Inside a repeated subtree
    nothing more is counted: it is evaluated at most once, so its parts are not repeated by it.
    """
    seen: set[ast.Expr] = set()
    repeated: set[ast.Expr] = set()
    stack = list(trees)
    while stack:
        current = stack.pop()
        match current:
            case ast.And(children) | ast.Or(children):
                pass
            case ast.Not(child):
                children = (child,)
            case _:
                continue
        if current in seen:
            repeated.add(current)
            continue
        seen.add(current)
        stack.extend(children)
    return frozenset(repeated)


def _first_candidate(extract: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Printed, a field of candidates shows the first one (`%proc.aname` is the parent)."""

    def first(event: Any) -> Any:
        candidates = extract(event)
        return candidates[0] if candidates else None

    return first


@dataclass
class _Operand:
    """One side of a check: Python code computing the value (None = not extractable)."""

    code: str
    type: str
    is_list: bool
    name: str
    no_rhs: bool = False
    any_of: bool = False  # the value is a tuple of candidates; any may satisfy the check
    check_value: Callable[[str], None] | None = None  # field-specific constant validation


class _Compiler:
    def __init__(self, catalog: FieldCatalog) -> None:
        self.catalog = catalog
        self.namespace: dict[str, Any] = {"__builtins__": {}}
        self.counter = itertools.count()
        self.fields: set[str] = set()
        self.warnings: list[CompileWarning] = []
        self.sources: list[str] = []
        # Fields worth sharing, and (while generating a function body) their local variables.
        self.repeated: frozenset[tuple[str, str | None]] = frozenset()
        self.memo: dict[Any, str] | None = None
        # Subtrees evaluated at most once per evaluation (compile_chain), memoised in `memo`.
        self.repeated_subtrees: frozenset[ast.Expr] = frozenset()
        self.namespace["_U"] = _UNSET

    # -- code generation -----------------------------------------------------------------------

    def bind(self, value: Any, prefix: str) -> str:
        name = f"_{prefix}{next(self.counter)}"
        self.namespace[name] = value
        return name

    def compile_function(self, node: ast.Expr, lazy: bool = False) -> Callable[[Any], bool]:
        name = f"_f{next(self.counter)}"
        outer_memo, self.memo = self.memo, {}
        try:
            body = self.expr(node, 0)
            memo = self.memo
        finally:
            self.memo = outer_memo
        preamble = "".join(f"    {variable} = _U\n" for variable in memo.values())
        source = f"def {name}(e):\n{preamble}    return {body}\n"
        self.sources.append(source)
        namespace = self.namespace

        def build() -> Callable[[Any], bool]:
            exec(compile(source, "<falco condition>", "exec"), namespace)  # our generated code
            return namespace[name]  # type: ignore[no-any-return]

        if not lazy:
            return build()
        built: list[Callable[[Any], bool]] = []

        def evaluate(event: Any) -> bool:
            if not built:
                built.append(build())
            return built[0](event)

        return evaluate

    def compile_chain(self, nodes: Sequence[ast.Expr | bool], first: bool) -> Callable[[Any], Any]:
        name = f"_b{next(self.counter)}"
        outer_memo, self.memo = self.memo, {}
        try:
            bodies = [repr(n) if isinstance(n, bool) else self.expr(n, 0) for n in nodes]
            memo = self.memo
        finally:
            self.memo = outer_memo
        lines = [f"def {name}(e):"]
        lines += [f"    {variable} = _U" for variable in memo.values()]
        if first:
            for position, body in enumerate(bodies):
                lines += [f"    if {body}:", f"        return ({position},)"]
            lines.append("    return ()")
        else:
            lines.append("    matched = []")
            for position, body in enumerate(bodies):
                lines += [f"    if {body}:", f"        matched.append({position})"]
            lines.append("    return matched")
        source = "\n".join(lines) + "\n"
        self.sources.append(source)
        exec(compile(source, "<falco rules chain>", "exec"), self.namespace)  # our generated code
        return self.namespace[name]

    def expr(self, node: ast.Expr, nesting: int) -> str:
        if self.memo is not None and node in self.repeated_subtrees:
            variable = self.memo.get(node)
            if variable is None:
                # The memo slot is reserved before the subtree is generated: its own parts
                # take later slots.
                variable = self.memo[node] = f"_s{next(self.counter)}"
            code = self.inline_expr(node, nesting)
            return f"({variable} if {variable} is not _U else ({variable} := {code}))"
        return self.inline_expr(node, nesting)

    def inline_expr(self, node: ast.Expr, nesting: int) -> str:
        if nesting > _MAX_INLINE_NESTING and isinstance(node, ast.And | ast.Or | ast.Not):
            function = self.compile_function(node)
            return f"{self.bind(function, 'g')}(e)"
        match node:
            case ast.And(children) | ast.Or(children):
                joiner = " and " if isinstance(node, ast.And) else " or "
                return "(" + joiner.join(self.expr(c, nesting + 1) for c in children) + ")"
            case ast.Not(child):
                return f"(not {self.expr(child, nesting + 1)})"
            case ast.UnaryCheck() | ast.BinaryCheck():
                return self.check(node)
            case ast.MacroRef(name):
                raise ConditionCompileError(
                    f"filter error: unexpected identifier '{name}'", node.pos
                )
        raise ConditionCompileError(
            "sinsp_filter_compiler: unexpected standalone value expression in filter AST",
            getattr(node, "pos", None),
        )

    def check(self, node: ast.UnaryCheck | ast.BinaryCheck) -> str:
        """A check's code. Errors point at the check, as libsinsp's compiler reports them."""
        try:
            if isinstance(node, ast.UnaryCheck):
                return f"({self.operand(node.left).code} is not None)"
            return self.binary_check(node)
        except ConditionCompileError as error:
            raise ConditionCompileError(error.message, node.pos, error.hint) from None

    # -- operands ------------------------------------------------------------------------------

    def operand(self, node: ast.Expr) -> _Operand:
        match node:
            case ast.Field(name, arg):
                return self.field_operand(node, name, arg)
            case ast.Transformer(name, args, arg) if name == "val":
                if arg is not None:
                    raise ConditionCompileError(
                        "filter error: transformer 'val' does not support field arguments", node.pos
                    )
                return self.operand(args[0])
            case ast.Transformer(name, args, arg) if name in tr.SINGLE_VALUE and len(args) == 1:
                if arg is not None:
                    raise ConditionCompileError(
                        f"filter error: transformer '{name}' does not support field arguments",
                        node.pos,
                    )
                return self.single_transformer(node, name, self.operand(args[0]))
            case ast.Transformer(name, args, arg):
                return self.multi_transformer(node, name, args, arg)
            case ast.Value(value):
                return _Operand(self.bind(value, "c"), "string", False, value)
            case ast.TransformerList(children):
                return self.list_operand(children)
        raise ConditionCompileError(
            "filter error: unexpected expression", getattr(node, "pos", None)
        )

    def field_operand(self, node: ast.Field, name: str, arg: str | None) -> _Operand:
        try:
            spec, extractor = self.catalog.extractor(name, arg)
        except UnknownFieldError as error:
            raise ConditionCompileError(str(error), node.pos) from None
        self.fields.add(name)
        code = f"{self.bind(extractor, 'x')}(e)"
        key = (name, arg)
        if self.memo is not None and key in self.repeated:
            variable = self.memo.get(key)
            if variable is None:
                variable = self.memo[key] = f"_m{next(self.counter)}"
            code = f"({variable} if {variable} is not _U else ({variable} := {code}))"
        return _Operand(
            code,
            spec.type,
            spec.is_list,
            spec.name,
            spec.no_rhs,
            is_any_of(extractor),
            value_check(extractor),
        )

    def _transformer_support(self, node: ast.Expr, operand: _Operand) -> None:
        spec = self.catalog.spec(operand.name)
        if spec is not None and spec.no_transformer:
            raise ConditionCompileError(
                f"field '{operand.name}' does not support transformers", node.pos
            )

    def single_transformer(self, node: ast.Transformer, name: str, inner: _Operand) -> _Operand:
        self._transformer_support(node, inner)
        result = tr.single_result_type(name, inner.type, inner.is_list)
        if result is None:
            raise ConditionCompileError(
                f"can't add field transformer: type '{type_name(inner.type)}' is not supported by "
                f"'{name}' transformer applied on {'list ' if inner.is_list else ''}"
                f"field '{inner.name}'",
                node.pos,
            )
        function = tr.single_runtime(name, inner.is_list)

        def transform(value: Any) -> Any:
            return None if value is None else function(value)

        code = f"{self.bind(transform, 't')}({inner.code})"
        return _Operand(code, result[0], result[1], inner.name, inner.no_rhs)

    def evaluator(self, operand: _Operand) -> Callable[[Any], Any]:
        return eval(f"lambda e: {operand.code}", self.namespace)  # our generated code

    def operand_outside_body(self, node: ast.Expr) -> _Operand:
        """An operand evaluated by its own lambda (no access to the body's shared values)."""
        saved, self.memo = self.memo, None
        try:
            return self.operand(node)
        finally:
            self.memo = saved

    def list_operand(self, children: Sequence[ast.Expr]) -> _Operand:
        parts = [self.operand_outside_body(child) for child in children]
        evaluators = [(self.evaluator(p), p.is_list) for p in parts]

        def extract(event: Any) -> tuple[Any, ...] | None:
            values: list[Any] = []
            for evaluate, is_list in evaluators:
                value = evaluate(event)
                if value is None:
                    return None  # as libsinsp's list_check: one missing element, no list
                if is_list:
                    values.extend(value)
                else:
                    values.append(value)
            return tuple(values)

        return _Operand(f"{self.bind(extract, 'l')}(e)", "string", True, "list")

    def multi_transformer(
        self, node: ast.Transformer, name: str, args: Sequence[ast.Expr], arg: str | None
    ) -> _Operand:
        if name not in tr.MULTI_VALUE:
            raise ConditionCompileError(
                f"filter error: unknown transformer '{name}', expected one of "
                + ", ".join(supported_field_transformers(True)),
                node.pos,
            )
        operands = [self.operand_outside_body(a) for a in args]
        try:
            tr.check_multi_arguments(name, [(o.type, o.is_list) for o in operands], arg)
        except ValueError as error:
            raise ConditionCompileError(str(error), node.pos) from None
        evaluators = [self.evaluator(o) for o in operands]
        extract = _multi_extractor(name, evaluators, arg)
        type_, is_list = tr.multi_result_type(name, arg)
        return _Operand(f"{self.bind(extract, 'm')}(e)", type_, is_list, name)

    # -- checks --------------------------------------------------------------------------------

    def binary_check(self, node: ast.BinaryCheck) -> str:
        left = self.operand(node.left)
        base, modifier = split_operator(node.op)
        error = comparability_error(base, modifier, left.type, left.is_list)
        if error is not None:
            raise ConditionCompileError(f"filter error: {error}", node.pos)
        if isinstance(node.right, ast.Transformer):
            return self.field_comparison(node, left, base)
        raw = (
            list(node.right.values) if isinstance(node.right, ast.ListValue) else [node.right.value]
        )
        for value in raw:
            self.add_value_warnings(base, value, node.right.pos)
            if left.check_value is not None:
                try:
                    left.check_value(value)
                except ValueError as error:
                    raise ConditionCompileError(str(error), node.right.pos) from None
        constants = [self.constant(base, left.type, value, node.right.pos) for value in raw]
        variable = self.bind(None, "v")
        if left.is_list:
            predicate = _list_predicate(base, left.type, constants)
            return self.guarded_call(variable, left.code, predicate)
        if left.any_of:
            # Check each candidate with the same code, then keep any match.
            single = _Operand("a", left.type, False, left.name, left.no_rhs)
            check = self.constant_check(base, modifier, single, constants, self.bind(None, "v"))
            predicate = eval(f"lambda a: {check}", self.namespace)  # our generated code
            return self.guarded_call(variable, left.code, _any_candidate(predicate))
        return self.constant_check(base, modifier, left, constants, variable)

    def guarded_call(self, variable: str, code: str, predicate: Callable[[Any], bool]) -> str:
        """`predicate(value)` when the value can be extracted, else false."""
        return f"(({variable} := {code}) is not None and {self.bind(predicate, 'p')}({variable}))"

    def constant_check(
        self, base: str, modifier: str | None, left: _Operand, constants: list[Any], variable: str
    ) -> str:
        if modifier is not None:
            predicate = _modifier_predicate(base, modifier, left.type, constants)
            return self.guarded_call(variable, left.code, predicate)
        return self.scalar_check(base, left, constants, variable)

    def scalar_check(self, base: str, left: _Operand, constants: list[Any], variable: str) -> str:
        x = left.code
        guard = f"({variable} := {x}) is not None and "
        if base in SET_OPS or base == "pmatch":
            if base == "pmatch":
                matcher = cached_path_matcher(constants)
                return f"({guard}{self.bind(matcher, 'p')}({variable}))"
            if left.type == "ipnet":
                return self.guarded_call(variable, x, network_matcher(constants))
            # Every other type compares by equality, which hashing preserves (an IPv4 address
            # never equals an IPv6 one, as in libsinsp).
            return f"({x} in {self.bind(frozenset(constants), 'c')})"
        constant = constants[0]
        if left.type == "ipnet":
            matcher = network_matcher([constant], negate=base != "=")
            return self.guarded_call(variable, x, matcher)
        c = self.bind(constant, "c")
        inline = {
            "=": f"({x} == {c})",
            "!=": f"({guard}{variable} != {c})",
            "<": f"({guard}{variable} < {c})",
            "<=": f"({guard}{variable} <= {c})",
            ">": f"({guard}{variable} > {c})",
            ">=": f"({guard}{variable} >= {c})",
            "contains": f"({guard}{c} in {variable})",
            "bcontains": f"({guard}{c} in {variable})",
            "startswith": f"({guard}{variable}.startswith({c}))",
            "bstartswith": f"({guard}{variable}.startswith({c}))",
            "endswith": f"({guard}{variable}.endswith({c}))",
            "regex": f"({guard}{c}({variable}) is not None)",
            "glob": f"({guard}{c}({variable}) is not None)",
            "iglob": f"({guard}{c}({variable}) is not None)",
        }
        if base == "icontains":
            predicate = scalar_comparator("icontains", left.type)
            return f"({guard}{self.bind(predicate, 'p')}({variable}, {c}))"
        return inline[base]

    def constant(self, base: str, type_: str, value: str, position: int) -> Any:
        if base in ("bcontains", "bstartswith"):
            decoded = unhex(value)
            if decoded is None:
                raise ConditionCompileError(
                    "filter error: bcontains and bstartswith operator support hex strings only",
                    position,
                )
            return decoded
        if base == "regex":
            try:
                return compile_regex(value)
            except ValueError as error:
                raise ConditionCompileError(str(error), position) from None
        if base in ("glob", "iglob") and type_ in ("string", "fspath"):
            return compile_glob(value, base == "iglob")
        if base == "pmatch":
            return value
        try:
            return parse_value(value, type_)
        except ValueError as error:
            raise ConditionCompileError(str(error), position) from None

    def field_comparison(self, node: ast.BinaryCheck, left: _Operand, base: str) -> str:
        assert isinstance(node.right, ast.Transformer)
        if base in ("pmatch", "regex"):
            raise ConditionCompileError(
                f"operator '{CMPOP_NAMES[base]}' doesn't support right-hand side fields", node.pos
            )
        if left.type == "ipnet":
            raise ConditionCompileError(
                "field type 'IPNET' doesn't support right-hand side fields", node.pos
            )
        right = self.operand(node.right)
        if left.no_rhs:
            raise ConditionCompileError(
                f"field '{left.name}' doesn't support right-hand side fields", node.pos
            )
        if right.no_rhs:
            raise ConditionCompileError(
                f"field '{right.name}' can't be used as a right-hand side field", node.pos
            )
        if (left.type, left.is_list) != (right.type, right.is_list):
            raise ConditionCompileError(
                f"field '{left.name}' has type '{type_name(left.type)}"
                f"{' (list)' if left.is_list else ''}' while the right-hand side field "
                f"'{right.name}' has incompatible type '{type_name(right.type)}"
                f"{' (list)' if right.is_list else ''}'",
                node.pos,
            )
        predicate = _field_predicate(base, left.type, left.is_list)
        v, w = self.bind(None, "v"), self.bind(None, "w")
        return (
            f"(({v} := {left.code}) is not None and ({w} := {right.code}) is not None"
            f" and {self.bind(predicate, 'p')}({v}, {w}))"
        )

    def add_value_warnings(self, base: str, value: str, position: int) -> None:
        """libsinsp's check_value_and_add_warnings."""
        if base == "regex" and _regex_could_be_simpler(value):
            self.warnings.append(
                CompileWarning(
                    f"regex check with '{value}' may be optimized with simpler operators such as "
                    "'=', 'contains', 'startswith', 'endswith'",
                    position,
                )
            )
        stripped = "".join(value.split())
        # Field names always hold a dot, transformers end with ')': skip the lookups otherwise.
        if "." in stripped and self.catalog.split(stripped) is not None:
            self.warnings.append(
                CompileWarning(
                    f"'{value}' may be a valid field misused as a const string value", position
                )
            )
        for name in supported_field_transformers(True) if stripped.endswith(")") else ():
            if (
                len(stripped) >= len(name) + 2
                and stripped.startswith(name + "(")
                and stripped.endswith(")")
            ):
                self.warnings.append(
                    CompileWarning(
                        f"'{value}' may be a valid field transformer misused as a const "
                        "string value",
                        position,
                    )
                )


def _regex_could_be_simpler(value: str) -> bool:
    length = len(value)
    index = 0
    while index < length:
        char = value[index]
        if (index == 0 and char == "^") or (index == length - 1 and char == "$"):
            index += 1
            continue
        if (
            ((index == 0 and length > 1) or index == length - 2)
            and char == "."
            and index + 1 < length
            and value[index + 1] in "+*?"
        ):
            index += 2
            continue
        if char in _REGEX_SPECIAL:
            return False
        index += 1
    return True


def _any_candidate(predicate: Callable[[Any], bool]) -> Callable[[Any], bool]:
    # map(), not a generator expression: fd.net/fd.ip checks run this on every socket event.
    return lambda candidates: any(map(predicate, candidates))


def _list_predicate(base: str, type_: str, constants: list[Any]) -> Callable[[Any], bool]:
    """`in` (every extracted value is in the set) / `intersects` (any is) on list fields."""
    if type_ == "ipnet":
        networks = tuple(constants)

        def member(value: Any) -> bool:
            return any(in_network(value, n) for n in networks)

    else:
        member = frozenset(constants).__contains__
    if base == "in":
        return lambda values: all(member(v) for v in values)
    return lambda values: any(member(v) for v in values)


def _element_matcher(base: str, type_: str, constant: Any) -> Callable[[Any], bool]:
    if base in ("regex", "glob", "iglob") and not isinstance(constant, str | bytes):
        return lambda value: constant(value) is not None
    compare = scalar_comparator(base, type_)
    return lambda value: compare(value, constant)


def _modifier_predicate(
    base: str, modifier: str, type_: str, constants: list[Any]
) -> Callable[[Any], bool]:
    """`op oneof|anyof|allof (values)`: exactly one / at least one / every value matches."""
    if type_ in _EQ_ONLY_TYPES and base not in ("=", "!=", "regex"):
        base = "="
    if not constants:
        return lambda value: False
    if base == "=" and modifier == "anyof" and type_ != "ipnet":
        members = frozenset(constants)
        return members.__contains__
    if base == "!=" and modifier == "allof" and type_ != "ipnet":
        members = frozenset(constants)
        return lambda value: value not in members
    matchers = [_element_matcher(base, type_, c) for c in constants]
    if modifier == "anyof":
        return lambda value: any(m(value) for m in matchers)
    if modifier == "allof":
        return lambda value: all(m(value) for m in matchers)

    def exactly_one(value: Any) -> bool:
        found = 0
        for matcher in matchers:
            if matcher(value):
                found += 1
                if found > 1:
                    return False
        return found == 1

    return exactly_one


def _field_predicate(base: str, type_: str, is_list: bool) -> Callable[[Any, Any], bool]:
    """Field-to-field comparison; both sides have the same type and list-ness (checked before).

    List fields only take `in` (every left value among the right ones) and `intersects` (some
    is). A single right value makes `in`/`intersects` equality, and every modifier (oneof,
    anyof, allof of one value) the plain operator."""
    compare = scalar_comparator(base, type_)
    if not is_list:
        return compare
    equal = scalar_comparator("=", type_)
    if base == "in":
        return lambda v, w: all(any(equal(x, y) for y in w) for x in v)
    return lambda v, w: any(any(equal(x, y) for y in w) for x in v)


def _multi_extractor(
    name: str, evaluators: list[Callable[[Any], Any]], arg: str | None
) -> Callable[[Any], Any]:
    if name == "join":
        separator_of, values_of = evaluators

        def join(event: Any) -> Any:
            separator = separator_of(event)
            values = values_of(event)
            if separator is None or values is None:
                return None
            return tr.join(separator, values)

        return join
    if name == "concat":

        def concat(event: Any) -> Any:
            parts = [evaluate(event) for evaluate in evaluators]
            return None if any(p is None for p in parts) else tr.concat(*parts)

        return concat
    argv_of, optstring_of = evaluators

    def getopt(event: Any) -> Any:
        optstring = optstring_of(event)
        argv = argv_of(event)
        if optstring is None or argv is None:
            return None
        return tr.getopt(argv, optstring, arg)

    return getopt
