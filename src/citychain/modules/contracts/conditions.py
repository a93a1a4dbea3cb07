"""Contract conditions: a bounded, float-free CEL subset, checked on creation, run in end-block.

A condition is a CEL expression over five variables (:data:`VARIABLES`). It is handled by two
pinned libraries with one job each:

* ``celpy`` (cel-python 0.5.0) parses the source into a lark tree of the CEL reference grammar;
  :func:`check_condition` walks that tree once and refuses anything outside the subset below.
  The source is also compiled by the evaluator, so whatever the evaluator refuses is refused too.
* ``cel`` (common-expression-language 0.10.0, the Rust cel-interpreter) evaluates:
  :func:`evaluate` never raises for a bad condition or bad data; it returns an
  :class:`Evaluation` carrying a stable error code.

The subset
----------
Allowed: int literals (decimal or hex, signed 64-bit), string literals, ``true``/``false``, list
literals; the identifiers in :data:`VARIABLES`; field selection ``x.f``; indexing ``x[i]``; the
operators ``+ - * / % - ! && || ?: == != < <= > >= in``; the functions ``size(x)``, ``x.size()``,
``int(x)``, ``string(x)`` and the macro ``has(x.f)``.

Refused, with the ``reason`` detail of :class:`ConditionInvalidError`:

``too_long``            the UTF-8 source exceeds ``limits.max_bytes``
``syntax``              the source does not parse (either library)
``float``               a double literal (``1.5``, ``1e3``)
``uint``                an unsigned literal (``1u``)
``bytes``               a bytes literal (``b"x"``)
``unsupported``         ``null``, map literals, message construction ``T{f: x}``, ``.name``
``unknown_identifier``  an identifier outside :data:`VARIABLES`
``macro``               a comprehension: ``all``, ``exists``, ``exists_one``, ``map``, ``filter``
``function``            any other function or method (``double``, ``matches``, ``f(f(1))``...),
                        or ``has`` on something other than a field selection
``feed_access``         ``feeds`` used other than as ``feeds["<feed id>"]`` with a plain, non-empty
                        string literal (no escapes); whether the feed exists is the handler's check
``too_many_feeds``      more distinct feed ids than ``limits.max_feeds``
``too_large``           more nodes than ``limits.max_nodes``
``too_costly``          a cost estimate above ``limits.max_cost``
``wrong_kind``          the top of the expression cannot have the requested kind

Refusing comprehensions is what bounds the work: CEL has no loops and no recursion, so without
macros evaluation visits each node at most once and the cost is linear in the tree.

Nodes and cost
--------------
``nodes`` counts the nodes of the abstract syntax, not lark's pass-through chain rules: one per
literal, identifier, field selection, index, function call, list literal, unary or binary
operator and conditional. ``has(x.f)`` counts as the call plus its selection.

``cost`` is 1 per node plus a surcharge for nodes whose work grows with the size of their
operands (strings and lists in the activation are bounded by the modules that build them):
``+`` (may concatenate) +2; ``==``/``!=`` (may compare strings or lists) +2; ``<``, ``<=``,
``>``, ``>=`` +1; ``in`` (scans a list) +8; index +1; ``size``/``int``/``string`` +4;
``has`` +1; list literal +1 per element.

Evaluation errors
-----------------
``division_by_zero``, ``overflow`` (signed 64-bit, in the expression, the result or an activation
int), ``missing_data`` (a missing variable, key, field or list index), ``type_error`` (no
matching overload, or a result of the wrong kind) and ``evaluation_error`` (anything else).
The error text is short and built here from stable parts; it never contains addresses.

Only the variables a program reads are handed to the engine, since converting the activation
is most of an evaluation's time. Compiled programs are cached per source in a bounded,
process-local cache; a result never depends on whether the program came from the cache.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import cel
from celpy.celparser import CELParseError, CELParser
from lark import Token, Tree

from citychain.modules.contracts.errors import ConditionInvalidError

__all__ = [
    "KINDS",
    "VARIABLES",
    "CheckedCondition",
    "ConditionLimits",
    "Evaluation",
    "check_condition",
    "evaluate",
]

VARIABLES = ("attestations", "block", "contract", "feeds", "milestone")
KINDS = ("bool", "int")

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_MAX_ERROR_CHARS = 200
_PROGRAM_CACHE_SIZE = 1024

# Lark rules that only pass their single child through (CEL precedence levels).
_CHAIN_RULES = frozenset({
    "expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
    "unary", "member", "primary", "paren_expr",
})
_BINARY_COST = {
    "relation_lt": 2, "relation_le": 2, "relation_gt": 2, "relation_ge": 2,
    "relation_eq": 3, "relation_ne": 3, "relation_in": 9,
    "addition_add": 3, "addition_sub": 1,
    "multiplication_mul": 1, "multiplication_div": 1, "multiplication_mod": 1,
}
_BOOL_OPERATORS = frozenset({
    "relation_lt", "relation_le", "relation_gt", "relation_ge", "relation_eq", "relation_ne",
    "relation_in", "unary_not",
})
_INT_OPERATORS = frozenset({
    "addition_sub", "multiplication_mul", "multiplication_div", "multiplication_mod", "unary_neg",
})
_GLOBAL_FUNCTIONS = frozenset({"size", "int", "string"})
_METHODS = frozenset({"size"})
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_LITERAL_REASONS = {
    "FLOAT_LIT": "float", "UINT_LIT": "uint", "BYTES_LIT": "bytes", "NULL_LIT": "unsupported",
}
_PLAIN_STRING = re.compile(r'"([^"\\]*)"|\'([^\'\\]*)\'')
_UNDEFINED_NAME = re.compile(r"Undefined variable or function: '([A-Za-z_][A-Za-z0-9_]*)'")
_TYPE_DETAIL = re.compile(
    r"(Unsupported operation: [a-z_]+ \S{1,2} [a-z_]+|Cannot mix signed and unsigned integers)"
)
_COMPILE_ERROR = re.compile(r"ERROR: <input>:([0-9]+):([0-9]+): ([^\n]*)")
_INDEX_DETAIL = re.compile(r"index out of bounds: (-?[0-9]{1,20})")


@dataclass(frozen=True, slots=True)
class ConditionLimits:
    """Bounds a condition must meet at creation (from the contracts params)."""

    max_bytes: int = 1024
    max_nodes: int = 256
    max_cost: int = 2000
    max_feeds: int = 8


@dataclass(frozen=True, slots=True)
class CheckedCondition:
    """A condition that passed :func:`check_condition`, with what the checker learned."""

    source: str
    kind: str
    feed_ids: tuple[str, ...]
    nodes: int
    cost: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of one evaluation; ``error_code`` is ``""`` when ``ok``."""

    ok: bool
    value: bool | int | None
    error_code: str
    error: str


