"""OrderWorkflow and ShippingWorkflow in the time-skipping environment, activities mocked by name."""

import asyncio
import os
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from lab import actions
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


async def approve(handle) -> None:
    """Approves the order as a reviewer would: once it waits in review."""
    await wait_for_state(handle, orders.OrderState.AWAITING_REVIEW)
    await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))


async def end_order(handle) -> None:
    """Ends an order a test is done with, as a cancel does, and waits for it to close. Left open, or terminated, with
    an attempt in flight, it would hold the time-skipping server's clock for the rest of the session: the server stops
    skipping time while an activity is pending, and never times out one whose workflow has closed."""
    await handle.signal(OrderWorkflow.cancel_signal, orders.CancelRequest("the test is over"))
    await asyncio.wait_for(handle.result(), 10)


async def record_history(handle, name: str) -> None:
    """With RECORD_HISTORIES=1, keep this run's history for the replay suite (tests/replay)."""
    if os.environ.get("RECORD_HISTORIES") == "1":
        history = await handle.fetch_history()
        (Path(__file__).parent.parent / "replay" / "histories" / f"{name}.json").write_text(history.to_json())


async def test_happy_path_with_retries_completes(env, run_workers):
    script = Script(
        **{orders.Step.RECEIVE: ["fail", "hang"], orders.Step.CHARGE: ["hang", "fail"], "DispatchCarrier": ["fail"]}
    )
    order = new_order()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, order, stack)
        await approve(handle)
        result = await handle.result()
    assert result.state == orders.OrderState.COMPLETED
    assert result.payment.status == "charged"
    assert len(script.calls[orders.Step.RECEIVE]) == 3
    assert len(script.calls[orders.Step.CHARGE]) == 3
    assert not script.refunded
    await record_history(handle, "completed_with_retries")


async def test_review_window_expiry_rejects_without_charge(env, run_workers):
    script = Script()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        result = await handle.result()
    assert result.state == orders.OrderState.REJECTED
    assert "review window expired" in result.reason
    assert orders.Step.CHARGE not in script.calls
    await record_history(handle, "review_expired")


async def test_approval_before_review_is_refused(env, run_workers):
    script = Script(**{orders.Step.RECEIVE: ["hang"]})
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))
        assert "not awaiting review" in str(refused.value.cause)
        await end_order(handle)


async def test_cancel_during_shipping_cancels_shipment_and_refunds(env, run_workers):
    script = Script(PreparePackage=["hang"] * 3)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        await wait_for_state(handle, orders.OrderState.SHIPPING)
        cancelled = await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("customer called"))
        result = await handle.result()
    assert cancelled.state == result.state == orders.OrderState.CANCELLED
    assert script.refunded and script.shipment == "cancelled"
    assert "DispatchCarrier" not in script.calls
    await record_history(handle, "cancel_during_shipping")


async def test_dispatch_failure_reaches_parent_and_is_retried(env, run_workers):
    script = Script(DispatchCarrier=["fail"] * 6)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.state == orders.OrderState.COMPLETED
    told = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert [t.signal_name for t in told] == ["DispatchFailed"], "the child told its parent once"
    assert [d.round for d in script.calls["DispatchCarrier"]] == [1] * 6 + [2]
    await record_history(handle, "dispatch_retried")


async def test_dispatch_that_keeps_failing_fails_the_order_with_a_refund(env, run_workers):
    script = Script(DispatchCarrier=["fail"] * 100)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        result = await handle.result()
    assert result.state == orders.OrderState.FAILED
    assert "dispatch failed 5 time(s)" in result.reason
    assert script.refunded and script.shipment == "cancelled"


async def test_invalid_order_is_rejected_without_retrying(env, run_workers):
    script = Script(ValidateOrder=["invalid"])
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        result = await handle.result()
    assert result.state == orders.OrderState.REJECTED
    assert "No items to validate" in result.reason
    assert len(script.calls[orders.Step.VALIDATE]) == 1
    assert orders.Step.CHARGE not in script.calls and not script.refunded


async def test_step_that_never_succeeds_fails_within_the_budget(env, run_workers):
    script = Script(ReceiveOrder=["hang"] * 1000)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        result = await handle.result()
        status = await handle.query(OrderWorkflow.status_query)
    assert result.state == orders.OrderState.FAILED
    assert result.reason.startswith("ReceiveOrder:")
    took = datetime.fromisoformat(status.ended_at) - datetime.fromisoformat(status.started_at)
    assert took.total_seconds() <= 15


async def test_review_rejection_ends_the_order_without_charge(env, run_workers):
    script = Script()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.OrderState.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.reject_update, orders.ReviewDecision("bob", "fraud"))
        result = await handle.result()
    assert result.state == orders.OrderState.REJECTED and "fraud" in result.reason
    assert not script.charged
    await record_history(handle, "review_rejected")


