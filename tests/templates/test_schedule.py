"""The scheduler's pure core: cron slots in a time zone, catch-up after downtime, retries with backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aietl.services.templates.domain.schedule import (
    Cron,
    InvalidSchedule,
    Policy,
    State,
    after_run,
    decide,
    first_state,
    rescheduled,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


HOURLY = Cron.parse("0 * * * *")


def test_cron_slots_are_utc_and_follow_the_time_zone_through_daylight_saving() -> None:
    berlin = Cron.parse("30 2 * * *", "Europe/Berlin")
    # 2026-03-29: 02:30 does not exist in Berlin; cron runs at 03:00 local (01:00 UTC)
    assert berlin.next_after(at("2026-03-28T12:00:00")) == at("2026-03-29T01:00:00")
    assert berlin.next_after(at("2026-03-29T01:00:00")) == at("2026-03-30T00:30:00")
    assert Cron.parse("@daily").next_after(at("2026-01-01T00:00:00")) == at("2026-01-02T00:00:00")
    assert Cron.parse("  */15   *  * * mon-fri ").next_after(at("2026-01-02T23:50:00")) == at(
        "2026-01-05T00:00:00"
    )  # Friday night to Monday


@pytest.mark.parametrize(
    ("expression", "timezone", "field"),
    [
        ("61 * * * *", "UTC", "schedule"),
        ("* * * *", "UTC", "schedule"),
        ("*/5 * * * * *", "UTC", "schedule"),
        ("@sometimes", "UTC", "schedule"),
        ("0 0 31 2 *", "UTC", "schedule"),
        ("0 * * * *", "Mars/Olympus", "timezone"),
    ],
)
def test_invalid_schedules_name_the_field(expression: str, timezone: str, field: str) -> None:
    with pytest.raises(InvalidSchedule) as error:
        Cron.parse(expression, timezone)
    assert error.value.field == field


def test_an_on_time_slot_runs_and_the_next_one_waits() -> None:
    state = first_state(HOURLY, at("2026-01-01T09:59:00"))
    assert state.slot_at == at("2026-01-01T10:00:00") == state.due_at
    early = decide(HOURLY, state, at("2026-01-01T09:59:59"), Policy())
    assert early.trigger is None and early.state == state
    decision = decide(HOURLY, state, at("2026-01-01T10:00:02"), Policy())
    assert (decision.trigger, decision.scheduled_for, decision.missed) == ("schedule", state.slot_at, 0)
    assert after_run(decision, state, True, at("2026-01-01T10:03:00"), Policy()) == State(
        slot_at=at("2026-01-01T11:00:00")
    )


def test_catch_up_skip_gives_up_missed_slots_but_runs_an_on_time_one() -> None:
    state = State(slot_at=at("2026-01-01T10:00:00"))
    policy = Policy(catch_up="skip", grace_seconds=300)
    late = decide(HOURLY, state, at("2026-01-01T13:30:00"), policy)  # down from 10:00 to 13:30
    assert (late.trigger, late.missed, late.next_slot) == (None, 4, at("2026-01-01T14:00:00"))
    assert late.state == State(slot_at=at("2026-01-01T14:00:00"))
    back_in_time = decide(HOURLY, state, at("2026-01-01T13:02:00"), policy)  # 13:00 still on time
    assert (back_in_time.trigger, back_in_time.scheduled_for, back_in_time.missed) == (
        "schedule",
        at("2026-01-01T13:00:00"),
        3,
    )


def test_catch_up_run_once_folds_every_missed_slot_into_one_run() -> None:
    state = State(slot_at=at("2026-01-01T10:00:00"))
    decision = decide(HOURLY, state, at("2026-01-02T10:30:00"), Policy(catch_up="run_once"))
    assert (decision.trigger, decision.scheduled_for, decision.missed) == (
        "schedule",
        at("2026-01-02T10:00:00"),
        24,
    )
    assert after_run(decision, state, True, at("2026-01-02T10:31:00"), Policy()).slot_at == at(
        "2026-01-02T11:00:00"
    )


def test_missed_slots_are_counted_up_to_a_bound_after_long_downtime() -> None:
    every_minute = Cron.parse("* * * * *")
    state = State(slot_at=at("2026-01-01T00:00:00"))
    decision = decide(every_minute, state, at("2026-02-01T00:00:30"), Policy(catch_up="run_once"))
    assert decision.scheduled_for == at("2026-02-01T00:00:00")
    assert decision.missed == 9_999 and decision.next_slot == at("2026-02-01T00:01:00")


def test_failed_runs_retry_with_exponential_backoff_until_the_next_slot_supersedes() -> None:
    policy = Policy(max_retries=3, retry_backoff_seconds=60)
    state = State(slot_at=at("2026-01-01T10:00:00"))
    first = decide(HOURLY, state, at("2026-01-01T10:00:00"), policy)
    state = after_run(first, state, False, at("2026-01-01T10:01:00"), policy)
    assert state == State(slot_at=at("2026-01-01T10:00:00"), attempt=1, retry_at=at("2026-01-01T10:02:00"))
    assert decide(HOURLY, state, at("2026-01-01T10:01:30"), policy).trigger is None
    retry = decide(HOURLY, state, at("2026-01-01T10:02:00"), policy)
    assert (retry.trigger, retry.scheduled_for) == ("schedule", at("2026-01-01T10:00:00"))
    state = after_run(retry, state, False, at("2026-01-01T10:03:00"), policy)
    assert (state.attempt, state.retry_at) == (2, at("2026-01-01T10:05:00"))  # 2 minutes: doubled
    retry = decide(HOURLY, state, at("2026-01-01T10:05:00"), policy)
    assert after_run(retry, state, True, at("2026-01-01T10:06:00"), policy) == State(
        slot_at=at("2026-01-01T11:00:00")
    )
    # retries exhausted, or a retry that would come after the next slot: the next slot runs instead
    exhausted = State(slot_at=at("2026-01-01T10:00:00"), attempt=3, retry_at=at("2026-01-01T10:20:00"))
    retry = decide(HOURLY, exhausted, at("2026-01-01T10:20:00"), policy)
    assert after_run(retry, exhausted, False, at("2026-01-01T10:21:00"), policy).retry_at is None
    slow = Policy(max_retries=3, retry_backoff_seconds=3_000)
    failed = decide(HOURLY, State(slot_at=at("2026-01-01T10:00:00")), at("2026-01-01T10:00:00"), slow)
    assert after_run(
        failed, State(slot_at=at("2026-01-01T10:00:00")), False, at("2026-01-01T10:20:00"), slow
    ) == (State(slot_at=at("2026-01-01T11:00:00")))


def test_a_retry_whose_window_closed_during_downtime_leaves_it_to_the_catch_up_policy() -> None:
    state = State(slot_at=at("2026-01-01T10:00:00"), attempt=1, retry_at=at("2026-01-01T10:02:00"))
    decision = decide(HOURLY, state, at("2026-01-01T12:30:00"), Policy(catch_up="skip"))
    assert (decision.trigger, decision.missed, decision.next_slot) == (None, 2, at("2026-01-01T13:00:00"))
    decision = decide(HOURLY, state, at("2026-01-01T12:30:00"), Policy(catch_up="run_once"))
    assert (decision.trigger, decision.scheduled_for) == ("schedule", at("2026-01-01T12:00:00"))


def test_a_requested_drift_run_goes_first_and_leaves_the_slot_alone() -> None:
    state = State(slot_at=at("2026-01-01T11:00:00"), requested_at=at("2026-01-01T10:20:00"))
    assert state.due_at == at("2026-01-01T10:20:00")
    decision = decide(HOURLY, state, at("2026-01-01T10:20:01"), Policy())
    assert (decision.trigger, decision.scheduled_for) == ("drift", None)
    after = after_run(decision, state, False, at("2026-01-01T10:21:00"), Policy(max_retries=5))
    assert after == State(slot_at=at("2026-01-01T11:00:00"))


def test_rescheduling_keeps_the_state_unless_the_timing_changed() -> None:
    state = State(slot_at=at("2026-01-01T11:00:00"), attempt=1, retry_at=at("2026-01-01T10:30:00"))
    now = at("2026-01-01T10:10:00")
    assert rescheduled(HOURLY, state, False, now) is state
    daily = Cron.parse("0 6 * * *", "America/New_York")
    assert rescheduled(daily, state, True, now) == State(slot_at=at("2026-01-01T11:00:00"))  # 06:00 EST
    assert rescheduled(HOURLY, None, False, now) == State(slot_at=at("2026-01-01T11:00:00"))


def test_retry_delay_is_capped() -> None:
    policy = Policy(retry_backoff_seconds=600, max_backoff_seconds=1_800)
    assert [policy.retry_delay(n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=s) for s in (600, 1200, 1800, 1800)
    ]
