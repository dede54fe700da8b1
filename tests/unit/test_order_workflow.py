"""OrderWorkflow and ShippingWorkflow in the time-skipping environment, activities mocked by name."""

import asyncio
import os
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError

from order_service import contract as orders
from order_service.workflows import OrderWorkflow
from tests.unit.conftest import new_order
from tests.unit.fakes import Script


async def start(env, run_workers, script: Script, order: orders.OrderInput, stack: AsyncExitStack):
    tq, workers = run_workers(script, order)
    for w in workers:
        await stack.enter_async_context(w)
    return await env.client.start_workflow(
        OrderWorkflow.run, order, id=orders.workflow_id(order.order_id), task_queue=tq
    )


async def wait_for_state(handle, state: str, timeout: float = 10.0) -> orders.OrderStatus:
    async def poll():
        while True:
            status = await handle.query(OrderWorkflow.status_query)
            if status.state == state:
                return status
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


async def record_history(handle, name: str) -> None:
    """With RECORD_HISTORIES=1, keep this run's history for the replay suite (tests/replay)."""
    if os.environ.get("RECORD_HISTORIES") == "1":
        history = await handle.fetch_history()
        (Path(__file__).parent.parent / "replay" / "histories" / f"{name}.json").write_text(history.to_json())


async def test_happy_path_with_retries_completes(env, run_workers):
    script = Script(**{orders.RECEIVE: ["fail", "hang"], orders.CHARGE: ["hang", "fail"], "DispatchCarrier": ["fail"]})
    order = new_order()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, order, stack)
        await wait_for_state(handle, orders.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))
        result = await handle.result()
    assert result.state == orders.COMPLETED
    assert result.payment.status == "charged"
    assert len(script.calls[orders.RECEIVE]) == 3
    assert len(script.calls[orders.CHARGE]) == 3
    assert not script.refunded
    await record_history(handle, "completed_with_retries")


async def test_review_window_expiry_rejects_without_charge(env, run_workers):
    script = Script()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        result = await handle.result()
    assert result.state == orders.REJECTED
    assert "review window expired" in result.reason
    assert orders.CHARGE not in script.calls
    await record_history(handle, "review_expired")


async def test_approval_before_review_is_refused(env, run_workers):
    script = Script(**{orders.RECEIVE: ["hang"]})
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))
        assert "not awaiting review" in str(refused.value.cause)
        await handle.cancel()


async def test_cancel_during_shipping_cancels_shipment_and_refunds(env, run_workers):
    script = Script(PreparePackage=["hang"] * 3)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))
        await wait_for_state(handle, orders.SHIPPING_STATE)
        cancelled = await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("customer called"))
        result = await handle.result()
    assert cancelled.state == result.state == orders.CANCELLED
    assert script.refunded and script.shipment == "cancelled"
    assert "DispatchCarrier" not in script.calls
    await record_history(handle, "cancel_during_shipping")


async def test_dispatch_failure_reaches_parent_and_is_retried(env, run_workers):
    script = Script(DispatchCarrier=["fail"] * 6)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))
        result = await handle.result()
        status = await handle.query(OrderWorkflow.status_query)
    assert result.state == orders.COMPLETED
    assert len(status.dispatch_failures) == 1 and status.dispatch_failures[0].startswith("round 1")
    assert [d.round for d in script.calls["DispatchCarrier"]] == [1] * 6 + [2]
    await record_history(handle, "dispatch_retried")


async def test_dispatch_that_keeps_failing_fails_the_order_with_a_refund(env, run_workers):
    script = Script(DispatchCarrier=["fail"] * 100)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))
        result = await handle.result()
    assert result.state == orders.FAILED
    assert "dispatch failed 5 time(s)" in result.reason
    assert script.refunded and script.shipment == "cancelled"


async def test_invalid_order_is_rejected_without_retrying(env, run_workers):
    script = Script(ValidateOrder=["invalid"])
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        result = await handle.result()
    assert result.state == orders.REJECTED
    assert "No items to validate" in result.reason
    assert len(script.calls[orders.VALIDATE]) == 1
    assert orders.CHARGE not in script.calls and not script.refunded


async def test_step_that_never_succeeds_fails_within_the_budget(env, run_workers):
    script = Script(ReceiveOrder=["hang"] * 1000)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        result = await handle.result()
        status = await handle.query(OrderWorkflow.status_query)
    assert result.state == orders.FAILED
    assert result.reason.startswith("ReceiveOrder:")
    took = datetime.fromisoformat(status.ended_at) - datetime.fromisoformat(status.started_at)
    assert took.total_seconds() <= 15


