"""A batch of orders on the real, unseeded flaky_call(): every one ends in time, and the rows agree."""

import asyncio
from collections import Counter

import pytest

from orderlife.gateway.v1 import gateway_pb2 as pb
from tests.integration.conftest import new_order_id, start_request, wait_review, wait_terminal

pytestmark = pytest.mark.integration
BATCH = 20


async def run_one(stack, order_id: str) -> pb.Order:
    await stack.gateway.StartOrder(start_request(order_id))
    seen = await wait_review(stack, order_id)
    if seen.state == pb.ORDER_STATE_AWAITING_REVIEW:
        await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="batch"))
    return await wait_terminal(stack, order_id, timeout=30)


async def test_batch_with_real_flaky_call_ends_in_time_and_consistent(stack):
    ids = [new_order_id("real") for _ in range(BATCH)]
    orders = await asyncio.gather(*(run_one(stack, i) for i in ids))

    took = {o.order_id: (o.ended_at.ToDatetime() - o.started_at.ToDatetime()).total_seconds() for o in orders}
    print("\nstates:", Counter(pb.OrderState.Name(o.state) for o in orders), "max seconds:", max(took.values()))
    assert all(seconds <= 15 for seconds in took.values()), took
    attempts = sum(s.attempts for o in orders for s in o.steps)
    assert attempts > BATCH * 6, "the real flaky_call() should have forced retries"

    db_orders = {r["order_id"]: r["state"] for r in await stack.admin.fetch(
        "SELECT order_id, state FROM orders.orders WHERE order_id = ANY($1)", ids)}
    payments = {r["order_id"]: r["status"] for r in await stack.admin.fetch(
        "SELECT order_id, status FROM orders.payments WHERE order_id = ANY($1)", ids)}
    shipments = {r["order_id"]: r["status"] for r in await stack.admin.fetch(
        "SELECT order_id, status FROM shipping.shipments WHERE order_id = ANY($1)", ids)}
    for order in orders:
        state = pb.OrderState.Name(order.state).removeprefix("ORDER_STATE_")
        oid = order.order_id
        if oid in db_orders:
            assert db_orders[oid] == state, f"{oid}: database says {db_orders[oid]}, workflow {state}"
        else:
            assert state in ("REJECTED", "FAILED") and order.current_step == "", f"{oid} has no row"
        assert set(payments) <= set(db_orders), "a charge without an order"
        if state == "COMPLETED":
            assert payments.get(oid) == "charged" and shipments.get(oid) == "dispatched", oid
        else:
            assert payments.get(oid) in (None, "refunded"), f"{oid} {state} but payment {payments.get(oid)}"
            assert shipments.get(oid) in (None, "cancelled"), f"{oid} {state} but shipment {shipments.get(oid)}"
