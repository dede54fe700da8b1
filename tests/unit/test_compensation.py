"""An order that was charged never ends neither shipped nor refunded: the refund follows the charge attempt, not
its result, whatever became of that result; and a cancel at each step boundary ends the order as the design says.
Time-skipping environment, activities scripted by name (tests/unit/fakes.py)."""

from contextlib import AsyncExitStack

import pytest
from temporalio.client import WorkflowUpdateFailedError

from order_service import contract as orders
from order_service.workflows import OrderWorkflow
from tests.unit.conftest import new_order
from tests.unit.fakes import Script
from tests.unit.test_order_workflow import start, wait_for_state

HANGS = ["hang"] * 1000


async def approve(handle) -> None:
    await wait_for_state(handle, orders.OrderState.AWAITING_REVIEW)
    await handle.execute_update(OrderWorkflow.approve_update, orders.ReviewDecision("alice"))


async def test_a_charge_that_went_through_and_then_hung_is_refunded_on_cancel(env, run_workers):
    script = Script(ChargePayment=["charged-hang", *HANGS])
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        await wait_for_state(handle, orders.OrderState.CHARGING)
        while not script.charged:
            await wait_for_state(handle, orders.OrderState.CHARGING, timeout=1)
        cancelled = await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("changed my mind"))
        result = await handle.result()
    assert script.charged, "the charge went through"
    assert cancelled.state == result.state == orders.OrderState.CANCELLED
    assert script.refunded


async def test_a_charge_that_lands_after_the_cancel_is_waited_for_and_refunded(env, run_workers):
    script = Script(ChargePayment=["slow"])
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        await wait_for_state(handle, orders.OrderState.CHARGING)
        cancelled = await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("changed my mind"))
        result = await handle.result()
    assert script.charged, "the charge attempt in flight went through after the cancel"
    assert cancelled.state == result.state == orders.OrderState.CANCELLED
    assert script.refunded


async def test_a_charge_whose_result_is_lost_every_time_is_refunded_when_the_order_runs_out_of_time(env, run_workers):
    script = Script(ChargePayment=["charged-fail"] * 1000)
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        result = await handle.result()
    assert script.charged and len(script.calls[orders.Step.CHARGE]) > 1
    assert result.state == orders.OrderState.FAILED and result.reason.startswith("ChargePayment")
    assert script.refunded


async def test_a_charge_that_failed_after_charging_and_then_succeeded_ships_without_a_refund(env, run_workers):
    script = Script(ChargePayment=["charged-fail", "ok"])
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        result = await handle.result()
    assert len(script.calls[orders.Step.CHARGE]) == 2
    assert result.state == orders.OrderState.COMPLETED and result.payment.status == "charged"
    assert not script.refunded and script.shipment == "dispatched"


# The step an order is in when the cancel comes (that step's attempts hang), and how it must end.
BOUNDARIES = [
    (orders.Step.RECEIVE, orders.OrderState.RECEIVED, False),
    (orders.Step.VALIDATE, orders.OrderState.VALIDATING, False),
    (orders.Step.CHARGE, orders.OrderState.CHARGING, False),
    ("PreparePackage", orders.OrderState.SHIPPING, True),
]


@pytest.mark.parametrize(("step", "state", "charged"), BOUNDARIES)
async def test_a_cancel_in_each_step_before_dispatch_ends_the_order_cancelled(env, run_workers, step, state, charged):
    script = Script(**{step: HANGS})
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        if state in (orders.OrderState.CHARGING, orders.OrderState.SHIPPING):
            await approve(handle)
        await wait_for_state(handle, state)
        cancelled = await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("changed my mind"))
        result = await handle.result()
    assert cancelled.state == result.state == orders.OrderState.CANCELLED
    assert script.charged == charged and script.refunded == charged
    assert "DispatchCarrier" not in script.calls
    if charged:
        assert script.shipment == "cancelled"


async def test_a_cancel_after_dispatch_is_refused_and_the_order_ships(env, run_workers):
    script = Script(MarkShipped=["hang", "hang"])
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        await approve(handle)
        while script.shipment != "dispatched":
            await wait_for_state(handle, orders.OrderState.SHIPPING, timeout=1)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(OrderWorkflow.cancel_update, orders.CancelRequest("too late"))
        result = await handle.result()
    assert "dispatched" in str(refused.value.cause)
    assert result.state == orders.OrderState.COMPLETED and not script.refunded