async def test_review_rejection_ends_the_order_without_charge(env, run_workers):
    script = Script()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.reject_update, orders.ReviewDecision("bob", "fraud"))
        result = await handle.result()
    assert result.state == orders.REJECTED and "fraud" in result.reason
    assert not script.charged
    await record_history(handle, "review_rejected")


async def test_address_update_reaches_the_child(env, run_workers):
    script = Script(PreparePackage=["hang", "hang"])
    moved = orders.Address("Ada", "2 Moved Ave", "Shelbyville", "54321", "US")
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))
        await wait_for_state(handle, orders.SHIPPING_STATE)
        await handle.execute_update(OrderWorkflow.address_update, orders.AddressUpdate(moved))
        result = await handle.result()
    assert result.state == orders.COMPLETED
    assert script.calls["DispatchCarrier"][-1].address == moved
    assert script.calls[orders.MARK_SHIPPED][-1].address == moved
    await record_history(handle, "address_updated_in_shipping")


async def test_cancel_while_the_charge_keeps_hanging_ends_the_order_at_once(env, run_workers):
    """No new charge attempt starts after a cancel; the one in flight is waited for (a charge it made would
    be refunded), and the order ends CANCELLED about one attempt later, not when the charge step runs out."""
    script = Script(ChargePayment=["hang"] * 1000)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))
        await wait_for_state(handle, orders.CHARGING)
        await asyncio.sleep(0.3)
        cancelled = await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("changed my mind"))
        result = await handle.result()
        status = await handle.query(OrderWorkflow.status_query)
    # The situation: the charge was attempted, and every attempt hung without charging.
    assert script.calls[orders.CHARGE] and not script.charged
    assert cancelled.state == result.state == orders.CANCELLED
    assert not script.refunded, "nothing was charged, so nothing is refunded (tests/unit/test_compensation.py charges)"
    charge = next(s for s in status.steps if s.step == orders.CHARGE)
    assert charge.status == "cancelled"
    took = datetime.fromisoformat(status.ended_at) - datetime.fromisoformat(charge.started_at)
    assert took.total_seconds() < 2.0, (
        f"cancel took {took} to end the order (charge attempts: {len(script.calls[orders.CHARGE])})"
    )
    await record_history(handle, "cancel_during_charge")


async def test_a_finished_order_has_no_step_running(env, run_workers):
    script = Script()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("in review"))
        status = await handle.query(OrderWorkflow.status_query)
    assert status.state == orders.CANCELLED
    review = status.steps[-1]
    assert (review.step, review.status) == (orders.REVIEW, "cancelled") and review.ended_at
    assert all(s.status != "running" and s.ended_at for s in status.steps)
    assert status.review_deadline and datetime.fromisoformat(status.review_deadline) < datetime.fromisoformat(
        status.deadline
    )
    await record_history(handle, "cancel_in_review")


async def test_a_change_that_comes_with_the_first_task_reaches_the_memo_the_gateway_wrote(env, run_workers):
    """Started as the gateway starts an order (its initial status in the memo), the first task writes no memo of its
    own, unless something changed in it: an address that came with the start is in the memo while ReceiveOrder runs."""
    script = Script(**{orders.RECEIVE: ["hang"] * 1000})
    order = new_order()
    moved = orders.Address("Ada", "2 Moved Ave", "Shelbyville", "54321", "US")
    async with AsyncExitStack() as stack:
        tq, workers = run_workers(script, order)
        for w in workers:
            await stack.enter_async_context(w)
        handle = await env.client.start_workflow(
            OrderWorkflow.run,
            order,
            id=orders.workflow_id(order.order_id),
            task_queue=tq,
            memo={orders.STATUS_MEMO_KEY: orders.initial_status(order, datetime.now(UTC))},
            start_signal=orders.UPDATE_ADDRESS,
            start_signal_args=[orders.AddressUpdate(moved)],
        )

        async def memo_address() -> orders.OrderStatus:
            while True:
                description = await handle.describe()
                status = await description.memo_value(orders.STATUS_MEMO_KEY, type_hint=orders.OrderStatus)
                if status.address == moved:
                    return status
                await asyncio.sleep(0.05)

        status = await asyncio.wait_for(memo_address(), 5)
        await handle.terminate()
    assert status.state == orders.RECEIVED
    assert [(s.step, s.status) for s in status.steps] == [(orders.RECEIVE, "running")]
