"""Arithmetic that expressions written by users may run without exhausting memory or CPU.

Templates (Jinja2) and on-demand feature expressions both evaluate user-written operators;
`'x' * 10**12`, `9 ** 9 ** 9` or `'%999999999s' % x` would each take the process down.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

MAX_SEQUENCE_LENGTH = 1_000_000
MAX_INTEGER_BITS = 4_096

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}


class LimitExceeded(ValueError):
    """The result would be larger than an expression may produce."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bits(value: int) -> int:
    return max(abs(value).bit_length(), 1)


def bounded_binop(symbol: str, left: Any, right: Any) -> Any:
    """`left <symbol> right`, refused with `LimitExceeded` when the result would be too large."""
    if symbol == "+" and isinstance(left, str | bytes | list | tuple) and isinstance(right, type(left)):
        if len(left) + len(right) > MAX_SEQUENCE_LENGTH:
            raise LimitExceeded(f"a sequence longer than {MAX_SEQUENCE_LENGTH} items")
    elif symbol == "*":
        for sequence, count in ((left, right), (right, left)):
            repeated = isinstance(sequence, str | bytes | list | tuple) and _is_int(count)
            if repeated and len(sequence) * count > MAX_SEQUENCE_LENGTH:
                raise LimitExceeded(f"a repeated sequence longer than {MAX_SEQUENCE_LENGTH} items")
        if _is_int(left) and _is_int(right) and _bits(left) + _bits(right) > MAX_INTEGER_BITS:
            raise LimitExceeded(f"an integer larger than {MAX_INTEGER_BITS} bits")
    elif symbol == "**":
        if _is_int(left) and _is_int(right) and right > 0 and _bits(left) * right > MAX_INTEGER_BITS:
            raise LimitExceeded(f"an integer larger than {MAX_INTEGER_BITS} bits")
    elif symbol == "%" and isinstance(left, str | bytes):
        raise LimitExceeded("printf-style string formatting")
    return OPERATORS[symbol](left, right)
