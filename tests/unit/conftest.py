import asyncio
import uuid
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from order_service import contract as orders
from order_service.workflows import OrderWorkflow
from shipping_service.workflows import ShippingWorkflow
from tests.conftest import venv_bin
from tests.unit.fakes import HEARTBEAT_THROTTLE, Script


@pytest_asyncio.fixture(scope="session")
async def env():
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_bin("temporal-test-server")
    ) as env:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={orders.ORDER_STATE_ATTRIBUTE.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
            )
        )
        yield env


@workflow.defn(name="ClockProbe", sandboxed=False)
class ClockProbe:
    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(days=1))


@pytest_asyncio.fixture(autouse=True)
async def clock_left_free(request):
    """After a test on the shared time-skipping server: that server still skips time. A test that leaves an activity
    pending for good (an order terminated, or cancelled, with an attempt in flight; a hang that never hears its
    cancel) stops it skipping for the rest of the session, and every later test then waits out its timers in real
    time (issue 31)."""
    yield
    if "env" not in request.fixturenames:
        return
    env = request.getfixturevalue("env")
    queue = f"clock-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=queue, workflows=[ClockProbe], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await env.client.start_workflow(ClockProbe.run, id=queue, task_queue=queue)
        try:
            await asyncio.wait_for(handle.result(), 5)
        except TimeoutError:
            await handle.terminate()
            pytest.fail("the time-skipping server no longer skips time: this test left an activity or a task pending")


def new_order(**overrides) -> orders.OrderInput:
    order_id = overrides.pop("order_id", f"u-{uuid.uuid4().hex[:12]}")
    return orders.OrderInput(
        order_id=order_id,
        payment_id=overrides.pop("payment_id", f"pay-{order_id}"),
        items=overrides.pop("items", [orders.Item("ABC", 2)]),
        address=overrides.pop("address", orders.Address("Ada", "1 Loop Rd", "Springfield", "12345", "US")),
        **overrides,
    )


@pytest.fixture
def run_workers(env):
    """Workers for both workflows on queues of this test's own, with the script's activities."""

    def start(script: Script, order: orders.OrderInput):
        suffix = uuid.uuid4().hex[:8]
        order.shipping_task_queue = f"ship-{suffix}"
        orders_tq = f"orders-{suffix}"
        acts = script.activities()
        workers = [
            Worker(
                env.client,
                task_queue=queue,
                workflows=[workflow],
                activities=acts,
                default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
            )
            for queue, workflow in ((orders_tq, OrderWorkflow), (order.shipping_task_queue, ShippingWorkflow))
        ]
        return orders_tq, workers

    return start
