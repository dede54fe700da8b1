"""Activity options derived from the time left before a deadline. Pure: safe inside workflow code."""

from datetime import datetime, timedelta

from temporalio.common import RetryPolicy

# Errors that retrying cannot fix: bad input and conflicting ids.
NON_RETRYABLE = ["ValueError", "OrderConflict", "PaymentConflict", "ShipmentCancelled"]
# Smallest slice worth scheduling an attempt into.
MIN_SLICE_SECONDS = 0.05


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
    left = (until - now).total_seconds()
    if left < MIN_SLICE_SECONDS:
        raise OutOfBudget(step)
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
