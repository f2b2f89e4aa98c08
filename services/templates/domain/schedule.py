"""When a scheduled pipeline runs: cron slots in a time zone, catch-up after downtime, retries.

Pure decisions over a clock value the caller passes in; the scheduler adapter (`scheduler.py`)
holds the leases, runs pipelines and stores the state these functions return. Cron expressions are
parsed and iterated by `cronsim` (standard five fields, day and month names, cron's own handling of
daylight-saving transitions); the `@hourly`-style macros of Vixie cron are accepted as the five-field
expressions they stand for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

CatchUp = Literal["skip", "run_once"]
Trigger = Literal["schedule", "manual", "drift"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_COUNTED_SLOTS = 10_000
"""Missed slots are counted up to this many (a per-minute schedule after a week away is 10,080)."""


class InvalidSchedule(ValueError):
    """A cron expression or time zone that cannot be scheduled; the message says which part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Cron:
    """A cron expression evaluated in an IANA time zone; slots are returned in UTC."""

    expression: str
    timezone: str = "UTC"

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Cron:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise InvalidSchedule("timezone", f"unknown time zone {timezone!r}") from error
        text = " ".join(expression.split())
        expanded = MACROS.get(text.lower(), text)
        if len(expanded.split(" ")) != 5:
            raise InvalidSchedule(
                "schedule",
                f"{expression!r} is not a cron expression: five fields (minute hour day-of-month month "
                f"day-of-week) or one of {', '.join(MACROS)}",
            )
        try:
            next(CronSim(expanded, datetime.now(zone)))
        except (CronSimError, StopIteration) as error:
            raise InvalidSchedule(
                "schedule", f"{expression!r} is not a valid cron expression: {error}"
            ) from error
        return cls(text, timezone)

    @property
    def _five_fields(self) -> str:
        return MACROS.get(self.expression.lower(), self.expression)

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after `moment` (an aware datetime), in UTC."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        return next(CronSim(self._five_fields, local)).astimezone(UTC)

    def slots_until(self, first: datetime, now: datetime) -> tuple[int, datetime | None]:
        """How many slots lie in [first, now] (counted up to MAX_COUNTED_SLOTS) and the latest one."""
        if first > now:
            return 0, None
        count, latest, slot = 1, first, first
        while count < MAX_COUNTED_SLOTS:
            slot = self.next_after(slot)
            if slot > now:
                return count, latest
            count, latest = count + 1, slot
        just_after = (now + timedelta(seconds=1)).astimezone(ZoneInfo(self.timezone))
        previous = next(CronSim(self._five_fields, just_after, reverse=True))  # the last slot <= now
        return count, max(latest, previous.astimezone(UTC))


@dataclass(frozen=True)
class Policy:
    """How a pipeline's schedule treats lateness and failure."""

    catch_up: CatchUp = "skip"
    grace_seconds: float = 300.0
    """A slot is on time while the clock is at most this far past it."""
    max_retries: int = 0
    retry_backoff_seconds: float = 60.0
    max_backoff_seconds: float = 3_600.0

    def retry_delay(self, attempt: int) -> timedelta:
        """Exponential backoff: the first retry after `retry_backoff_seconds`, doubling, capped."""
        seconds = self.retry_backoff_seconds * 2 ** max(attempt - 1, 0)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


@dataclass(frozen=True)
class Timing:
    """A pipeline's schedule as its owner set it; None fields take the service's defaults."""

    cron: Cron
    catch_up: CatchUp | None = None
    max_retries: int | None = None
    retry_backoff_seconds: float | None = None

    def policy(self, defaults: Policy) -> Policy:
        return replace(
            defaults,
            catch_up=self.catch_up or defaults.catch_up,
            max_retries=defaults.max_retries if self.max_retries is None else self.max_retries,
            retry_backoff_seconds=(
                defaults.retry_backoff_seconds
                if self.retry_backoff_seconds is None
                else self.retry_backoff_seconds
            ),
        )


@dataclass(frozen=True)
class State:
    """What the scheduler keeps per pipeline between ticks."""

    slot_at: datetime
    """The cron slot waiting to run (or, while retrying, the slot whose run failed)."""
    attempt: int = 0
    """Failed runs of `slot_at` so far."""
    retry_at: datetime | None = None
    requested_at: datetime | None = None
    """An out-of-schedule run asked for (a drift adapted the pipeline), due at once."""

    @property
    def due_at(self) -> datetime:
        due = self.retry_at if self.retry_at is not None else self.slot_at
        return min(due, self.requested_at) if self.requested_at is not None else due


@dataclass(frozen=True)
class Decision:
    """What to do with a due pipeline now."""

    trigger: Trigger | None
    """Run it with this trigger, or None: nothing runs this time."""
    scheduled_for: datetime | None
    """The slot the run belongs to (None for a requested run)."""
    missed: int
    """Slots given up (skipped, or folded into this one run)."""
    next_slot: datetime
    """The slot that waits once this decision is carried out."""
    state: State
    """The state if the run does not happen (skipped slots, or nothing was due)."""


def first_state(cron: Cron, now: datetime) -> State:
    return State(slot_at=cron.next_after(now))


def rescheduled(cron: Cron, previous: State | None, changed: bool, now: datetime) -> State:
    """The state after a pipeline's schedule is set: kept when the timing did not change."""
    if previous is None or changed:
        requested = previous.requested_at if previous is not None else None
        return replace(first_state(cron, now), requested_at=requested)
    return previous


def decide(cron: Cron, state: State, now: datetime, policy: Policy) -> Decision:
    """A requested run goes first; then a due retry of the failed slot while the next slot has not
    come; then the cron slots up to now: `run_once` runs once for all of them, `skip` runs only
    an on-time latest slot and gives up the others."""
    if state.requested_at is not None and state.requested_at <= now:
        return Decision("drift", None, 0, state.slot_at, state)
    slot_at = state.slot_at
    if state.retry_at is not None:
        following = cron.next_after(slot_at)
        if state.retry_at > now:
            return Decision(None, None, 0, slot_at, state)
        if now < following:
            return Decision("schedule", slot_at, 0, following, state)
        slot_at = following  # the retry window closed: the slots since then decide
    count, latest = cron.slots_until(slot_at, now)
    next_slot = cron.next_after(now)
    if latest is None:
        return Decision(None, None, 0, slot_at, state)
    on_time = now - latest <= timedelta(seconds=policy.grace_seconds)
    if policy.catch_up == "run_once" or on_time:
        return Decision("schedule", latest, count - 1, next_slot, State(slot_at=next_slot))
    return Decision(None, None, count, next_slot, State(slot_at=next_slot))


def after_run(decision: Decision, state: State, succeeded: bool, now: datetime, policy: Policy) -> State:
    """The state once the decided run ended: a requested run leaves the slot as it was; a failed
    scheduled run is retried with backoff while retries remain and the retry comes before the next
    slot (which supersedes it); anything else moves on to the next slot."""
    if decision.trigger == "drift":
        return replace(state, requested_at=None)
    if not succeeded and decision.scheduled_for is not None:
        attempt = (state.attempt if state.slot_at == decision.scheduled_for else 0) + 1
        retry_at = now + policy.retry_delay(attempt)
        if attempt <= policy.max_retries and retry_at < decision.next_slot:
            return State(slot_at=decision.scheduled_for, attempt=attempt, retry_at=retry_at)
    return State(slot_at=decision.next_slot)
