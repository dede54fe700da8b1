"""Races: many callers at once on one order id, one payment id, or a cancel against the charge."""

import asyncio
import dataclasses
from datetime import UTC, datetime

import grpc
import pytest
from temporalio.testing import ActivityEnvironment

from order_service import contract as orders
from order_service.activities import ChargeInput, OrderActivities
from order_service.repository import OrdersRepository
from orderlife.gateway.v1 import gateway_pb2 as pb
from tests.integration.conftest import new_order_id, start_request, wait_review, wait_terminal
from tests.support import consistency

pytestmark = pytest.mark.integration


async def test_concurrent_starts_of_one_order_id_make_one_workflow(stack):
    order_id = new_order_id("race-start")
    stack.flaky.script(order_id)
    responses = await asyncio.gather(*(stack.gateway.StartOrder(start_request(order_id)) for _ in range(50)))
    assert sorted(r.already_existed for r in responses) == [False] + [True] * 49
    assert {r.order.order_id for r in responses} == {order_id}
    runs = [w async for w in stack.client.list_workflows(f"WorkflowId = '{orders.workflow_id(order_id)}'")]
    assert len(runs) == 1
    await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="test over"))


async def test_concurrent_charges_with_one_payment_id_write_one_row_and_agree(stack):
    repo = OrdersRepository(stack.order_pool)
    order_id = new_order_id("race-pay")
    await repo.receive(
        order_id,
        f"pay-{order_id}",
        [orders.Item("ABC", 3)],
        orders.Address("Ada", "1 Loop Rd", "Springfield", "12345", "US"),
    )
    stack.flaky.script(order_id)
    acts = OrderActivities(repo)
    charge = ChargeInput(order_id, f"pay-{order_id}", [orders.Item("ABC", 3)])

    async def attempt(n: int):
        env = ActivityEnvironment()
        env.info = dataclasses.replace(
            env.info,
            workflow_id=orders.workflow_id(order_id),
            activity_type=orders.Step.CHARGE,
            attempt=n,
            activity_id=f"charge-{n}",
            scheduled_time=datetime.now(UTC),  # the step has its time left (common.attempts)
        )
        return await env.run(acts.charge_payment, charge)

    results = await asyncio.gather(*(attempt(n) for n in range(1, 51)))
    assert all(r == orders.Payment(f"pay-{order_id}", 3, orders.PaymentStatus.CHARGED) for r in results), results
    rows = await stack.admin.fetch(
        "SELECT amount, status FROM orders.payments WHERE payment_id = $1", f"pay-{order_id}"
    )
    assert [tuple(r) for r in rows] == [(3, "charged")]


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45])
async def test_cancel_racing_the_charge_is_never_charged_and_cancelled(stack, delay):
    order_id = new_order_id("race-cancel")
    # A slow-ish charge (one failed attempt first) widens the window the cancel can land in.
    stack.flaky.script(order_id, ChargePayment=["fail", "ok"])
    await stack.gateway.StartOrder(start_request(order_id))
    await wait_review(stack, order_id)
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="race"))
    await asyncio.sleep(delay)
    try:
        await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="race"))
    except grpc.aio.AioRpcError as err:
        # Dispatch won: the cancel is refused and the order completes.
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
    order = await wait_terminal(stack, order_id)
    state = pb.OrderState.Name(order.state).removeprefix("ORDER_STATE_")
    assert state in ("CANCELLED", "COMPLETED")
    assert await consistency.problems(stack.admin, stack.client, {order_id: state}) == []
    if state == "CANCELLED":
        assert order.payment.status in ("", "refunded"), order.payment
