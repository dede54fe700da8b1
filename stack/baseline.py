"""The benchmark's baseline: bare Temporal doing only the brief's steps the way an expert would, and nothing else.

The same seven steps as an order: ReceiveOrder, ValidateOrder, a manual review that waits for an approval
signal inside the same review window, ChargePayment, a ShippingWorkflow child on a task queue of its own
(PreparePackage, DispatchCarrier) and MarkShipped. Each step calls the brief's stub (the real flaky_call()),
with the project's own timeouts and retry policy (common.budget.attempt_options) and its own hang cut inside the
activity (common.attempts.within_hang_cut). No database, gateway, tracing, payload encryption, status memo,
search attribute or compensation.

    python -m stack.baseline <temporal address> <task queue>     runs its workers (the child's queue: <queue>-shipping)
"""

import asyncio
import sys
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ActivityError, ChildWorkflowError
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from common import brief
    from common.attempts import within_hang_cut
    from common.budget import attempt_options
    from order_service.contract import Budget

APPROVE = "ApproveOrder"


@dataclass
class BareOrder:
    order_id: str
    shipping_task_queue: str


@dataclass
class BareShipment:
    order_id: str
    seconds_left: float


@activity.defn(name="BareStep")
async def bare_step(step: str) -> None:
    await within_hang_cut(brief.flaky_call())


async def run_step(step: str, until_seconds: float) -> None:
    """One flaky step with the project's options: tight start-to-close, 20 ms retries, nothing past the deadline."""
    now = workflow.now()
    until = now + timedelta(seconds=until_seconds)
    await workflow.execute_activity(bare_step, step, **attempt_options(now, until, Budget().steps))


@workflow.defn(name="BareShippingWorkflow")
class BareShippingWorkflow:
    @workflow.run
    async def run(self, shipment: BareShipment) -> str:
        deadline = workflow.now() + timedelta(seconds=shipment.seconds_left)
        for step in ("PreparePackage", "DispatchCarrier"):
            await run_step(step, (deadline - workflow.now()).total_seconds())
        return "DISPATCHED"


@workflow.defn(name="BareOrderWorkflow")
class BareOrderWorkflow:
    def __init__(self) -> None:
        self.approved = False

    @workflow.signal(name=APPROVE)
    def approve(self) -> None:
        self.approved = True

    @workflow.run
    async def run(self, order: BareOrder) -> str:
        budget = Budget()
        started = workflow.info().workflow_start_time
        deadline = started + timedelta(seconds=budget.total_seconds - budget.compensation_reserve_seconds)

        def left() -> float:
            return (deadline - workflow.now()).total_seconds()

        try:
            await run_step("ReceiveOrder", left())
            await run_step("ValidateOrder", left())
            review_closes = started + timedelta(seconds=budget.review_closes_at_seconds)
            try:
                await workflow.wait_condition(
                    lambda: self.approved, timeout=max((review_closes - workflow.now()).total_seconds(), 0.001)
                )
            except TimeoutError:
                return "REJECTED"
            await run_step("ChargePayment", left())
            await workflow.execute_child_workflow(
                BareShippingWorkflow.run,
                BareShipment(order.order_id, left()),
                id=f"bare-shipment-{order.order_id}",
                task_queue=order.shipping_task_queue,
            )
            await run_step("MarkShipped", left())
        except (ActivityError, ChildWorkflowError):
            return "FAILED"
        return "COMPLETED"


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    order = Worker(client, task_queue=task_queue, workflows=[BareOrderWorkflow], activities=[bare_step])
    shipping = Worker(
        client, task_queue=f"{task_queue}-shipping", workflows=[BareShippingWorkflow], activities=[bare_step]
    )
    await asyncio.gather(order.run(), shipping.run())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
