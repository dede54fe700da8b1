"""Every failure as the gRPC status a caller sees: a code, a message naming what is wrong, and google.rpc
details for programs (BadRequest field violations, ErrorInfo with a stable reason, RetryInfo)."""

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.service import RPCError, RPCStatusCode

from common import db
from gateway import admission, mapping

DOMAIN = "orderlife.gateway.v1"
# How long a caller should wait before trying again after UNAVAILABLE (RESOURCE_EXHAUSTED: see gateway/admission.py).
RETRY_AFTER_SECONDS = 1


class Refused(Exception):
    """A transition the order's state does not allow; `reason` is stable (e.g. ORDER_ENDED), for programs."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class AlreadyExists(Exception):
    """The order id is taken by a different request."""


class Unavailable(Exception):
    """A passing condition: the caller should try again."""


def status(err: Exception, order_id: str = "") -> status_pb2.Status:
    """The google.rpc.Status for a failure."""
    if isinstance(err, mapping.InvalidArgument):
        return make(
            grpc.StatusCode.INVALID_ARGUMENT,
            str(err),
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=field, description=problem)
                    for field, problem in err.violations
                ]
            ),
        )
    if isinstance(err, Refused):
        return _refused(err.reason, str(err))
    if isinstance(err, WorkflowUpdateFailedError):
        cause = err.cause.cause if isinstance(err.cause, FailureError) and err.cause.cause else err.cause
        if isinstance(cause, ApplicationError):
            reason = cause.details[0] if cause.details and isinstance(cause.details[0], str) else "REFUSED"
            return _refused(reason, cause.message)
        return _refused("REFUSED", str(cause))
    if isinstance(err, AlreadyExists):
        return make(grpc.StatusCode.ALREADY_EXISTS, str(err), _info("ORDER_EXISTS"))
    if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
        return make(grpc.StatusCode.NOT_FOUND, f"order {order_id!r} not found", _info("ORDER_NOT_FOUND"))
    if isinstance(err, Unavailable):
        return retry_later(str(err))
    if isinstance(err, admission.Overloaded):
        return make(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            str(err),
            _retry_info(err.retry_after),
            _info("TOO_MANY_ORDERS_IN_FLIGHT"),
        )
    if isinstance(err, TimeoutError):
        return retry_later("Temporal or Postgres did not answer in time; try again")
    if isinstance(err, WorkflowUpdateRPCTimeoutOrCancelledError):
        return retry_later("the order did not take the request in time; try again")
    if isinstance(err, RPCError):
        return retry_later(f"Temporal is unavailable: {err}")
    if isinstance(err, db.BACKEND_ERRORS):
        return retry_later(f"a backing service is unavailable: {err}")
    return make(grpc.StatusCode.INTERNAL, "internal error")


def retry_later(message: str, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> status_pb2.Status:
    """UNAVAILABLE (or RESOURCE_EXHAUSTED) with RetryInfo: when to try again."""
    return make(code, message, _retry_info())


def _retry_info(seconds: float = RETRY_AFTER_SECONDS) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(round(seconds * 1000))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def as_grpc(status_message: status_pb2.Status) -> grpc.Status:
    return rpc_status.to_status(status_message)


def code_of(status_message: status_pb2.Status) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == status_message.code)


def _refused(reason: str, message: str) -> status_pb2.Status:
    return make(grpc.StatusCode.FAILED_PRECONDITION, message, _info(reason))


def _info(reason: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)


def make(code: grpc.StatusCode, message: str, *details: Message) -> status_pb2.Status:
    packed = []
    for detail in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(detail)
        packed.append(any_detail)
    return status_pb2.Status(code=code.value[0], message=message, details=packed)
