"""Activity options derived from the time left before a deadline, and deadlines as durable timers.

Safe inside workflow code: no I/O, time only from the workflow.
"""

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

# Errors that retrying cannot fix: bad input and conflicting ids.
NON_RETRYABLE = ["ValueError", "OrderConflict", "PaymentConflict", "ShipmentCancelled"]
# Smallest slice worth scheduling an attempt into.
MIN_SLICE_SECONDS = 0.05
# The workflow.patched() id of deciding deadlines by timers (Alarms) rather than by workflow.now().
DEADLINE_ALARMS = "deadline-alarms"
# The workflow.patched() id of running compensation and final writes as local activities.
LOCAL_COMPENSATION = "local-compensation"


class OutOfBudget(Exception):
    def __init__(self, step: str):
        super().__init__(f"{step} has no time left before the deadline")
        self.step = step


def step_options(
    step: str,
    now: datetime,
    until: datetime,
    attempt_timeout: float,
    retry_initial: float,
    retry_max: float,
    max_attempts: int = 0,
) -> dict:
    """Tight start-to-close to cut hangs, short retries, and nothing scheduled past `until`."""
    if (until - now).total_seconds() < MIN_SLICE_SECONDS:
        raise OutOfBudget(step)
    return attempt_options(now, until, attempt_timeout, retry_initial, retry_max, max_attempts)


def attempt_options(
    now: datetime,
    until: datetime,
    attempt_timeout: float,
    retry_initial: float,
    retry_max: float,
    max_attempts: int = 0,
) -> dict:
    """The same options, never refusing: with Alarms, whether time is left is the alarm's to say."""
    left = max((until - now).total_seconds(), MIN_SLICE_SECONDS)
    return {
        "start_to_close_timeout": timedelta(seconds=min(attempt_timeout, left)),
        "schedule_to_close_timeout": timedelta(seconds=left),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=retry_initial),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=retry_max),
            maximum_attempts=max_attempts,
            non_retryable_error_types=NON_RETRYABLE,
        ),
    }


def compensation_options() -> dict:
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


async def compensate(activity, arg):
    """A refund, cancellation or final write: a short database write with no flaky_call(), run as a local
    activity. It runs in the workflow's own task, as soon as the workflow decides on it, instead of
    queueing behind the flaky steps' attempts on a saturated activity queue; it is recorded in the
    history as a marker, and a worker that crashes before recording it has the task run again.
    A charged order must never end neither shipped nor refunded, so it retries until it succeeds."""
    if workflow.patched(LOCAL_COMPENSATION):
        return await workflow.execute_local_activity_method(activity, arg, **compensation_options())
    return await workflow.execute_activity_method(activity, arg, **compensation_options())


class Alarms:
    """Deadline instants as timers started with the workflow: a deadline has passed when its timer has fired.

    The timer firing is an event in the history, so every worker reaches the same decision. Comparing
    workflow.now() with a deadline is not enough: the fault suite caught a worker that, after a crashed
    worker's task timed out, ran a workflow forward with the previous task's time and scheduled a step
    that replay (with the right time) found out of budget, a nondeterminism error.
    """

    def __init__(self, *instants: datetime):
        now = workflow.now()
        self._fired: dict[datetime, asyncio.Future] = {}
        # One timer per instant given, equal ones included: the number of timers a workflow starts must
        # not depend on how its budget's numbers happen to line up.
        for at in sorted(instants):
            timer = asyncio.ensure_future(workflow.sleep(max((at - now).total_seconds(), 0.001)))
            self._fired.setdefault(at, timer)

    def passed(self, at: datetime) -> bool:
        return self._fired[at].done()



async def run_step(alarms: Alarms | None, step: str, activity, arg, until: datetime, attempt_timeout: float,
                   retry_initial: float, retry_max: float, max_attempts: int = 0):
    """One step's activity, given until `until`: its result, or OutOfBudget (the activity cancelled)."""
    timing = (attempt_timeout, retry_initial, retry_max, max_attempts)
    if alarms is None:  # histories from before DEADLINE_ALARMS
        options = step_options(step, workflow.now(), until, *timing)
        return await workflow.execute_activity_method(activity, arg, **options)
    if alarms.passed(until):
        raise OutOfBudget(step)
    running = workflow.start_activity_method(activity, arg, **attempt_options(workflow.now(), until, *timing))
    await workflow.wait_condition(lambda: running.done() or alarms.passed(until))
    if not running.done():
        running.cancel()
        raise OutOfBudget(step)
    return running.result()


async def wait_until(alarms: Alarms | None, condition, until: datetime) -> None:
    """workflow.wait_condition(condition), giving up with asyncio.TimeoutError once `until` has come."""
    if alarms is None:  # histories from before DEADLINE_ALARMS
        await workflow.wait_condition(condition, timeout=max((until - workflow.now()).total_seconds(), 0.001))
        return
    await workflow.wait_condition(lambda: condition() or alarms.passed(until))
    if not condition():
        raise asyncio.TimeoutError
