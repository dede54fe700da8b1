"""The benchmark's baseline: bare Temporal doing only the brief's steps the way an expert would, and nothing else.

The same seven steps as an order: ReceiveOrder, ValidateOrder, a manual review that waits for an approval
signal inside the same review window, ChargePayment, a ShippingWorkflow child on a task queue of its own
(PreparePackage, DispatchCarrier) and MarkShipped. Each step calls the brief's stub (the real flaky_call()),
with the project's own timeouts and retry policy (common.step_runner.attempt_options), its own hang cut inside the
activity (common.attempts.within_hang_cut) and its workflow-task timeouts. No database, gateway, tracing, payload
encryption, memo, search attribute or compensation.

Its second form (BareOrder.shows_status) adds only what the design asks of Temporal for people to see and steer an
order: the OrderState search attribute and the order's memo (the project's OrderMemo) from the start, the attribute
rewritten on entering review, on leaving it (with the decision in the memo) and at the end, and an approval that is
an update its validator refuses outside the review, sent when a reviewer listing OrderState finds the order
waiting. Still no database, gateway, tracing or encryption: what that part of the design
costs bare Temporal.

    python -m lab.baseline <temporal address> <task queue>     runs its workers (the child's queue: <queue>-shipping)
"""

import asyncio
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from common import vendor_stubs
    from common.attempts import within_hang_cut
    from common.step_runner import WORKFLOW_TASK_TIMEOUT, attempt_options
    from common.temporal import STICKY_TIMEOUT
    from order_service.contract import (
        ORDER_MEMO_KEY,
        ORDER_STATE_ATTRIBUTE,
        Address,
        Budget,
        Item,
        OrderInput,
        OrderMemo,
        OrderState,
        ReviewOutcome,
        order_memo,
    )

APPROVE = "ApproveOrder"
APPROVE_IN_REVIEW = "ApproveInReview"


@dataclass
class BareOrder:
    order_id: str
    shipping_task_queue: str
    shows_status: bool = False


def first_memo(order_id: str, start: datetime) -> OrderMemo:
    """The memo the starter writes (as the gateway does): the project's, for the benchmark's order."""
    items = [Item("ABC", 1), Item("XYZ", 2)]
    address = Address("Ada", "1 Loop Rd", "Springfield", "12345", "US")
    return order_memo(OrderInput(order_id, f"pay-{order_id}", items, address), start)


@dataclass
class BareShipment:
    order_id: str
    seconds_left: float


@activity.defn(name="BareStep")
async def bare_step(step: str) -> None:
    await within_hang_cut(vendor_stubs.flaky_call())


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
    @workflow.init
    def __init__(self, order: BareOrder) -> None:
        self.approved = False
        self.shows_status = order.shows_status
        self.listed = OrderState.IN_PROGRESS

    @workflow.signal(name=APPROVE)
    def approve(self) -> None:
        self.approved = True

    @workflow.update(name=APPROVE_IN_REVIEW)
    def approve_in_review(self) -> None:
        self.approved = True

    @approve_in_review.validator
    def only_in_review(self) -> None:
        if not self.shows_status or self.listed != OrderState.AWAITING_REVIEW:
            raise ApplicationError("not awaiting review")

    def show(self, listed: OrderState, order_id: str = "") -> None:
        """The design's listed state in OrderState; on leaving review, the decision in the memo as well."""
        if not self.shows_status:
            return
        if self.listed == OrderState.AWAITING_REVIEW and listed == OrderState.IN_PROGRESS:
            memo = first_memo(order_id, workflow.info().workflow_start_time)
            memo.decision = ReviewOutcome("approve", "bench", decided_at=workflow.now().isoformat())
            workflow.upsert_memo({ORDER_MEMO_KEY: memo})
        self.listed = listed
        workflow.upsert_search_attributes([ORDER_STATE_ATTRIBUTE.value_set(listed)])

    @workflow.run
    async def run(self, order: BareOrder) -> str:
        state = await self.lifecycle(order)
        self.show(OrderState(state))
        return state

    async def lifecycle(self, order: BareOrder) -> str:
        budget = Budget()
        started = workflow.info().workflow_start_time
        deadline = started + timedelta(seconds=budget.total_seconds - budget.compensation_reserve_seconds)

        def left() -> float:
            return (deadline - workflow.now()).total_seconds()

        try:
            await run_step("ReceiveOrder", left())
            await run_step("ValidateOrder", left())
            self.show(OrderState.AWAITING_REVIEW)
            review_closes = started + timedelta(seconds=budget.review_closes_at_seconds)
            try:
                await workflow.wait_condition(
                    lambda: self.approved, timeout=max((review_closes - workflow.now()).total_seconds(), 0.001)
                )
            except TimeoutError:
                return "REJECTED"
            self.show(OrderState.IN_PROGRESS, order.order_id)
            await run_step("ChargePayment", left())
            await workflow.execute_child_workflow(
                BareShippingWorkflow.run,
                BareShipment(order.order_id, left()),
                id=f"bare-shipment-{order.order_id}",
                task_queue=order.shipping_task_queue,
                task_timeout=WORKFLOW_TASK_TIMEOUT,
            )
            await run_step("MarkShipped", left())
        except (ActivityError, ChildWorkflowError):
            return "FAILED"
        return "COMPLETED"


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    # The project's workflow-task timeouts (what a 15 s budget needs): a task's timers then fire, and cost, within
    # the side's own run rather than the next side's (the SDK's 10 s would outlast it).
    order, shipping = (
        Worker(
            client,
            task_queue=queue,
            workflows=[workflow_class],
            activities=[bare_step],
            sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        )
        for queue, workflow_class in ((task_queue, BareOrderWorkflow), (f"{task_queue}-shipping", BareShippingWorkflow))
    )
    await asyncio.gather(order.run(), shipping.run())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