_DEFAULT_LIMITS = ConditionLimits()


def check_condition(
    source: str, *, field: str, kind: str = "bool", limits: ConditionLimits = _DEFAULT_LIMITS
) -> CheckedCondition:
    """Check ``source`` against the allowed CEL subset and ``limits``.

    Raises:
        ConditionInvalidError: with ``field`` and a ``reason`` detail (see the module docstring),
            plus ``limit`` and ``actual`` for the limits.
        ValueError: ``kind`` is not one of :data:`KINDS` (a programming error).
    """
    _validate_kind(kind)
    size = len(source.encode("utf-8"))
    if size > limits.max_bytes:
        raise ConditionInvalidError(
            f"condition is {size} bytes, more than the limit of {limits.max_bytes}",
            field=field, reason="too_long", limit=limits.max_bytes, actual=size,
        )
    tree = _parse(source, field)
    walk = _Walk(field)
    walk.visit(tree)
    if walk.nodes > limits.max_nodes:
        raise ConditionInvalidError(
            f"condition has {walk.nodes} nodes, more than the limit of {limits.max_nodes}",
            field=field, reason="too_large", limit=limits.max_nodes, actual=walk.nodes,
        )
    if walk.cost > limits.max_cost:
        raise ConditionInvalidError(
            f"condition costs {walk.cost}, more than the limit of {limits.max_cost}",
            field=field, reason="too_costly", limit=limits.max_cost, actual=walk.cost,
        )
    feed_ids = tuple(sorted(walk.feed_ids))
    if len(feed_ids) > limits.max_feeds:
        raise ConditionInvalidError(
            f"condition reads {len(feed_ids)} feeds, more than the limit of {limits.max_feeds}",
            field=field, reason="too_many_feeds", limit=limits.max_feeds, actual=len(feed_ids),
        )
    _check_kind(_unwrap(tree), kind, field)
    try:
        _compile(source)
    except Exception as exc:  # the evaluator refuses what the reference grammar accepts
        found = _COMPILE_ERROR.search(str(exc))
        message = found.group(3) if found else _first_line(exc)
        line, column = (int(found.group(1)), int(found.group(2))) if found else (None, None)
        raise ConditionInvalidError(
            f"condition does not compile (line {line}, column {column}): {_clip(message, 160)}",
            field=field, reason="syntax", line=line, column=column,
        ) from None
    return CheckedCondition(
        source=source, kind=kind, feed_ids=feed_ids, nodes=walk.nodes, cost=walk.cost
    )