async def test_address_update_reaches_the_child(env, run_workers):
    script = Script(PreparePackage=["hang", "hang"])
    moved = orders.Address("Ada", "2 Moved Ave", "Shelbyville", "54321", "US")
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        await wait_for_state(handle, orders.OrderState.SHIPPING)
        await handle.execute_update(OrderWorkflow.address_update, orders.AddressUpdate(moved))
        result = await handle.result()
    assert result.state == orders.OrderState.COMPLETED
    assert script.calls["DispatchCarrier"][-1].address == moved
    assert script.calls[orders.Step.MARK_SHIPPED][-1].address == moved
    await record_history(handle, "address_updated_in_shipping")


async def test_cancel_while_the_charge_keeps_hanging_ends_the_order_at_once(env, run_workers):
    """No new charge attempt starts after a cancel; the one in flight is waited for (a charge it made would
    be refunded), and the order ends CANCELLED about one attempt later, not when the charge step runs out."""
    script = Script(ChargePayment=["hang"] * 1000)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        await wait_for_state(handle, orders.OrderState.CHARGING)
        await asyncio.sleep(0.3)
        cancelled = await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("changed my mind"))
        result = await handle.result()
        status = await handle.query(OrderWorkflow.status_query)
        history = await handle.fetch_history()
    # The situation: the charge was attempted, and every attempt hung without charging.
    assert script.calls[orders.Step.CHARGE] and not script.charged
    assert cancelled.state == result.state == orders.OrderState.CANCELLED
    assert not script.refunded, "nothing was charged, so nothing is refunded (tests/unit/test_compensation.py charges)"
    charge_scheduled = next(
        e.event_time.ToDatetime(UTC)
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == orders.Step.CHARGE
    )
    took = datetime.fromisoformat(status.ended_at) - charge_scheduled
    assert took.total_seconds() < 2.0, (
        f"cancel took {took} to end the order (charge attempts: {len(script.calls[orders.Step.CHARGE])})"
    )
    await record_history(handle, "cancel_during_charge")


async def test_a_finished_order_has_no_step_running(env, run_workers):
    script = Script()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await wait_for_state(handle, orders.OrderState.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("in review"))
        status = await handle.query(OrderWorkflow.status_query)
    assert (status.state, status.step) == (orders.OrderState.CANCELLED, "") and status.ended_at
    assert status.review_deadline and datetime.fromisoformat(status.review_deadline) < datetime.fromisoformat(
        status.deadline
    )
    await record_history(handle, "cancel_in_review")


async def test_a_change_that_comes_with_the_first_task_reaches_the_memo_the_gateway_wrote(env, run_workers):
    """Started as the gateway starts an order (its memo and listed state written), the first task writes neither again,
    unless something changed in it: an address that came with the start is in the memo while ReceiveOrder runs."""
    script = Script(**{orders.Step.RECEIVE: ["hang"] * 1000})
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
            memo={orders.ORDER_MEMO_KEY: orders.order_memo(order, datetime.now(UTC))},
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(orders.ORDER_STATE_ATTRIBUTE, orders.OrderState.IN_PROGRESS)]
            ),
            start_signal=orders.UPDATE_ADDRESS,
            start_signal_args=[orders.AddressUpdate(moved)],
        )

        async def memo_address() -> orders.OrderMemo:
            while True:
                description = await handle.describe()
                memo = await description.memo_value(orders.ORDER_MEMO_KEY, type_hint=orders.OrderMemo)
                if memo.address == moved:
                    return memo
                await asyncio.sleep(0.05)

        memo = await asyncio.wait_for(memo_address(), 5)
        history = await handle.fetch_history()
        await end_order(handle)
    assert memo.items == order.items and memo.decision is None
    costs = actions.count(history.events)
    assert (costs.memo_writes, costs.search_attribute_upserts) == (1, 0), "the address alone was written"


async def test_an_order_rewrites_its_visibility_record_only_around_review_and_at_its_end(env, run_workers):
    """What the order costs Temporal's visibility: the listed state on entering review, on leaving it (with the
    decision in the memo, in the same workflow task) and at the end; one timer, the review window's."""
    script = Script()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.state == orders.OrderState.COMPLETED
    listed = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields["OrderState"].data
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    # Started without the gateway, the first task sets IN_PROGRESS and writes the memo.
    assert [v.decode().strip('"') for v in listed] == ["IN_PROGRESS", "AWAITING_REVIEW", "IN_PROGRESS", "COMPLETED"]
    costs = actions.count(history.events)
    assert costs.visibility_writes == 4 and costs.memo_writes == 2
    assert costs.timers == 1
