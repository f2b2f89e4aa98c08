"""On-demand features: computed at read time from other features and request data.

Two ways to define one, neither of which evaluates a string as Python:
- a declarative expression (`"amount / (avg_amount_30d + 1)"`), parsed with `ast` and interpreted by a
  small walker that knows only arithmetic, comparisons, boolean logic, `x if c else y` and a whitelist
  of functions;
- a Python function registered in code with `@transform("name")`, referenced by name from the API.

A missing input makes the result None (SQL-like), except inside `coalesce`.

Expressions are written by project members and evaluated per entity on every read, so each is
bounded: length, node count and nesting depth when registered (constant parts are evaluated then,
so `9 ** 9 ** 9` is refused at once); at read time integers, text and `round` digits are bounded
(`LimitExceeded`), and a read's evaluations share a time budget (`Budget`). A refusal is a
`FeatureError` naming the limit (a 422), never a frozen process.
"""

from __future__ import annotations

import ast
import math
import operator
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aietl.services.features.domain import FeatureError
from aietl.shared.bounded import LimitExceeded, bounded_binop

Transform = Callable[[Mapping[str, Any]], Mapping[str, Any]]
_TRANSFORMS: dict[str, Transform] = {}


def transform(name: str) -> Callable[[Transform], Transform]:
    """Register a Python on-demand transform: `inputs -> {output_name: value}`."""

    def register(function: Transform) -> Transform:
        _TRANSFORMS[name] = function
        return function

    return register


def registered_transform(name: str) -> Transform:
    try:
        return _TRANSFORMS[name]
    except KeyError:
        known = ", ".join(sorted(_TRANSFORMS)) or "none"
        raise FeatureError(f"no transform {name!r} is registered in code (known: {known})") from None


def _coalesce(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _round(value: Any, digits: Any = None) -> Any:
    """`round`, with the digits bounded: `round(1, -10**9)` would compute 10**(10**9)."""
    if digits is not None and isinstance(digits, int) and abs(digits) > MAX_ROUND_DIGITS:
        raise LimitExceeded(f"round to more than {MAX_ROUND_DIGITS} digits")
    return round(value, digits)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": _round,
    "sqrt": math.sqrt,
    "log": math.log,
    "log1p": math.log1p,
    "exp": math.exp,
    "float": float,
    "int": int,
    "len": len,
    "coalesce": _coalesce,
}
_NULL_TOLERANT = {"coalesce"}
_BINARY: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
}
MAX_EXPRESSION_LENGTH = 2_000
MAX_NODES = 128
MAX_DEPTH = 24
MAX_TEXT_LENGTH = 10_000  # characters of any text an expression builds
MAX_ROUND_DIGITS = 64
READ_SECONDS = 2.0  # CPU time the on-demand features of one read may take together
CHECK_EVERY = 256  # nodes evaluated between two looks at the clock


@dataclass
class Budget:
    """The time the evaluations of one read may take together; shared by all of its expressions."""

    seconds: float = READ_SECONDS
    deadline: float = field(init=False)
    visits: int = 0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def spend(self) -> None:
        self.visits += 1
        if self.visits % CHECK_EVERY == 0 and time.monotonic() > self.deadline:
            raise FeatureError(
                f"on-demand features took more than {self.seconds:g}s for this read: ask for fewer entities"
            )


@dataclass(frozen=True)
class Expression:
    """A checked expression, the names it reads (its lineage) and its size in nodes (its cost)."""

    source: str
    tree: ast.Expression
    names: frozenset[str]
    nodes: int = 1

    def evaluate(self, scope: Mapping[str, Any], budget: Budget | None = None) -> Any:
        """The value; None when an input is missing or the arithmetic has no answer (division by zero,
        log of a negative). Raises FeatureError when a limit is exceeded."""
        try:
            return _Evaluator(scope, budget or Budget()).visit(self.tree.body)
        except FeatureError:
            raise  # the read's time budget is spent
        except LimitExceeded as error:
            raise FeatureError(f"expression {_short(self.source)} exceeds a limit: {error}") from None
        except (ArithmeticError, ValueError, TypeError):
            return None  # e.g. division by zero, log of a negative: no value, not a failed read


def _short(source: str) -> str:
    return repr(source if len(source) <= 80 else source[:77] + "...")


def _shape(tree: ast.AST) -> tuple[int, int]:
    """(expression nodes, nesting depth), walked without recursion."""
    count, deepest, pending = 0, 0, [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, ast.expr):
            count, depth = count + 1, depth + 1
            deepest = max(deepest, depth)
        pending.extend((child, depth) for child in ast.iter_child_nodes(node))
    return count, deepest


