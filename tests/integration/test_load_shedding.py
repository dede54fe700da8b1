"""Load shedding: past GATEWAY_MAX_ORDERS_IN_FLIGHT running orders, StartOrder is refused with a retry hint (a
place in line) and starts nothing; a client's retry of an order that did start still gets it; once orders end, starts
are admitted again. (The figures under real overload come from `python -m lab.bench --concurrency 100`.)"""

import asyncio
import dataclasses

import grpc
import pytest
import pytest_asyncio
from google.rpc.error_details_pb2 import ErrorInfo, RetryInfo
from temporalio.service import RPCError

from gateway import admission, server
from order_service import contract as orders
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.integration.conftest import detail, new_order_id, start_request, wait_review

pytestmark = pytest.mark.integration
LIMIT = 2


async def running_orders(stack) -> int:
    return (await stack.client.count_workflows(admission.RUNNING_ORDERS)).count


@pytest_asyncio.fixture
async def limited(stack):
    """A second gateway on the same stack that admits LIMIT running orders, once earlier tests' orders have ended
    (the count is the namespace's)."""
    for _ in range(200):
        if await running_orders(stack) == 0:
            break
        await asyncio.sleep(0.1)
    settings = dataclasses.replace(stack.gateway_settings, max_orders_in_flight=LIMIT)
    grpc_server, port = await server.serve(stack.client, stack.reader, settings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.OrderGatewayServiceStub(channel)
    await grpc_server.stop(0)


async def test_starts_past_the_limit_are_refused_with_a_retry_hint_and_start_nothing(stack, limited, monkeypatch):
    # The hint follows the admissions of the last RATE_WINDOW_SECONDS; a window longer than this test keeps both
    # held orders in it however slowly they reach review.
    monkeypatch.setattr(admission, "RATE_WINDOW_SECONDS", 600.0)
    monkeypatch.setattr(admission, "MAX_RETRY_SECONDS", 600.0)
    held = [new_order_id("held") for _ in range(LIMIT)]
    for order_id in held:
        stack.flaky.script(order_id)  # every attempt succeeds: the orders wait in review until decided
        await limited.StartOrder(start_request(order_id))
        assert (await wait_review(stack, order_id)).state == pb.ORDER_STATE_AWAITING_REVIEW

    shed = new_order_id("shed")
    stack.flaky.script(shed)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await limited.StartOrder(start_request(shed))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "GATEWAY_MAX_ORDERS_IN_FLIGHT=2" in (refused.value.details() or "")
    assert detail(refused.value, ErrorInfo).reason == "TOO_MANY_ORDERS_IN_FLIGHT"
    # First in line, with two orders admitted in the window: a turn every 300 s.
    assert detail(refused.value, RetryInfo).retry_delay.ToTimedelta().total_seconds() == 300
    assert "try again in 300.0s" in (refused.value.details() or "")
    # A second order refused is second in line: told to come back twice as late.
    behind = new_order_id("behind")
    with pytest.raises(grpc.aio.AioRpcError) as refused_behind:
        await limited.StartOrder(start_request(behind))
    assert detail(refused_behind.value, RetryInfo).retry_delay.ToTimedelta().total_seconds() == 600
    with pytest.raises(RPCError):
        await stack.client.get_workflow_handle(orders.workflow_id(shed)).describe()
    assert await stack.admin.fetchval("SELECT count(*) FROM orders.orders WHERE order_id = $1", shed) == 0

    # A client retrying the start of an order that did start gets that order, not a refusal.
    again = await limited.StartOrder(start_request(held[0]))
    assert again.already_existed and again.order.order_id == held[0]

    for order_id in held:
        await limited.RejectOrder(pb.RejectOrderRequest(order_id=order_id, reason="making room"))
    for _ in range(100):
        try:
            await limited.StartOrder(start_request(shed))
            break
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("starts were not admitted again after the running orders ended")
    await wait_review(stack, shed)
    await limited.RejectOrder(pb.RejectOrderRequest(order_id=shed, reason="done"))
