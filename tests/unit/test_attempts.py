"""One activity attempt (common.attempts) in Temporal's ActivityEnvironment: hangs are cut, outcomes recorded."""

import asyncio
import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import cast

import asyncpg
import pytest
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment

from common import codec
from common.attempts import call_stub, logged_write, run_attempt, within_hang_cut


class RecordingPool:
    """The attempt log's pool: the rows written, no database."""

    def __init__(self):
        self.rows = []

    @contextlib.asynccontextmanager
    async def acquire(self):
        yield self

    async def execute(self, sql, *args):
        self.rows.append(args)


def attempt_of(pool: RecordingPool, work):
    """run_attempt for order o-1, with the fake as its pool (run_attempt uses only acquire() and execute())."""
    return run_attempt(cast(asyncpg.Pool, pool), "orders", "o-1", work)


def environment(attempt: int = 1, start_to_close: float = 0.3) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        attempt=attempt,
        activity_type="ReceiveOrder",
        start_to_close_timeout=timedelta(seconds=start_to_close),
        scheduled_time=datetime.now(UTC),  # the step has its time left (common.attempts)
    )
    return env


async def test_hang_is_cut_before_start_to_close_and_recorded_as_timeout():
    pool = RecordingPool()

    async def hang():
        await asyncio.sleep(300)

    async def attempt():
        return await attempt_of(pool, hang)

    started = asyncio.get_running_loop().time()
    with pytest.raises(ApplicationError) as err:
        await environment(attempt=3).run(attempt)
    assert asyncio.get_running_loop().time() - started < 1
    assert err.value.type == "AttemptTimeout" and "attempt 3 timed out" in err.value.message
    [row] = pool.rows
    assert row[0] == "o-1" and row[1] == "ReceiveOrder" and row[5] == 3 and row[6] == "timeout"


async def test_a_failure_of_the_projects_own_code_is_recorded_and_reraised_as_it_is():
    pool = RecordingPool()

    async def fail():
        raise RuntimeError("Forced failure for testing")

    async def attempt():
        return await attempt_of(pool, fail)

    with pytest.raises(RuntimeError):
        await environment().run(attempt)
    assert pool.rows[0][6:8] == ("error", "RuntimeError: Forced failure for testing")


async def test_a_stubs_failure_goes_to_temporal_as_a_benign_error_with_its_type_and_message():
    """The vendor failing is expected of it: Temporal's worker logs it at DEBUG, without a traceback; the attempt log
    and the retry policy see the same type and message as before."""
    pool = RecordingPool()

    async def stub():
        raise RuntimeError("Forced failure for testing")  # as the brief's flaky_call() fails

    async def attempt():
        return await attempt_of(pool, lambda: call_stub(stub()))

    with pytest.raises(ApplicationError) as err:
        await environment().run(attempt)
    assert (err.value.type, err.value.message) == ("RuntimeError", "Forced failure for testing")
    assert err.value.category == ApplicationErrorCategory.BENIGN and not err.value.non_retryable
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert pool.rows[0][6:8] == ("error", "RuntimeError: Forced failure for testing")


async def test_success_returns_the_result_and_records_ok():
    pool = RecordingPool()

    async def work():
        return 42

    async def attempt():
        return await attempt_of(pool, work)

    assert await environment().run(attempt) == 42
    assert pool.rows[0][6] == "ok"


async def test_a_success_logged_by_the_steps_own_write_gets_no_second_row_and_a_failure_after_it_does():
    pool = RecordingPool()
    carried = []

    async def work(fail: bool):
        sql, params = logged_write("orders", "WITH w AS (SELECT $1, $2, $3){attempt} SELECT", "a", "b", "c")
        carried.append((sql, params))
        if fail:
            raise ValueError("found a conflict after the write")
        return 7

    async def attempt(fail: bool):
        return await attempt_of(pool, lambda: work(fail))

    assert await environment().run(attempt, False) == 7
    sql, params = carried[0]
    # The attempt's eight parameters are numbered after the write's own three, and passed after them.
    assert "attempt_logged AS" in sql and "($4, $5, $6, $7, $8, $9::int, $10, '', $11::int)" in sql
    assert params[:4] == ["a", "b", "c", "o-1"] and params[9] == "ok" and len(params) == 11
    assert pool.rows == []
    with pytest.raises(ValueError):
        await environment(attempt=2).run(attempt, True)
    assert [(row[5], row[6]) for row in pool.rows] == [(2, "error")]
    outside = logged_write("orders", "WITH w AS (SELECT $1){attempt} SELECT", "a")
    assert outside == ("WITH w AS (SELECT $1) SELECT", ["a"]), "outside an attempt nothing is carried"
    with pytest.raises(ValueError, match="attempt"):
        logged_write("orders", "UPDATE x SET y = $1", "a")


