"""The sweep (order_service/sweep.py) settles orders whose workflow ended without its own final write, and the
status tells of an order whose workflow task keeps failing."""

import asyncio
import dataclasses
import uuid

import grpc
import pytest

from common import db
from gateway import server
from order_service import sweep
from order_service import worker as order_worker
from order_service.activities import OrderActivities
from order_service.repository import OrdersRepository
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.integration.broken_workflow import BrokenOrderWorkflow
from tests.integration.conftest import new_order_id, start_request, wait_for, wait_review

pytestmark = pytest.mark.integration


async def run_sweep(stack) -> list[sweep.Settled]:
    """One sweep now, looking at orders of any age (the schedule's looks only past the budget)."""
    result = await stack.client.execute_workflow(
        sweep.SWEEP_WORKFLOW,
        sweep.SweepInput(stack.gateway_settings.shipping_task_queue, unsettled_after_seconds=0),
        id=f"sweep-test-{uuid.uuid4().hex[:8]}",
        task_queue=stack.gateway_settings.order_task_queue,
        result_type=sweep.SweepResult,
    )
    return result.settled


async def terminated_at(stack, order_id: str, step: str) -> pb.Order:
    """Approves the order, waits until it runs `step` (its own, or its shipment's), then terminates its workflow (no
    final write)."""
    await stack.gateway.StartOrder(start_request(order_id))
    await wait_review(stack, order_id)
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="sweep"))
    await wait_for(
        stack, order_id, lambda o: o.current_step == step or any(s.name == step and s.attempts for s in o.steps)
    )
    await stack.client.get_workflow_handle(f"order-{order_id}").terminate("operator gave up on it")
    return (await stack.gateway.GetOrder(pb.GetOrderRequest(order_id=order_id))).order


async def rows(stack, order_id: str) -> tuple:
    return (
        await stack.admin.fetchval("SELECT state FROM orders.orders WHERE order_id = $1", order_id),
        await stack.admin.fetchval("SELECT status FROM orders.payments WHERE order_id = $1", order_id),
        await stack.admin.fetchval("SELECT status FROM shipping.shipments WHERE order_id = $1", order_id),
    )


async def test_a_charged_order_whose_workflow_was_terminated_before_dispatch_is_refunded(stack):
    order_id = new_order_id("sweep-refund")
    stack.flaky.script(order_id, DispatchCarrier=["hang"])
    seen = await terminated_at(stack, order_id, "DispatchCarrier")
    assert seen.state == pb.ORDER_STATE_SHIPPING and "TERMINATED without its final write" in seen.reason
    assert await rows(stack, order_id) == ("SHIPPING", "charged", "prepared")

    settled = [s for s in await run_sweep(stack) if s.order_id == order_id]
    assert [s.state for s in settled] == ["FAILED"], settled
    assert await rows(stack, order_id) == ("FAILED", "refunded", "cancelled")
    order = (await stack.gateway.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert order.state == pb.ORDER_STATE_FAILED and "settled by the sweep" in order.reason and order.ended_at.seconds
    listed = await stack.gateway.ListOrders(pb.ListOrdersRequest(state=pb.ORDER_STATE_FAILED, page_size=100))
    assert {o.order_id: o.state for o in listed.orders}.get(order_id) == pb.ORDER_STATE_FAILED
    shipping_now = await stack.gateway.ListOrders(pb.ListOrdersRequest(state=pb.ORDER_STATE_IN_PROGRESS, page_size=100))
    assert order_id not in [o.order_id for o in shipping_now.orders]

    # Settled once: another sweep leaves it be.
    assert order_id not in [s.order_id for s in await run_sweep(stack)]
    assert await rows(stack, order_id) == ("FAILED", "refunded", "cancelled")


async def test_a_dispatched_order_whose_workflow_was_terminated_is_recorded_shipped(stack):
    order_id = new_order_id("sweep-shipped")
    stack.flaky.script(order_id, MarkShipped=["hang"])
    await terminated_at(stack, order_id, "MarkShipped")
    assert await rows(stack, order_id) == ("SHIPPING", "charged", "dispatched")

    settled = [s for s in await run_sweep(stack) if s.order_id == order_id]
    assert [s.state for s in settled] == ["COMPLETED"], settled
    assert await rows(stack, order_id) == ("COMPLETED", "charged", "dispatched")
    order = (await stack.gateway.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    assert order.state == pb.ORDER_STATE_COMPLETED and order.reason.startswith("dispatched; workflow TERMINATED")


async def test_a_workflow_task_that_keeps_failing_shows_in_the_status(stack, infra):
    admin_url, _ = infra
    order_tq = f"orders-broken-{uuid.uuid4().hex[:6]}"
    order_pool = await db.connect(db.url_for_role(admin_url, "order_service"))
    worker = order_worker.build(
        stack.client, OrderActivities(OrdersRepository(order_pool)), order_tq, workflow=BrokenOrderWorkflow
    )
    running = asyncio.create_task(worker.run())
    settings = dataclasses.replace(stack.gateway_settings, order_task_queue=order_tq)
    grpc_server, port = await server.serve(stack.client, stack.reader, settings)
    order_id = new_order_id("stuck")
    stack.flaky.script(order_id)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            gateway = pb_grpc.OrderGatewayServiceStub(channel)
            await gateway.StartOrder(start_request(order_id))
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                order = (await gateway.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
                if order.reason.startswith("stuck"):
                    break
                assert asyncio.get_running_loop().time() < deadline, order
                await asyncio.sleep(0.2)
            assert "WORKFLOW_WORKER_UNHANDLED_FAILURE" in order.reason, order.reason
            assert "RuntimeError: a bug in the review step" in order.reason
            assert order.state == pb.ORDER_STATE_VALIDATING
    finally:
        await grpc_server.stop(0)
        await worker.shutdown()
        await running
        await order_pool.close()
        await stack.client.get_workflow_handle(f"order-{order_id}").terminate("a broken build")
