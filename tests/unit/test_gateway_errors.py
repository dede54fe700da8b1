"""Every failure reaches the caller as a specific gRPC status, with a message naming what is wrong."""

import asyncio

import asyncpg
import grpc
import pytest
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from gateway import mapping
from gateway.server import AlreadyExists, Refused, Unavailable, _failure
from orderlife.gateway.v1 import gateway_pb2 as pb

REQUEST = pb.GetOrderRequest(order_id="o-1")


@pytest.mark.parametrize(
    "err, code, message",
    [
        (mapping.InvalidArgument([("items[0].qty", "is 0")]), grpc.StatusCode.INVALID_ARGUMENT, "items[0].qty: is 0"),
        (Refused("order 'o-1' already ended"), grpc.StatusCode.FAILED_PRECONDITION, "already ended"),
        (AlreadyExists("different request"), grpc.StatusCode.ALREADY_EXISTS, "different request"),
        (Unavailable("try again"), grpc.StatusCode.UNAVAILABLE, "try again"),
        (WorkflowUpdateRPCTimeoutOrCancelledError(), grpc.StatusCode.UNAVAILABLE, "try again"),
        (RPCError("gone", RPCStatusCode.NOT_FOUND, b""), grpc.StatusCode.NOT_FOUND, "order 'o-1' not found"),
        (RPCError("down", RPCStatusCode.UNAVAILABLE, b""), grpc.StatusCode.UNAVAILABLE, "Temporal is unavailable"),
        (asyncpg.CannotConnectNowError("starting"), grpc.StatusCode.UNAVAILABLE, "backing service"),
        (asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
         grpc.StatusCode.UNAVAILABLE, "backing service"),
        (asyncpg.InterfaceError("connection is closed"), grpc.StatusCode.UNAVAILABLE, "backing service"),
        (ConnectionRefusedError("refused"), grpc.StatusCode.UNAVAILABLE, "backing service"),
        (asyncio.TimeoutError(), grpc.StatusCode.UNAVAILABLE, "did not answer in time"),
        (KeyError("bug"), grpc.StatusCode.INTERNAL, "internal error"),
    ],
)
def test_failure_maps_to_status(err, code, message):
    got_code, got_message = _failure(err, REQUEST)
    assert got_code == code
    assert message in got_message