def evaluate(source: str, kind: str, activation: Mapping[str, object]) -> Evaluation:
    """Evaluate a checked condition over ``activation`` (plain dicts, lists, ints, strs, bools).

    Never raises for a bad condition or bad data: the failure is in the returned
    :class:`Evaluation`. ``source`` should have passed :func:`check_condition`.

    Raises:
        ValueError: ``kind`` is not one of :data:`KINDS` (a programming error).
    """
    _validate_kind(kind)
    try:
        program, names = _compile(source)
    except Exception:
        return _failure("evaluation_error", "condition does not compile")
    # Only the variables the program reads are converted for the engine (the conversion is most
    # of the time); an unread variable cannot change the result.
    variables = {name: activation[name] for name in names if name in activation}
    problem = _check_activation(variables)
    if problem is not None:
        return problem
    try:
        result = program.execute(variables)
    except ZeroDivisionError:
        return _failure("division_by_zero", "division or modulo by zero")
    except OverflowError:
        return _failure("overflow", "integer overflow")
    except KeyError as exc:
        return _failure("missing_data", f"no such key or field: {_quote(exc.args)}")
    except IndexError as exc:
        match = _INDEX_DETAIL.search(str(exc))
        index = match.group(1) if match else "?"
        return _failure("missing_data", f"list index out of range: {index}")
    except TypeError as exc:
        detail = _TYPE_DETAIL.search(str(exc))
        return _failure("type_error", detail.group(1) if detail else "no matching overload")
    except RuntimeError as exc:
        return _runtime_failure(str(exc))
    except Exception:
        return _failure("evaluation_error", "evaluation failed")
    except BaseException as exc:  # pyo3 reports a Rust panic as a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        return _failure("evaluation_error", "evaluation failed")
    return _check_result(result, kind)


# --- checking ---------------------------------------------------------------------------------


def _validate_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown condition kind {kind!r}")


def _parse(source: str, field: str) -> Tree[Token]:
    try:
        return CELParser().parse(source)
    except CELParseError as exc:
        message = _first_line(exc.__context__ if exc.__context__ is not None else exc)
        raise ConditionInvalidError(
            f"condition does not parse (line {exc.line}, column {exc.column}): {message}",
            field=field, reason="syntax", line=exc.line, column=exc.column,
        ) from None


def _unwrap(node: Tree[Token] | Token) -> Tree[Token] | Token:
    """Skip the precedence-chain rules that have a single child."""
    while isinstance(node, Tree) and node.data in _CHAIN_RULES and len(node.children) == 1:
        node = node.children[0]
    return node


def _refuse(field: str, reason: str, message: str) -> ConditionInvalidError:
    return ConditionInvalidError(message, field=field, reason=reason)


