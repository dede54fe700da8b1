"""The gateway's admission: the limit, and the retry hint it gives a refused start (a place in line)."""

import asyncio
import time
from types import SimpleNamespace

import pytest
from temporalio.service import RPCError, RPCStatusCode

from gateway import admission
from gateway.admission import Admission, Overloaded


class Counts:
    """What the visibility count answers: the running orders (None: visibility is down)."""

    def __init__(self, running: int | None):
        self.running = running
        self.asked = 0

    async def count_workflows(self, query: str) -> SimpleNamespace:
        self.asked += 1
        self.query = query
        if self.running is None:
            raise RPCError("visibility is down", RPCStatusCode.UNAVAILABLE, b"")
        return SimpleNamespace(count=self.running)


async def refused(gate: Admission, order_id: str) -> float:
    with pytest.raises(Overloaded) as err:
        await gate.admit(order_id)
    assert f"try again in {err.value.retry_after:.1f}s" in str(err.value)
    return err.value.retry_after


async def test_refused_starts_are_told_their_turn_in_the_order_they_were_first_refused():
    counts = Counts(running=0)
    gate = Admission(counts, limit=4)  # type: ignore[arg-type]
    for n in range(4):
        await gate.admit(f"o-{n}")  # four admitted within the rate window: 0.8 an s, a turn every 1.25 s

    first, second, third = [await refused(gate, f"w-{n}") for n in range(3)]
    assert (first, second, third) == pytest.approx((1.25, 2.5, 3.75))
    # Asking again early keeps one's place, and those behind keep theirs.
    assert await refused(gate, "w-1") == pytest.approx(2.5)
    assert await refused(gate, "w-0") == pytest.approx(1.25)

    # The first in line is admitted once there is room; the rest move up.
    counts.running = 0
    gate.counted_at = float("-inf")
    gate.starts.clear()
    await gate.admit("w-0")
    for n in range(3):
        await gate.admit(f"x-{n}")  # the limit is full again
    assert await refused(gate, "w-2") == pytest.approx(2 * admission.RATE_WINDOW_SECONDS / 8)
    assert "w-0" not in gate.waiting


async def test_the_hint_stays_within_its_bounds_and_a_client_that_gave_up_leaves_the_line():
    gate = Admission(Counts(running=1), limit=1)  # type: ignore[arg-type]
    # Nothing admitted lately: no rate to go by, so the hint is 1 s (the README's promise, as are the bounds below).
    assert await refused(gate, "a") == 1.0

    gate.admitted = {f"o-{n}": time.monotonic() for n in range(1000)}
    assert await refused(gate, "a") == 0.2
    gate.admitted = {"o": time.monotonic()}
    assert await refused(gate, "b") == 5.0

    gate.waiting["a"] = time.monotonic() - admission.GAVE_UP_SECONDS - 1
    gate.pruned_at = float("-inf")
    await refused(gate, "c")
    assert list(gate.waiting) == ["b", "c"]


async def test_only_the_admissions_of_the_last_rate_window_set_the_pace():
    gate = Admission(Counts(running=1), limit=1)  # type: ignore[arg-type]
    now = time.monotonic()
    gate.admitted = {"long-ago": now - admission.RATE_WINDOW_SECONDS - 1, "lately": now}
    # One admission in the window: a turn every RATE_WINDOW_SECONDS, clamped to the longest wait.
    assert await refused(gate, "a") == min(admission.RATE_WINDOW_SECONDS, admission.MAX_RETRY_SECONDS)
    gate.admitted = {"long-ago": now - admission.RATE_WINDOW_SECONDS - 1}
    assert await refused(gate, "a") == admission.DEFAULT_RETRY_SECONDS


async def test_a_full_line_turns_newcomers_away_with_the_longest_wait(monkeypatch):
    monkeypatch.setattr(admission, "MAX_WAITING", 3)
    gate = Admission(Counts(running=1), limit=1)  # type: ignore[arg-type]
    gate.admitted = {"o": time.monotonic()}
    for n in range(3):
        await refused(gate, f"w-{n}")
    assert await refused(gate, "newcomer") == admission.MAX_RETRY_SECONDS
    assert list(gate.waiting) == ["w-0", "w-1", "w-2"]


async def test_an_order_admitted_before_is_let_through_when_the_limit_is_full():
    counts = Counts(running=0)
    gate = Admission(counts, limit=1)  # type: ignore[arg-type]
    await gate.admit("o-1")
    counts.running = 5
    gate.counted_at = float("-inf")  # the next start counts again, and finds the limit full
    await gate.admit("o-1")  # its start, retried, finds the order it started
    await refused(gate, "o-2")


async def test_starts_that_visibility_already_shows_are_not_counted_twice():
    counts = Counts(running=0)
    gate = Admission(counts, limit=2)  # type: ignore[arg-type]
    await gate.admit("a")
    await gate.admit("b")
    await refused(gate, "c")  # two starts, not yet in a count: the limit is full
    # A count taken after both starts showed in visibility: they are in it, and no longer added on top.
    counts.running = 1  # one of them has already ended
    gate.starts = type(gate.starts)(t - 1.0 for t in gate.starts)
    gate.counted_at = float("-inf")
    await gate.admit("c")


async def test_starts_close_together_share_one_count():
    counts = Counts(running=0)
    gate = Admission(counts, limit=100)  # type: ignore[arg-type]
    for n in range(5):
        await gate.admit(f"o-{n}")
    assert counts.asked == 1


async def test_it_counts_the_running_orders_of_the_order_workflow():
    counts = Counts(running=0)
    await Admission(counts, limit=1).admit("o-1")  # type: ignore[arg-type]
    assert counts.query == "WorkflowType='OrderWorkflow' AND ExecutionStatus='Running'"


async def test_while_temporal_cannot_count_the_last_count_stands():
    counts = Counts(running=None)
    gate = Admission(counts, limit=1)  # type: ignore[arg-type]
    await gate.admit("o-1")  # never counted: nothing is known to run
    counts.running = 1
    gate.counted_at = float("-inf")
    await refused(gate, "o-2")
    counts.running = None  # down again: the count of one stands
    gate.counted_at = float("-inf")
    await refused(gate, "o-3")


async def test_one_count_at_a_time_even_when_starts_outpace_it():
    counts = Counts(running=0)
    gate = Admission(counts, limit=100)  # type: ignore[arg-type]
    await gate.admit("o-0")
    release = asyncio.Event()

    async def slow_count(query: str) -> SimpleNamespace:
        counts.asked += 1
        await release.wait()
        return SimpleNamespace(count=0)

    counts.count_workflows = slow_count  # type: ignore[method-assign]
    gate.counted_at = time.monotonic() - admission.REFRESH_SECONDS - 0.01  # due again, not yet stale
    await gate.admit("o-1")
    await gate.admit("o-2")  # the count started for o-1 is still running: no second one
    release.set()
    await asyncio.sleep(0)
    assert counts.asked == 2


async def test_an_admission_is_remembered_for_a_minute():
    gate = Admission(Counts(running=0), limit=100)  # type: ignore[arg-type]
    gate.admitted = {"long-ago": time.monotonic() - 61, "lately": time.monotonic() - 59}
    await gate.admit("o-1")
    assert list(gate.admitted) == ["lately", "o-1"]
