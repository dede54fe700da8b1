"""What becomes of a step's error, in one table: retried within the step's time, or not retried, and then the order
ends REJECTED (the request or its data is wrong) or FAILED (the step cannot succeed). Activities raise these types;
the step runner's retry policy and the workflows' end states read this table. Any other error (the vendor's, a
timeout) is retried. Safe inside workflow code."""

from enum import StrEnum

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, FailureError


class Outcome(StrEnum):
    REJECTS = "rejects"
    FAILS = "fails"


ERROR_TYPES: dict[str, Outcome] = {
    "ValueError": Outcome.REJECTS,  # the order is invalid (the brief's order_validated)
    "InvalidData": Outcome.REJECTS,  # data Postgres refuses (common.attempts)
    "OrderConflict": Outcome.REJECTS,  # the order or payment id belongs to another order
    "PaymentConflict": Outcome.REJECTS,  # the payment id was charged for another order or amount
    "ShipmentCancelled": Outcome.FAILS,  # dispatch found the shipment cancelled
    "OutOfBudget": Outcome.FAILS,  # the step was scheduled with no time left (common.attempts)
}
NON_RETRYABLE = list(ERROR_TYPES)


def rejects(err: BaseException) -> bool:
    """Whether a step's error ends the order REJECTED rather than FAILED."""
    cause = err.cause if isinstance(err, (ActivityError, ChildWorkflowError)) else err
    return isinstance(cause, ApplicationError) and ERROR_TYPES.get(cause.type or "") is Outcome.REJECTS


def reason(err: BaseException) -> str:
    """What a person reads of a step's error: the activity's message, and for a timeout the last attempt's error."""
    if isinstance(err, ActivityError) and isinstance(err.cause, FailureError):
        cause = err.cause
        if isinstance(cause.cause, FailureError):  # a timeout wraps the last attempt's error
            return f"{cause.message}; last attempt: {cause.cause.message}"
        return cause.message
    return str(err)