class _Walk:
    """One pass over the lark tree: refuses what is outside the subset, counts nodes and cost."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.nodes = 0
        self.cost = 0
        self.feed_ids: set[str] = set()

    def add(self, cost: int) -> None:
        self.nodes += 1
        self.cost += cost

    def visit(self, root: Tree[Token]) -> None:
        # Iterative: deeply nested input must not exhaust Python's recursion limit.
        stack: list[Tree[Token] | Token] = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, Token):
                continue  # operator-free tokens (names) are handled by their rule
            stack.extend(reversed(self.visit_rule(node)))

    def visit_rule(self, node: Tree[Token]) -> list[Tree[Token] | Token]:
        """Account for ``node``; return the children still to visit."""
        rule = node.data
        children = node.children
        if rule in _CHAIN_RULES:
            if rule == "expr" and len(children) == 3:
                self.add(1)  # the conditional ?:
            elif rule in ("conditionalor", "conditionaland") and len(children) == 2:
                self.add(1)
            return list(children)
        if rule in _BINARY_COST:
            self.add(_BINARY_COST[rule])
            return list(children)
        if rule in ("unary_not", "unary_neg"):
            self.add(1)
            return []
        if rule == "literal":
            return self.visit_literal(node)
        if rule == "ident":
            return self.visit_ident(_name(node))
        if rule == "list_lit":
            elements = _arguments(node)
            self.add(1 + len(elements))
            return elements
        if rule == "member_dot":
            self.add(1)
            return [children[0]]
        if rule == "member_index":
            return self.visit_index(node)
        if rule == "ident_arg":
            return self.visit_call(node)
        if rule == "member_dot_arg":
            return self.visit_method(node)
        if rule == "exprlist":
            return list(children)
        if rule in ("map_lit", "mapinits"):
            raise _refuse(self.field, "unsupported", "map literals are not allowed")
        if rule in ("member_object", "fieldinits"):
            raise _refuse(self.field, "unsupported", "message construction is not allowed")
        if rule in ("dot_ident", "dot_ident_arg"):
            raise _refuse(self.field, "unsupported", "leading-dot names are not allowed")
        raise _refuse(self.field, "unsupported", f"construct {rule!s} is not allowed")

    def visit_literal(self, node: Tree[Token]) -> list[Tree[Token] | Token]:
        token = node.children[0]
        kind = token.type if isinstance(token, Token) else ""
        reason = _LITERAL_REASONS.get(kind)
        if reason is not None:
            raise _refuse(self.field, reason, f"literal {_clip(str(token))} is not allowed")
        self.add(1)
        return []

    def visit_ident(self, name: str) -> list[Tree[Token] | Token]:
        if name == "feeds":
            raise _refuse(
                self.field, "feed_access",
                'feeds may only be read as feeds["<feed id>"] with a literal feed id',
            )
        if name not in VARIABLES:
            raise _refuse(
                self.field, "unknown_identifier",
                f"unknown identifier {_clip(name)}; allowed: {', '.join(VARIABLES)}",
            )
        self.add(1)
        return []

    def visit_index(self, node: Tree[Token]) -> list[Tree[Token] | Token]:
        target, index = node.children[0], node.children[1]
        inner = _unwrap(target)
        if isinstance(inner, Tree) and inner.data == "ident" and _name(inner) == "feeds":
            self.feed_ids.add(self.feed_id(_unwrap(index)))
            self.add(2)  # the index
            self.add(1)  # the variable
            self.add(1)  # the feed id literal
            return []
        self.add(2)
        return [target, index]

    def feed_id(self, index: Tree[Token] | Token) -> str:
        if isinstance(index, Tree) and index.data == "literal":
            token = index.children[0]
            match = _PLAIN_STRING.fullmatch(str(token))
            if match is not None:
                feed_id = match.group(1) if match.group(1) is not None else match.group(2)
                if feed_id:
                    return feed_id
        raise _refuse(
            self.field, "feed_access", "a feed must be indexed by a plain string literal"
        )

    def visit_call(self, node: Tree[Token]) -> list[Tree[Token] | Token]:
        name = str(node.children[0])
        arguments = _arguments(node)
        if name == "has":
            selection = _unwrap(arguments[0]) if len(arguments) == 1 else None
            if not (isinstance(selection, Tree) and selection.data == "member_dot"):
                raise _refuse(self.field, "function", "has() takes one field selection x.f")
            self.add(2)
            return arguments
        if name in _MACROS:
            raise _refuse(self.field, "macro", f"macro {name}() is not allowed")
        if name not in _GLOBAL_FUNCTIONS:
            raise _refuse(self.field, "function", f"function {_clip(name)}() is not allowed")
        if len(arguments) != 1:
            raise _refuse(self.field, "function", f"{name}() takes one argument")
        self.add(5)
        return arguments

    def visit_method(self, node: Tree[Token]) -> list[Tree[Token] | Token]:
        target, name = node.children[0], str(node.children[1])
        arguments = _arguments(node)
        if name in _MACROS:
            raise _refuse(self.field, "macro", f"macro .{name}() is not allowed")
        if name not in _METHODS:
            raise _refuse(self.field, "function", f"method .{_clip(name)}() is not allowed")
        if arguments:
            raise _refuse(self.field, "function", f".{name}() takes no argument")
        self.add(5)
        return [target]


def _name(node: Tree[Token]) -> str:
    return str(node.children[0])


def _arguments(node: Tree[Token]) -> list[Tree[Token] | Token]:
    """The expressions of the call's or list's optional ``exprlist`` child."""
    for child in node.children:
        if isinstance(child, Tree) and child.data == "exprlist":
            return list(child.children)
    return []


def _check_kind(top: Tree[Token] | Token, kind: str, field: str) -> None:
    """Refuse a top that cannot have ``kind`` (full typing happens at evaluation)."""
    if not isinstance(top, Tree):
        return
    shape = _shape(top)
    if shape == "" or shape == kind:
        return
    raise ConditionInvalidError(
        f"condition must give {kind} but its top is {shape}",
        field=field, reason="wrong_kind", expected=kind, actual=shape,
    )


def _shape(top: Tree[Token]) -> str:
    """The type the top node certainly has, or ``""`` when only evaluation can tell."""
    rule = top.data
    if rule == "literal":
        token = top.children[0]
        kind = token.type if isinstance(token, Token) else ""
        return {"INT_LIT": "int", "BOOL_LIT": "bool", "STRING_LIT": "string",
                "MLSTRING_LIT": "string"}.get(kind, "")
    if rule == "list_lit":
        return "list"
    if rule in ("conditionalor", "conditionaland"):
        return "bool"
    if rule in ("relation", "addition", "multiplication", "unary"):
        operator = top.children[0]
        if isinstance(operator, Tree) and operator.data in _BOOL_OPERATORS:
            return "bool"
        if isinstance(operator, Tree) and operator.data in _INT_OPERATORS:
            return "int"
        return ""
    if rule == "ident_arg":
        return {"size": "int", "int": "int", "string": "string", "has": "bool"}.get(
            str(top.children[0]), ""
        )
    return ""


# --- evaluating -------------------------------------------------------------------------------

_programs: dict[str, tuple[cel.Program, tuple[str, ...]]] = {}


def _compile(source: str) -> tuple[cel.Program, tuple[str, ...]]:
    """The program for ``source`` and the variables it reads (from the cache when there)."""
    entry = _programs.get(source)
    if entry is None:
        program = cel.compile(source)
        entry = (program, tuple(program.variables()))
        if len(_programs) >= _PROGRAM_CACHE_SIZE:
            del _programs[next(iter(_programs))]  # oldest first; only speed depends on it
        _programs[source] = entry
    return entry


def _check_activation(activation: Mapping[str, object]) -> Evaluation | None:
    """Refuse activation ints outside signed 64-bit and floats, which the engine would coerce."""
    stack: list[object] = list(activation.values())
    while stack:
        value = stack.pop()
        if isinstance(value, (bool, str)) or value is None:
            continue
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                return _failure("overflow", "activation integer outside signed 64-bit range")
        elif isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        else:
            return _failure("type_error", f"activation value of type {_cel_type(value)}")
    return None


def _check_result(result: object, kind: str) -> Evaluation:
    if kind == "bool":
        if isinstance(result, bool):
            return Evaluation(ok=True, value=result, error_code="", error="")
    elif isinstance(result, int) and not isinstance(result, bool):
        if not INT64_MIN <= result <= INT64_MAX:
            return _failure("overflow", "result outside signed 64-bit range")
        return Evaluation(ok=True, value=result, error_code="", error="")
    return _failure("type_error", f"result is {_cel_type(result)}, expected {kind}")


def _runtime_failure(text: str) -> Evaluation:
    undefined = _UNDEFINED_NAME.search(text)
    if undefined is not None:
        name = undefined.group(1)
        if name in VARIABLES:
            return _failure("missing_data", f"no such variable: {name}")
        # The engine reports a known function without a matching overload this way.
        return _failure("type_error", f"no matching overload for {_clip(name)}()")
    if "too large to fit" in text:
        return _failure("overflow", "integer conversion out of range")
    if text.startswith("Function 'int' error"):
        return _failure("evaluation_error", "int() of a string that is not an integer")
    return _failure("evaluation_error", "evaluation failed")


def _failure(code: str, message: str) -> Evaluation:
    return Evaluation(ok=False, value=None, error_code=code, error=message[:_MAX_ERROR_CHARS])


def _cel_type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "map"
    if value is None:
        return "null"
    if isinstance(value, float):
        return "double"
    return "unsupported"


def _quote(args: tuple[object, ...]) -> str:
    key = args[0] if args else "?"
    return _clip(str(key)) if isinstance(key, (str, int)) else "?"


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return _clip(lines[0] if lines else "", 160)