def _check_constant_parts(source: str, tree: ast.Expression) -> None:
    """Evaluate every part that reads no input now: a bomb in it is refused at registration."""
    for node in ast.walk(tree.body):
        if isinstance(node, ast.Constant | ast.Name) or not isinstance(node, ast.expr):
            continue
        reads = any(isinstance(inner, ast.Name) and inner.id not in FUNCTIONS for inner in ast.walk(node))
        if not reads:
            try:
                _Evaluator({}, Budget()).visit(node)
            except LimitExceeded as error:
                raise FeatureError(f"expression {_short(source)} exceeds a limit: {error}") from None
            except (ArithmeticError, ValueError, TypeError):
                pass  # no value at read time either (e.g. 1/0): not a resource problem


def compile_expression(source: str) -> Expression:
    """Parse and validate: anything outside the whitelist or the size limits is rejected, named."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise FeatureError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        raise FeatureError(f"expression {_short(source)} is not valid: {error.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise FeatureError(f"expression {_short(source)} is nested too deeply") from None
    nodes, depth = _shape(tree)
    if nodes > MAX_NODES:
        raise FeatureError(f"expression {_short(source)} has more than {MAX_NODES} parts")
    if depth > MAX_DEPTH:
        raise FeatureError(f"expression {_short(source)} is nested deeper than {MAX_DEPTH} levels")
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                raise FeatureError(
                    f"expression {source!r} may only call {', '.join(sorted(FUNCTIONS))} positionally"
                )
        elif isinstance(node, ast.Name):
            if node.id not in FUNCTIONS:
                names.add(node.id)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float | str | bool | type(None)):
                raise FeatureError(f"expression {source!r} has an unsupported constant")
        elif not isinstance(node, _ALLOWED_NODES):
            raise FeatureError(f"expression {source!r} uses a forbidden construct: {type(node).__name__}")
    _check_constant_parts(source, tree)
    return Expression(source, tree, frozenset(names), nodes)


_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Load,
    ast.And,
    ast.Or,
    *_BINARY,
    *_COMPARE,
    *_UNARY,
)


class _Missing(Exception):
    """An input is None: the expression's result is None."""


def _text_limit(symbol: str, left: Any, right: Any) -> None:
    """Text an expression builds stays short: features are values, not documents."""
    if symbol == "+" and isinstance(left, str) and isinstance(right, str):
        length = len(left) + len(right)
    elif symbol == "*" and isinstance(left, str) and isinstance(right, int):
        length = len(left) * right
    elif symbol == "*" and isinstance(right, str) and isinstance(left, int):
        length = len(right) * left
    else:
        return
    if length > MAX_TEXT_LENGTH:
        raise LimitExceeded(f"a text longer than {MAX_TEXT_LENGTH} characters")


class _Evaluator:
    def __init__(self, scope: Mapping[str, Any], budget: Budget) -> None:
        self.scope = scope
        self.budget = budget

    def visit(self, node: ast.AST) -> Any:
        try:
            return self._visit(node)
        except _Missing:
            return None

    def _strict(self, node: ast.AST) -> Any:
        value = self._visit(node)
        if value is None:
            raise _Missing
        return value

    def _visit(self, node: ast.AST) -> Any:
        self.budget.spend()
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id=name):
                return self.scope.get(name)
            case ast.BinOp(left=left, op=op, right=right):
                symbol, a, b = _BINARY[type(op)], self._strict(left), self._strict(right)
                _text_limit(symbol, a, b)
                return bounded_binop(symbol, a, b)
            case ast.UnaryOp(op=op, operand=operand):
                return _UNARY[type(op)](self._strict(operand))
            case ast.BoolOp(op=op, values=values):
                result = None
                for item in values:
                    result = self._strict(item)
                    if isinstance(op, ast.And) != bool(result):
                        return result
                return result
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                current = self._strict(left)
                for comparison, comparator in zip(ops, comparators, strict=True):
                    following = self._strict(comparator)
                    if not _COMPARE[type(comparison)](current, following):
                        return False
                    current = following
                return True
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return self._visit(body) if self._strict(test) else self._visit(orelse)
            case ast.Call(func=ast.Name(id=name), args=args):
                if name in _NULL_TOLERANT:
                    return FUNCTIONS[name](*(self._visit(arg) for arg in args))
                return FUNCTIONS[name](*(self._strict(arg) for arg in args))
        raise FeatureError(f"unsupported expression node {type(node).__name__}")
