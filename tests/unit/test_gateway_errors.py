"""Every failure reaches the caller as a specific gRPC status, with a message naming what is wrong and the
google.rpc details a program reads: BadRequest field violations, ErrorInfo reasons, RetryInfo."""

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from client.connection import details_of
from gateway import admission, errors, mapping


def details(status) -> list:
    found = []
    for packed in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                found.append(message)
    return found


@pytest.mark.parametrize(
    "err, code, message",
    [
        (mapping.InvalidArgument([("items[0].qty", "is 0")]), grpc.StatusCode.INVALID_ARGUMENT, "items[0].qty: is 0"),
        (
            errors.Refused("ORDER_ENDED", "order 'o-1' already ended"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "already ended",
        ),
        (errors.AlreadyExists("different request"), grpc.StatusCode.ALREADY_EXISTS, "different request"),
        (errors.Unavailable("try again"), grpc.StatusCode.UNAVAILABLE, "try again"),
        (WorkflowUpdateRPCTimeoutOrCancelledError(), grpc.StatusCode.UNAVAILABLE, "try again"),
        (RPCError("gone", RPCStatusCode.NOT_FOUND, b""), grpc.StatusCode.NOT_FOUND, "order 'o-1' not found"),
        (RPCError("down", RPCStatusCode.UNAVAILABLE, b""), grpc.StatusCode.UNAVAILABLE, "Temporal is unavailable"),
        (asyncpg.CannotConnectNowError("starting"), grpc.StatusCode.UNAVAILABLE, "backing service"),
        (
            asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
            grpc.StatusCode.UNAVAILABLE,
            "backing service",
        ),
        (asyncpg.InterfaceError("connection is closed"), grpc.StatusCode.UNAVAILABLE, "backing service"),
        (ConnectionRefusedError("refused"), grpc.StatusCode.UNAVAILABLE, "backing service"),
        (TimeoutError(), grpc.StatusCode.UNAVAILABLE, "did not answer in time"),
        (KeyError("bug"), grpc.StatusCode.INTERNAL, "internal error"),
    ],
)
def test_failure_maps_to_status(err, code, message):
    status = errors.status(err, "o-1")
    assert errors.code_of(status) == code
    assert message in status.message
    if code == grpc.StatusCode.UNAVAILABLE:
        [retry] = details(status)
        assert retry.retry_delay.ToTimedelta().total_seconds() == 1  # the README's "try again in 1 s"


def test_bad_request_names_every_field():
    status = errors.status(mapping.InvalidArgument([("order_id", "is required"), ("items[0].qty", "is 0")]))
    [bad] = details(status)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("order_id", "is required"),
        ("items[0].qty", "is 0"),
    ]


def test_a_refusal_carries_a_stable_reason():
    [info] = details(errors.status(errors.Refused("REVIEW_WINDOW_CLOSED", "the review window has closed")))
    assert (info.reason, info.domain) == ("REVIEW_WINDOW_CLOSED", errors.DOMAIN)


def test_a_shed_start_carries_its_place_in_line_as_the_retry_hint():
    status = errors.status(admission.Overloaded("30 orders are running; try again in 2.3s", 2.345))
    assert errors.code_of(status) == grpc.StatusCode.RESOURCE_EXHAUSTED
    retry, info = details(status)
    assert retry.retry_delay.ToTimedelta().total_seconds() == 2.345
    assert info.reason == "TOO_MANY_ORDERS_IN_FLIGHT"


def test_a_client_reads_back_the_details_an_aio_stub_raises():
    """What the benchmark's clients (grpc.aio) and the CLI read: the refusal's reason and its retry hint."""
    status = errors.status(admission.Overloaded("30 orders are running", 2.5))
    raised = grpc.aio.AioRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString())),
        details=status.message,
    )
    read = details_of(raised)
    info, retry = read["ErrorInfo"], read["RetryInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo) and isinstance(retry, error_details_pb2.RetryInfo)
    assert info.reason == "TOO_MANY_ORDERS_IN_FLIGHT"
    assert retry.retry_delay.ToTimedelta().total_seconds() == 2.5
