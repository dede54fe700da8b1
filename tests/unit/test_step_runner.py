"""The step runner (common.step_runner.run_step) on its own, in the time-skipping environment: a step is bounded by its
own schedule-to-close, with no timer of the workflow's; a stopped step starts no new attempt, cancels the one in
flight, and returns only once that attempt can no longer act (its start-to-close later, by the workflow's own
clock). A deadline (common.step_runner.Deadline) is one timer."""

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ActivityError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from common.step_runner import Deadline, StepTiming, Stopped, attempt_options, run_step, wait_until
from tests.unit.fakes import HEARTBEAT_THROTTLE
from tests.unit.fakes import hang as hang_until_cut

TIMING = StepTiming()


@dataclass
class Outcome:
    raised: str
    stop_to_raise_seconds: float
    raised_at_seconds: float


class Steps:
    """The step the probe runs, as the services declare theirs: a method (run_step takes an activity method)."""

    @activity.defn(name="Hang")
    async def hang(self, n: int) -> None:
        await hang_until_cut()


@workflow.defn(name="StepProbe", sandboxed=False)
class StepProbe:
    def __init__(self) -> None:
        self.stopped_at: float | None = None

    @workflow.run
    async def run(self, wait_past_deadline: bool) -> Outcome:
        start = workflow.now()
        until = start + timedelta(seconds=5)
        if wait_past_deadline:
            await workflow.sleep(6)
        try:
            await run_step("Hang", Steps.hang, 1, until, TIMING, stop=lambda: self.stopped_at is not None)
        except (ActivityError, Stopped) as err:
            raised_at = (workflow.now() - start).total_seconds()
            stopped_for = raised_at - self.stopped_at if self.stopped_at is not None else 0.0
            # Long enough for the server to retry an attempt that was not cancelled.
            await workflow.sleep(2)
            return Outcome(type(err).__name__, stopped_for, raised_at)
        return Outcome("", 0.0, 0.0)

    @workflow.signal
    def stop(self) -> None:
        self.stopped_at = (workflow.now() - workflow.info().start_time).total_seconds()


async def run_probe(env, wait_past_deadline: bool, stop_after: float | None) -> tuple[Outcome, int, int, int]:
    """The outcome, the attempts the worker ran, the activities the workflow scheduled and the timers it started."""
    attempts = 0

    @activity.defn(name="Hang")
    async def counted_hang(n: int) -> None:
        nonlocal attempts
        attempts += 1
        await hang_until_cut()

    queue = f"steps-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[StepProbe],
        activities=[counted_hang],
        workflow_runner=UnsandboxedWorkflowRunner(),
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    ):
        handle = await env.client.start_workflow(StepProbe.run, wait_past_deadline, id=queue, task_queue=queue)
        if stop_after is not None:
            while not attempts:
                await asyncio.sleep(0.01)
            await asyncio.sleep(stop_after)
            await handle.signal(StepProbe.stop)
        outcome = await handle.result()
        history = await handle.fetch_history()
    scheduled = sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in history.events)
    timers = sum(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)
    return outcome, attempts, scheduled, timers


async def test_a_step_is_bounded_by_its_schedule_to_close_and_starts_no_timer(env):
    outcome, attempts, scheduled, timers = await run_probe(env, wait_past_deadline=False, stop_after=None)
    assert (outcome.raised, scheduled) == ("ActivityError", 1)
    assert 5 <= outcome.raised_at_seconds < 5 + TIMING.attempt_timeout_seconds, "it failed at its deadline"
    assert attempts > 1, "attempts were retried until the deadline"
    assert timers == 1, "only the probe's own sleep after the step: the step's wait needs no timer"


async def test_a_step_whose_deadline_has_passed_gets_the_smallest_slice(env):
    outcome, _, scheduled, _ = await run_probe(env, wait_past_deadline=True, stop_after=None)
    assert (outcome.raised, scheduled) == ("ActivityError", 1)
    assert outcome.raised_at_seconds < 6 + TIMING.attempt_timeout_seconds / 2, "it failed at once"


async def test_a_stopped_step_cancels_its_attempt_and_waits_out_its_start_to_close(env):
    outcome, attempts, scheduled, _ = await run_probe(env, wait_past_deadline=False, stop_after=0.1)
    assert (outcome.raised, scheduled) == ("Stopped", 1)
    # The attempt in flight was cancelled: the server started no other one, though the step had time left.
    assert attempts == 1
    # Whatever that attempt did (a charge) is recorded, or never will be, before the caller compensates.
    assert outcome.stop_to_raise_seconds >= TIMING.attempt_timeout_seconds


@workflow.defn(name="WaitProbe", sandboxed=False)
class WaitProbe:
    def __init__(self) -> None:
        self.ready = False

    @workflow.run
    async def run(self, deadline_seconds: float) -> tuple[str, float]:
        start = workflow.now()
        deadline = Deadline(start + timedelta(seconds=deadline_seconds))
        try:
            await wait_until(deadline, lambda: self.ready)
            outcome = "ready"
        except TimeoutError:
            outcome = "timed out"
        return outcome, (workflow.now() - start).total_seconds()

    @workflow.signal
    def go(self) -> None:
        self.ready = True


async def wait_probe(env, deadline_seconds: float, signal: bool) -> tuple[str, float]:
    queue = f"wait-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[WaitProbe], workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await env.client.start_workflow(WaitProbe.run, deadline_seconds, id=queue, task_queue=queue)
        if signal:
            await handle.signal(WaitProbe.go)
        outcome, seconds = await handle.result()
    return outcome, seconds


async def test_a_wait_gives_up_at_its_deadline_and_not_before(env):
    outcome, seconds = await wait_probe(env, deadline_seconds=3, signal=False)
    assert outcome == "timed out" and 3 <= seconds < 3.5


async def test_a_wait_whose_condition_holds_returns_before_its_deadline(env):
    outcome, seconds = await wait_probe(env, deadline_seconds=3600, signal=True)
    assert outcome == "ready" and seconds < 3600


def test_an_attempt_is_cut_at_its_start_to_close_and_nothing_is_scheduled_past_the_deadline():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    roomy = attempt_options(now, now + timedelta(seconds=5), TIMING, max_attempts=6)
    assert roomy["start_to_close_timeout"] == timedelta(seconds=0.45)
    assert roomy["schedule_to_close_timeout"] == timedelta(seconds=5)
    policy = roomy["retry_policy"]
    assert policy.maximum_attempts == 6 and policy.initial_interval == timedelta(seconds=0.02)
    assert policy.maximum_interval == timedelta(seconds=0.08)
    assert set(policy.non_retryable_error_types or []) >= {"ValueError", "PaymentConflict", "OrderConflict"}
    # Less time left than an attempt takes: the attempt gets what is left, and no retry outlives it.
    tight = attempt_options(now, now + timedelta(seconds=0.3), TIMING)
    assert tight["start_to_close_timeout"] == tight["schedule_to_close_timeout"] == timedelta(seconds=0.3)
    assert tight["retry_policy"].maximum_attempts == 0  # unlimited, within the schedule-to-close
    # Past the deadline: the smallest slice, in which the worker calls no vendor (common.attempts).
    late = attempt_options(now, now - timedelta(seconds=1), TIMING)
    assert late["schedule_to_close_timeout"] == timedelta(seconds=0.05)
