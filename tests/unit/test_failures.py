"""The one table of what a step's error does (common.failures): not retried, then REJECTED or FAILED."""

import pytest
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutError, TimeoutType

from common import failures


def activity_error(cause: BaseException) -> ActivityError:
    err = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="w",
        activity_type="ChargePayment",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    err.__cause__ = cause
    return err


@pytest.mark.parametrize("kind", ["ValueError", "InvalidData", "OrderConflict", "PaymentConflict"])
def test_bad_requests_and_conflicts_reject_the_order_and_are_not_retried(kind):
    assert failures.rejects(activity_error(ApplicationError("bad", type=kind)))
    assert kind in failures.NON_RETRYABLE


def test_a_cancelled_shipment_fails_the_order_and_is_not_retried():
    assert not failures.rejects(activity_error(ApplicationError("cancelled", type="ShipmentCancelled")))
    assert "ShipmentCancelled" in failures.NON_RETRYABLE


def test_the_vendors_failures_and_timeouts_are_retried_and_fail_the_order_when_time_runs_out():
    assert not failures.rejects(activity_error(ApplicationError("Forced failure for testing", type="RuntimeError")))
    assert {"RuntimeError", "AttemptTimeout"}.isdisjoint(failures.NON_RETRYABLE)


def test_a_timeout_names_the_last_attempts_error():
    timeout = TimeoutError("activity timed out", type=TimeoutType.SCHEDULE_TO_CLOSE, last_heartbeat_details=[])
    timeout.__cause__ = ApplicationError("attempt 7 timed out after 0.10s", type="AttemptTimeout")
    assert failures.reason(activity_error(timeout)) == (
        "activity timed out; last attempt: attempt 7 timed out after 0.10s"
    )
    assert failures.reason(RuntimeError("plain")) == "plain"


def test_an_error_raised_in_the_workflow_itself_is_judged_by_its_own_type():
    assert failures.rejects(ApplicationError("bad", type="ValueError"))
    assert not failures.rejects(ApplicationError("no type"))
