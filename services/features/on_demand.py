"""On-demand features: computed at read time from other features and request data.

Two ways to define one, neither of which evaluates a string as Python:
- a declarative expression (`"amount / (avg_amount_30d + 1)"`), parsed with `ast` and interpreted by a
  small walker that knows only arithmetic, comparisons, boolean logic, `x if c else y` and a whitelist
  of functions;
- a Python function registered in code with `@transform("name")`, referenced by name from the API.

A missing input makes the result None (SQL-like), except inside `coalesce`.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.features.domain import FeatureError
from shared.bounded import bounded_binop

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


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
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


@dataclass(frozen=True)
class Expression:
    """A checked expression and the names it reads (its lineage)."""

    source: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        try:
            return _Evaluator(scope).visit(self.tree.body)
        except (ArithmeticError, ValueError, TypeError):
            return None  # e.g. division by zero, log of a negative: no value, not a failed read


def compile_expression(source: str) -> Expression:
    """Parse and validate: anything outside the whitelist is rejected with the construct named."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise FeatureError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        raise FeatureError(f"expression {source!r} is not valid: {error.msg}") from None
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
    return Expression(source, tree, frozenset(names))


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


class _Evaluator:
    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope

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
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id=name):
                return self.scope.get(name)
            case ast.BinOp(left=left, op=op, right=right):
                return bounded_binop(_BINARY[type(op)], self._strict(left), self._strict(right))
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
                for op, comparator in zip(ops, comparators, strict=True):
                    following = self._strict(comparator)
                    if not _COMPARE[type(op)](current, following):
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
