"""One activity attempt of a flaky step: cut the hang, record the outcome, re-raise failures.

Temporal's server would time a hung attempt out on its own, but the coroutine would keep its
worker slot until the brief's 300 s sleep ends. Ending it here frees the slot and lets the
attempt be recorded as a timeout.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from common import db

T = TypeVar("T")
log = activity.logger

# The worker gives up slightly before the server's start-to-close, so it reports the timeout itself.
REPORT_MARGIN_SECONDS = 0.05
# What an attempt keeps, after the brief's stub returns, for its database writes. The stub answers at
# once or hangs for 300 s, so it is cut at start-to-close minus this; the writes are not rushed.
PERSIST_ALLOWANCE_SECONDS = 0.3
MIN_CUT_SECONDS = 0.05

# Data Postgres refuses (an untranslatable character, a value too long, a check violated): no retry can fix it.
PERMANENT_DB_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)

_COLUMNS = "(order_id, step, workflow_id, run_id, activity_id, attempt, outcome, message, duration_ms)"
# An attempt's row. A second word on one attempt (its step's write logged it ok, then it failed) replaces the first.
_INSERT = (
    "INSERT INTO {schema}.step_attempts "
    + _COLUMNS
    + """
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (run_id, activity_id, attempt)
DO UPDATE SET outcome = excluded.outcome, message = excluded.message, duration_ms = excluded.duration_ms
"""
)


class Outcome(StrEnum):
    """An attempt's outcome in the step_attempts table."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass
class _Running:
    order_id: str
    started: float
    logged: bool = False


_running: ContextVar[_Running | None] = ContextVar("running_attempt", default=None)


def logged_write(schema: str, sql: str, *params: object) -> tuple[str, list[object]]:
    """The write that ends a step's work, with the running attempt logged as succeeded in the same statement (one
    round trip where there were two): `sql` holds `{attempt}` where a CTE may follow its own, and uses only its own
    parameters. Returns the statement and every parameter, the attempt's numbered after the write's. Outside an
    attempt the CTE is empty. run_attempt then writes no row for a success; a failure after it still writes its own,
    which replaces this one. The row is part of the step's write: it lands exactly when the write does."""
    if "{attempt}" not in sql:
        raise ValueError("a step's write must say where the attempt's CTE goes: {attempt}")
    cte, logged = _attempt_cte(schema, first=len(params) + 1)
    return sql.replace("{attempt}", cte), [*params, *logged]


def _attempt_cte(schema: str, first: int) -> tuple[str, list[object]]:
    """The CTE `attempt_logged` and its parameters, numbered from `first` (nothing outside an attempt)."""
    run = _running.get()
    if run is None:
        return "", []
    run.logged = True
    info = activity.info()
    p = [f"${first + i}" for i in range(8)]
    cte = f""",
    attempt_logged AS (
        INSERT INTO {schema}.step_attempts {_COLUMNS}
        VALUES ({p[0]}, {p[1]}, {p[2]}, {p[3]}, {p[4]}, {p[5]}::int, {p[6]}, '', {p[7]}::int)
        ON CONFLICT DO NOTHING
    )"""
    return cte, [
        run.order_id,
        info.activity_type,
        info.workflow_id,
        info.workflow_run_id,
        info.activity_id,
        info.attempt,
        Outcome.OK,
        _elapsed_ms(run.started),
    ]