async def test_an_attempt_cancelled_after_its_steps_write_logged_it_is_logged_again_as_an_error():
    pool = RecordingPool()

    async def work():
        logged_write("orders", "{attempt}")
        raise asyncio.CancelledError

    async def attempt():
        return await attempt_of(pool, work)

    with pytest.raises(asyncio.CancelledError):
        await environment().run(attempt)
    assert [(row[6], row[7]) for row in pool.rows] == [("error", "cancelled after its write")]


async def test_stub_hang_is_cut_leaving_time_for_the_writes():
    pool = RecordingPool()

    async def stub_then_write():
        await within_hang_cut(asyncio.sleep(300))

    async def attempt():
        return await attempt_of(pool, stub_then_write)

    started = asyncio.get_running_loop().time()
    with pytest.raises(ApplicationError) as err:
        await environment(start_to_close=0.45).run(attempt)
    waited = asyncio.get_running_loop().time() - started
    assert 0.09 <= waited < 0.3, "cut at start-to-close minus the write allowance"
    assert err.value.type == "AttemptTimeout" and pool.rows[0][6] == "timeout"


@pytest.mark.parametrize("key", [None, bytes(32)], ids=["plain", "sealed"])
async def test_a_benign_failure_reaches_temporal_without_a_traceback_and_other_failures_keep_theirs(key):
    converter = codec.data_converter(key)

    async def stack_trace(error: ApplicationError) -> str:
        """The traceback Temporal records for `error` raised here, as a reader of the history gets it back."""
        try:
            raise error
        except ApplicationError as raised:
            failure = Failure()
            await converter.encode_failure(raised, failure)
        decoded = await converter.decode_failure(failure)
        assert isinstance(decoded, ApplicationError) and decoded.message == "Forced failure for testing"
        assert decoded.failure is not None
        return decoded.failure.stack_trace

    expected = ApplicationErrorCategory.BENIGN
    assert (
        await stack_trace(ApplicationError("Forced failure for testing", type="RuntimeError", category=expected)) == ""
    )
    assert "test_attempts.py" in await stack_trace(ApplicationError("Forced failure for testing", type="RuntimeError"))


async def test_an_expected_failure_logs_at_info_and_a_failure_of_the_projects_own_code_at_warning(caplog):
    """The vendor failing or hanging is expected and retried (BENIGN): INFO, as the step's end is what warns. A
    failure of the project's own code around the stub is a WARNING."""

    async def vendor_fails():
        raise RuntimeError("Forced failure for testing")

    async def hang():
        await asyncio.sleep(300)

    async def own_code_fails():
        raise KeyError("payment_id")

    async def attempt(work):
        return await attempt_of(RecordingPool(), work)

    caplog.set_level("INFO", logger="temporalio.activity")
    for work in (lambda: call_stub(vendor_fails()), hang, own_code_fails):
        with contextlib.suppress(Exception):
            await environment().run(attempt, work)
    events = [(r.getMessage().split(" ")[0], r.levelname) for r in caplog.records]
    levels = [(event, level) for event, level in events if event.startswith("attempt_")]
    assert levels == [("attempt_failed", "INFO"), ("attempt_timed_out", "INFO"), ("attempt_failed", "WARNING")]


async def test_an_attempt_scheduled_with_no_time_left_calls_no_vendor_and_fails_for_good():
    pool = RecordingPool()
    called = False

    async def work():
        nonlocal called
        called = True

    async def attempt():
        return await attempt_of(pool, work)

    env = environment()
    env.info = dataclasses.replace(
        env.info,
        scheduled_time=datetime.now(UTC) - timedelta(seconds=1),
        schedule_to_close_timeout=timedelta(seconds=1),
    )
    with pytest.raises(ApplicationError) as err:
        await env.run(attempt)
    assert not called
    assert err.value.type == "OutOfBudget" and err.value.non_retryable
    [row] = pool.rows
    assert row[6] == "error" and "no time left" in row[7]
