import pytest

from aietl.shared.bounded import MAX_INTEGER_BITS, MAX_SEQUENCE_LENGTH, LimitExceeded, bounded_binop


@pytest.mark.parametrize(
    ("symbol", "left", "right", "expected"),
    [("+", 2, 3, 5), ("*", "ab", 3, "ababab"), ("*", 3, [1], [1, 1, 1]), ("**", 2, 10, 1024), ("%", 7, 3, 1)],
)
def test_ordinary_arithmetic_is_unchanged(symbol: str, left: object, right: object, expected: object) -> None:
    assert bounded_binop(symbol, left, right) == expected


@pytest.mark.parametrize(
    ("symbol", "left", "right"),
    [
        ("*", "x", MAX_SEQUENCE_LENGTH + 1),
        ("*", 10**12, "x"),
        ("**", 9, 9**9),
        ("**", 2, MAX_INTEGER_BITS + 1),
        ("*", 2**MAX_INTEGER_BITS, 2**8),
        ("%", "%999999999s", "x"),
    ],
)
def test_results_that_would_exhaust_memory_are_refused(symbol: str, left: object, right: object) -> None:
    with pytest.raises(LimitExceeded):
        bounded_binop(symbol, left, right)


def test_the_limits_are_inclusive() -> None:
    assert len(bounded_binop("*", "x", MAX_SEQUENCE_LENGTH)) == MAX_SEQUENCE_LENGTH
    assert bounded_binop("**", 3, MAX_INTEGER_BITS // 2) == 3 ** (MAX_INTEGER_BITS // 2)