async def run_attempt(pool: asyncpg.Pool, schema: str, order_id: str, work: Callable[[], Awaitable[T]]) -> T:
    info = activity.info()
    limit = None
    if info.start_to_close_timeout:
        limit = max(info.start_to_close_timeout.total_seconds() - REPORT_MARGIN_SECONDS, 0.01)
    started = time.monotonic()
    context = {"order_id": order_id}
    # The span is the tracing plugin's RunActivity span (add_temporal_spans=True): one per attempt.
    span = trace.get_current_span()
    span.set_attributes({"order.id": order_id, "temporal.activity.attempt": info.attempt})
    running = _Running(order_id, started)
    token = _running.set(running)
    try:
        if _past_deadline(info):
            # The workflow scheduled the step with no time left (it keeps no timer to know): no vendor call.
            raise ApplicationError("no time left before the step's deadline", type="OutOfBudget", non_retryable=True)
        async with asyncio.timeout(limit):
            result = await work()
    except TimeoutError:
        waited = time.monotonic() - started
        message = f"attempt {info.attempt} timed out after {waited:.2f}s"
        # Like a failure of the vendor, an attempt cut off is expected and retried (BENIGN below): INFO, not WARNING.
        log.info("attempt_timed_out", extra={**context, "error": message})
        span.add_event("attempt_timed_out", {"waited_seconds": waited})
        span.set_status(Status(StatusCode.ERROR, message))
        await _record(pool, schema, order_id, Outcome.TIMEOUT, message, started)
        raise ApplicationError(message, type="AttemptTimeout", category=ApplicationErrorCategory.BENIGN) from None
    except asyncio.CancelledError:
        if running.logged:  # the step's write logged the attempt ok, but Temporal will see it fail
            await asyncio.shield(_record(pool, schema, order_id, Outcome.ERROR, "cancelled after its write", started))
        raise
    except Exception as err:
        if isinstance(err, ApplicationError):
            message = f"{err.type or 'ApplicationError'}: {err.message}"
        else:
            message = f"{type(err).__name__}: {err}"
        expected = isinstance(err, ApplicationError) and err.category == ApplicationErrorCategory.BENIGN
        log.log(logging.INFO if expected else logging.WARNING, "attempt_failed", extra={**context, "error": message})
        span.record_exception(err)
        span.set_status(Status(StatusCode.ERROR, message))
        await _record(pool, schema, order_id, Outcome.ERROR, message, started)
        if isinstance(err, PERMANENT_DB_ERRORS):
            raise ApplicationError(message, type="InvalidData", non_retryable=True) from err
        raise
    finally:
        _running.reset(token)
    if running.logged:
        _count(Outcome.OK, started)
    else:
        await _record(pool, schema, order_id, Outcome.OK, "", started)
    log.info("attempt_succeeded", extra=context)
    return result


async def call_stub(call: Awaitable[T]) -> T:
    """One of the brief's stubs (the flaky vendor) within the hang cut. Its failure is expected and retried, so it
    goes to Temporal as a BENIGN ApplicationError of the same type and message: the worker then logs it at DEBUG and
    sends it without a traceback (common.codec.FailureConverter); run_attempt has logged and recorded it. A failure
    of this project's own code around the stub keeps its traceback."""
    try:
        return await within_hang_cut(call)
    except (TimeoutError, ApplicationError):
        raise
    except Exception as err:
        raise ApplicationError(str(err), type=type(err).__name__, category=ApplicationErrorCategory.BENIGN) from None


async def within_hang_cut(call: Awaitable[T]) -> T:
    """Await one of the brief's stubs, giving up (TimeoutError) once a healthy call would have answered."""
    timeout = activity.info().start_to_close_timeout
    cut = None
    if timeout:
        cut = max(timeout.total_seconds() - PERSIST_ALLOWANCE_SECONDS - REPORT_MARGIN_SECONDS, MIN_CUT_SECONDS)
    return await asyncio.wait_for(call, cut)


def _past_deadline(info: activity.Info) -> bool:
    """Whether the step's schedule-to-close leaves less than the smallest cut (the workflow's smallest slice)."""
    if not info.schedule_to_close_timeout:
        return False
    left = info.scheduled_time + info.schedule_to_close_timeout - datetime.now(UTC)
    return left.total_seconds() < MIN_CUT_SECONDS


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _count(outcome: Outcome, started: float) -> None:
    info = activity.info()
    trace.get_current_span().set_attribute("order.attempt_outcome", outcome)
    labels = {"step": info.activity_type, "outcome": outcome}
    meter = activity.metric_meter()
    meter.create_counter("step_attempts", "activity attempts by step and outcome").add(1, labels)
    meter.create_histogram_float("step_attempt_seconds", "time of one attempt", "s").record(
        time.monotonic() - started, labels
    )


async def _record(
    pool: asyncpg.Pool, schema: str, order_id: str, outcome: Outcome, message: str, started: float
) -> None:
    """Best effort: the attempt log is for people; losing a row (Postgres is down) must not fail the step."""
    _count(outcome, started)
    info = activity.info()
    try:
        async with db.connection(pool) as conn:
            await conn.execute(
                _INSERT.format(schema=schema),
                order_id,
                info.activity_type,
                info.workflow_id,
                info.workflow_run_id,
                info.activity_id,
                info.attempt,
                outcome,
                message[:500],
                _elapsed_ms(started),
            )
    except db.BACKEND_ERRORS as err:
        log.warning("attempt_not_recorded", extra={"order_id": order_id, "error": str(err)})
