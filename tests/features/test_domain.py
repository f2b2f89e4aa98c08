"""Pure rules: references, types, the online codec and TTL, safe expressions."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from aietl.services.features.domain import (
    FeatureError,
    FeatureRef,
    FeatureSpec,
    FeatureType,
    check_value,
    decode_online,
    encode_online,
    from_us,
    latest_at,
    online_status,
    parse_ref,
    to_us,
)
from aietl.services.features.on_demand import Budget, compile_expression, registered_transform, transform


def spec(feature_type: FeatureType) -> FeatureSpec:
    return FeatureSpec("f", 1, feature_type, "user", "user", "both", 60)


def test_references_parse_name_and_version() -> None:
    assert parse_ref("spend_7d") == FeatureRef("spend_7d", None)
    assert parse_ref("spend_7d@v3") == FeatureRef("spend_7d", 3)
    for bad in ("", "7days", "a@v0", "a@3", "a b", "a:b"):
        with pytest.raises(FeatureError):
            parse_ref(bad)


def test_values_are_checked_against_the_feature_type() -> None:
    assert check_value(spec(FeatureType.FLOAT64), 3) == 3.0
    assert check_value(spec(FeatureType.INT64_LIST), [1, 2]) == [1, 2]
    assert check_value(spec(FeatureType.STRING), None) is None
    for feature_type, value in (
        (FeatureType.INT64, 1.5),
        (FeatureType.INT64, True),
        (FeatureType.BOOL, 1),
        (FeatureType.STRING, 3),
        (FeatureType.FLOAT64_LIST, [1.0, "x"]),
    ):
        with pytest.raises(FeatureError, match="f@v1"):
            check_value(spec(feature_type), value)


def test_microsecond_times_round_trip() -> None:
    moment = datetime(2026, 11, 25, 12, 30, 1, 123456, tzinfo=UTC)
    assert from_us(to_us(moment)) == moment
    with pytest.raises(FeatureError):
        to_us(datetime(2026, 1, 1))


def test_online_codec_and_ttl_edge() -> None:
    raw = encode_online(1_000_000, {"a": [1, 2]})
    assert decode_online(raw) == (1_000_000, {"a": [1, 2]})
    assert online_status(raw, 1_000_000 + 60_000_000, 60_000_000) == ({"a": [1, 2]}, "present")
    assert online_status(raw, 1_000_000 + 60_000_001, 60_000_000) == (None, "expired")
    assert online_status(None, 0, 1) == (None, "missing")
    # time prefix orders like time, so a script can compare without decoding
    assert encode_online(99, 1) < encode_online(100, 0)


def test_oracle_takes_latest_at_or_before_within_ttl_last_write_wins() -> None:
    history = [(10, 1, "a"), (10, 2, "b"), (20, 3, "c")]
    assert latest_at(history, 9, 100) is None
    assert latest_at(history, 10, 100) == "b"
    assert latest_at(history, 25, 5) == "c"
    assert latest_at(history, 26, 5) is None


def test_expressions_compute_with_null_semantics() -> None:
    expression = compile_expression("amount / (avg_amount + 1) if avg_amount >= 0 else -1")
    assert expression.names == {"amount", "avg_amount"}
    assert expression.evaluate({"amount": 10, "avg_amount": 4}) == 2
    assert expression.evaluate({"amount": 10, "avg_amount": None}) is None
    assert compile_expression("coalesce(x, 0) + 1").evaluate({}) == 1
    assert compile_expression("log(x)").evaluate({"x": -1}) is None
    assert compile_expression("1 < x <= 3 and not y").evaluate({"x": 2, "y": False}) is True
    assert compile_expression("max(a, b) * 2").evaluate({"a": 1, "b": 5}) == 10


@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('true')",
        "x.__class__",
        "open('/etc/passwd')",
        "[x for x in y]",
        "lambda: 1",
        "x[0]",
        "(1).real",
        "max(a, key=b)",
        "x := 1",
    ],
)
def test_expressions_reject_anything_outside_the_whitelist(source: str) -> None:
    with pytest.raises(FeatureError):
        compile_expression(source)


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("10 ** 100000", "integer larger than"),  # constant parts are computed at registration
        ("9 ** 9 ** 9", "integer larger than"),
        ("x + round(1, -10 ** 9)", "round to more than"),
        ("'ab' * 6000", "text longer than"),
        ("len('x' * 9000 + 'y' * 9000)", "text longer than"),
        ("+".join(["x"] * 200), "more than 128 parts"),
        ("-" * 60 + "x", "deeper than 24 levels"),
        ("(" * 30 + "x" + " * 2)" * 30, "deeper than 24 levels"),
        ("(" * 300 + "x" + ")" * 300, "not valid"),
    ],
)
def test_expression_bombs_are_refused_at_registration(source: str, named: str) -> None:
    started = time.perf_counter()
    with pytest.raises(FeatureError, match=named):
        compile_expression(source)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("source", "scope", "named"),
    [
        ("amount ** 99999999", {"amount": 10}, "integer larger than"),
        ("text * times", {"text": "ab", "times": 10**9}, "text longer than"),
        ("round(x, digits)", {"x": 1, "digits": -(10**9)}, "round to more than"),
    ],
)
def test_expression_bombs_in_the_data_are_refused_at_read(source: str, scope: dict, named: str) -> None:
    expression = compile_expression(source)
    started = time.perf_counter()
    with pytest.raises(FeatureError, match=named):
        expression.evaluate(scope)
    assert time.perf_counter() - started < 0.5


def test_a_read_shares_one_time_budget() -> None:
    """However many entities, the expressions of one read stop when its budget is spent."""
    expression = compile_expression(" + ".join(["x * 2"] * 20))
    budget = Budget(seconds=0.05)
    started = time.perf_counter()
    with pytest.raises(FeatureError, match="took more than"):
        for _ in range(1_000_000):
            expression.evaluate({"x": 1}, budget)
    assert time.perf_counter() - started < 0.5


def test_python_transforms_are_registered_by_name() -> None:
    @transform("test_ratio")
    def ratio(inputs):
        return {"ratio": inputs["a"] / inputs["b"]}

    assert registered_transform("test_ratio")({"a": 1, "b": 4}) == {"ratio": 0.25}
    with pytest.raises(FeatureError, match="no transform"):
        registered_transform("nope")
