"""How a step spends the time it is given: activity options derived from the time left before a deadline,
and deadlines as durable timers.

Safe inside workflow code: no I/O, time only from the workflow.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.types import MethodAsyncSingleParam

from common import failures

Arg = TypeVar("Arg")
Result = TypeVar("Result")

# Smallest slice worth scheduling an attempt into.
MIN_SLICE_SECONDS = 0.05
# How long a worker may hold a workflow task before the server hands it to another: the SDK's 10 s default
# would spend most of an order's 15 s on a worker that died holding one. An order's tasks are small.
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=2)


@dataclass
class StepTiming:
    """The timing of each attempt of a flaky step; carried in both workflows' inputs so a replay sees it."""

    # Start-to-close of one attempt. The worker cuts the stub's 300 s hang at this minus the time kept
    # for the attempt's database writes (common.attempts).
    attempt_timeout_seconds: float = 0.45
    retry_initial_interval_seconds: float = 0.02
    retry_max_interval_seconds: float = 0.08


class ActivityOptions(TypedDict, total=False):
    """The options these helpers give workflow.start_activity and its kin (passed as **options)."""

    start_to_close_timeout: timedelta
    schedule_to_close_timeout: timedelta
    retry_policy: RetryPolicy


class Stopped(Exception):
    """The step was called off (the order is being cancelled); the attempt in flight has ended."""

    def __init__(self, step: str):
        super().__init__(f"{step} was stopped")
        self.step = step


def attempt_options(now: datetime, until: datetime, timing: StepTiming, max_attempts: int = 0) -> ActivityOptions:
    """Tight start-to-close to cut hangs, short retries, and nothing scheduled past `until`."""
    left = max((until - now).total_seconds(), MIN_SLICE_SECONDS)
    return {
        "start_to_close_timeout": timedelta(seconds=min(timing.attempt_timeout_seconds, left)),
        "schedule_to_close_timeout": timedelta(seconds=left),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=timing.retry_initial_interval_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=timing.retry_max_interval_seconds),
            maximum_attempts=max_attempts,
            non_retryable_error_types=failures.NON_RETRYABLE,
        ),
    }


def compensation_options() -> ActivityOptions:
    """Refunds, cancellations and final writes retry until they succeed, deadline or not:
    a charged order must never end neither shipped nor refunded."""
    return {
        "start_to_close_timeout": timedelta(seconds=2),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=50),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=1),
        ),
    }


async def compensate(activity: MethodAsyncSingleParam[Any, Arg, Result], arg: Arg) -> Result:
    """A refund, cancellation or final write: a short database write with no flaky_call(), run as a local
    activity. It runs in the workflow's own task, as soon as the workflow decides on it, instead of
    queueing behind the flaky steps' attempts on a saturated activity queue; it is recorded in the
    history as a marker, and a worker that crashes before recording it has the task run again."""
    return await workflow.execute_local_activity_method(activity, arg, **compensation_options())


class Deadline:
    """A deadline as one durable timer: it has passed when its timer has fired.

    The timer firing is an event in the history, so every worker reaches the same decision. Comparing
    workflow.now() with a deadline is not enough: the fault suite caught a worker that, after a crashed
    worker's task timed out, ran a workflow forward with the previous task's time and scheduled a step that
    replay (with the right time) found out of budget, a nondeterminism error.

    Only waits that no activity bounds need one (review, a shipment waiting for its parent's answer): a step's
    own schedule-to-close ends it at its deadline. A workflow starts one at most.
    """

    def __init__(self, at: datetime) -> None:
        self.at = at
        self._passed = False
        self._timer = asyncio.ensure_future(self._fire())

    async def _fire(self) -> None:
        await workflow.sleep(max((self.at - workflow.now()).total_seconds(), 0.001))
        self._passed = True

    def passed(self) -> bool:
        return self._passed


async def run_step(
    step: str,
    activity: MethodAsyncSingleParam[Any, Arg, Result],
    arg: Arg,
    until: datetime,
    timing: StepTiming,
    max_attempts: int = 0,
    stop: Callable[[], bool] = lambda: False,
    summary: str = "",
) -> Result:
    """One step's activity, given until `until` (its schedule-to-close: no timer of the workflow's), or Stopped as
    soon as `stop()` is true. A step with no time left is scheduled all the same, with the smallest slice: the
    worker then refuses to call the vendor (common.attempts) and the step fails. Either way this returns only once
    an attempt in flight can no longer act: the worker ends every attempt by its start-to-close (common.attempts),
    so whatever it did (a charge) is in the database, or never will be, when compensation reads it."""
    running = workflow.start_activity_method(
        activity, arg, summary=summary or None, **attempt_options(workflow.now(), until, timing, max_attempts)
    )
    await workflow.wait_condition(lambda: running.done() or stop())
    if running.done():
        return running.result()
    running.cancel()
    # Cancelling an attempt that does not heartbeat cannot interrupt it; waiting for the server to confirm
    # (WAIT_CANCELLATION_COMPLETED) lasts as long as this, and the time-skipping test server never confirms.
    await workflow.sleep(timing.attempt_timeout_seconds)
    raise Stopped(step)


async def wait_until(deadline: Deadline, condition: Callable[[], bool]) -> None:
    """workflow.wait_condition(condition), giving up with TimeoutError once the deadline has passed."""
    await workflow.wait_condition(lambda: condition() or deadline.passed())
    if not condition():
        raise TimeoutError
