"""OrderWorkflow and ShippingWorkflow in the time-skipping environment, activities mocked by name."""

import asyncio
from contextlib import AsyncExitStack

import pytest
from temporalio.client import WorkflowUpdateFailedError

from order_service import contract as c
from order_service.workflows import OrderWorkflow
from tests.unit.conftest import new_order
from tests.unit.fakes import Script


async def start(env, run_workers, script: Script, order: c.OrderInput, stack: AsyncExitStack):
    tq, workers = run_workers(script, order)
    for w in workers:
        await stack.enter_async_context(w)
    return await env.client.start_workflow(OrderWorkflow.run, order, id=c.workflow_id(order.order_id), task_queue=tq)


async def wait_for_state(handle, state: str, timeout: float = 10.0) -> c.OrderStatus:
    async def poll():
        while True:
            status = await handle.query(OrderWorkflow.status_query)
            if status.state == state:
                return status
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


async def test_happy_path_with_retries_completes(env, run_workers):
    script = Script(**{c.RECEIVE: ["fail", "hang"], c.CHARGE: ["hang", "fail"], "DispatchCarrier": ["fail"]})
    order = new_order()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, order, stack)
        await wait_for_state(handle, c.AWAITING_REVIEW)
        await handle.execute_update(OrderWorkflow.approve_update, c.ReviewDecision("alice"))
        result = await handle.result()
    assert result.state == c.COMPLETED
    assert result.payment.status == "charged"
    assert len(script.calls[c.RECEIVE]) == 3
    assert len(script.calls[c.CHARGE]) == 3
    assert not script.refunded


async def test_review_window_expiry_rejects_without_charge(env, run_workers):
    script = Script()
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        result = await handle.result()
    assert result.state == c.REJECTED
    assert "review window expired" in result.reason
    assert c.CHARGE not in script.calls


async def test_approval_before_review_is_refused(env, run_workers):
    script = Script(**{c.RECEIVE: ["hang"]})
    async with AsyncExitStack() as stack:
        handle = await start(env, run_workers, script, new_order(), stack)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(OrderWorkflow.approve_update, c.ReviewDecision("alice"))
        assert "not awaiting review" in str(refused.value.cause)
        await handle.cancel()
