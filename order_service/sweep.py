"""The sweep: settles orders whose workflow ended without its own final write (timed out, terminated, or failed, on a
non-determinism error for one), so that no order is left charged by a workflow that cannot finish.

A Temporal Schedule (`ensure_schedule`, created by the order worker) starts SweepWorkflow on the order task queue
every SWEEP_EVERY. The sweep takes the orders whose row is in no end state and whose workflow has closed other than
COMPLETED, found two ways: those visibility lists as closed so in the last RECENTLY_CLOSED, and those that started
longer ago than any order may run (UNSETTLED_AFTER), each looked up. It settles each:
the shipment is cancelled unless it was dispatched (the shipping service's own CancelShipment, on its queue), what
was charged and not dispatched is refunded, and the order's end state is written (COMPLETED if dispatched, else
FAILED), each step safe to repeat. An order is therefore settled within SWEEP_EVERY (plus visibility's lag) of its
workflow's close, or, if the sweep was not running then, by UNSETTLED_AFTER past its start.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import json

    from temporalio.client import (
        Client,
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
        WorkflowExecutionStatus,
    )
    from temporalio.service import RPCError, RPCStatusCode

    import order_service.contract as contract
    import shipping_service.contract as shipping
    from order_service.repository import OrdersRepository

SWEEP_WORKFLOW = "OrderSweep"
FIND = "FindUnsettledOrders"
SETTLE = "SettleOrder"
SWEEP_EVERY = timedelta(seconds=5)
# Past the 15 s budget, with room for the closing task: an order still unfinished after this is looked up.
UNSETTLED_AFTER = timedelta(seconds=20)
# Orders whose workflow visibility lists as closed this lately are found at once, whatever their age.
RECENTLY_CLOSED = timedelta(minutes=10)
BATCH = 100


@dataclass
class SweepInput:
    shipping_task_queue: str = shipping.TASK_QUEUE
    unsettled_after_seconds: float = UNSETTLED_AFTER.total_seconds()


@dataclass
class FindInput:
    unsettled_after_seconds: float
    limit: int = BATCH


@dataclass
class Unsettled:
    """An order whose workflow closed without writing the order's end."""

    order_id: str
    workflow_status: str
    charged: bool
    items: list[shipping.Item] = field(default_factory=list)
    address: shipping.Address | None = None


@dataclass
class SettleInput:
    order: Unsettled
    shipment_status: str = ""  # the shipping service's answer: dispatched | cancelled, "" when nothing was charged


@dataclass
class Settled:
    order_id: str
    state: contract.OrderState
    reason: str


@dataclass
class SweepResult:
    settled: list[Settled] = field(default_factory=list)


class SweepActivities:
    def __init__(self, repo: OrdersRepository, client: Client):
        self.repo, self.client = repo, client

    @activity.defn(name=FIND)
    async def find_unsettled(self, inp: FindInput) -> list[Unsettled]:
        """Orders with no end whose workflow closed other than COMPLETED: those visibility lists as closed so lately,
        and (whatever visibility says) those older than any order may run, each looked up."""
        closed = await self._recently_closed()
        found = []
        for row in await self.repo.unsettled(inp.unsettled_after_seconds, inp.limit, list(closed)):
            status = closed.get(row["order_id"]) or await self._status(row["order_id"])
            if status in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
                continue  # running: it writes its own end; completed: it has written it; none: nothing to tell
            items, address = _json(row["items"]), _json(row["address"])
            found.append(
                Unsettled(
                    row["order_id"],
                    status.name,
                    row["payment_status"] == "charged",
                    [shipping.Item(**i) for i in items],
                    shipping.Address(**address) if address else None,
                )
            )
        return found

    @activity.defn(name=SETTLE)
    async def settle(self, inp: SettleInput) -> Settled:
        order = inp.order
        ended = f"workflow {order.workflow_status} without its final write; settled by the sweep"
        if inp.shipment_status == shipping.ShipmentStatus.DISPATCHED:
            state, reason = contract.OrderState.COMPLETED, f"dispatched; {ended}"
        else:
            refunded = await self.repo.refund(order.order_id) if order.charged else None
            state, reason = (
                contract.OrderState.FAILED,
                f"{ended}" + (f"; refunded {refunded.amount}" if refunded else ""),
            )
        await self.repo.finalize(order.order_id, state, reason, None)
        activity.logger.warning(
            "order_settled",
            extra={"order_id": order.order_id, "state": state, "reason": reason},
        )
        return Settled(order.order_id, state, reason)

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        return [self.find_unsettled, self.settle]

    async def _recently_closed(self) -> dict[str, WorkflowExecutionStatus]:
        since = (datetime.now(UTC) - RECENTLY_CLOSED).isoformat()
        ended = " OR ".join(f"ExecutionStatus = '{s}'" for s in ("Failed", "TimedOut", "Terminated", "Canceled"))
        query = f"WorkflowType = '{contract.WORKFLOW}' AND CloseTime > '{since}' AND ({ended})"
        return {
            e.id.removeprefix(contract.workflow_id("")): e.status
            async for e in self.client.list_workflows(query, limit=BATCH)
            if e.status is not None
        }

    async def _status(self, order_id: str) -> WorkflowExecutionStatus | None:
        try:
            return (await self.client.get_workflow_handle(contract.workflow_id(order_id)).describe()).status
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return None  # no workflow (its history is gone)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=2))


@workflow.defn(name=SWEEP_WORKFLOW)
class SweepWorkflow:
    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        result = SweepResult()
        unsettled = await workflow.execute_activity_method(
            SweepActivities.find_unsettled,
            FindInput(inp.unsettled_after_seconds),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_RETRY,
        )
        for order in unsettled:
            shipment = ""
            if order.charged and order.address is not None:
                # Cancelled unless dispatched; the answer says which, and both are final.
                shipment = await workflow.execute_activity(
                    shipping.Step.CANCEL,
                    shipping.CancelInput(order.order_id, order.items, order.address, "order settled by the sweep"),
                    result_type=str,
                    task_queue=inp.shipping_task_queue,
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=_RETRY,
                )
            settled = await workflow.execute_activity_method(
                SweepActivities.settle,
                SettleInput(order, shipment),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=_RETRY,
            )
            workflow.logger.info("order_settled", extra={"order_id": order.order_id, "state": settled.state})
            result.settled.append(settled)
        return result


def schedule_id(task_queue: str) -> str:
    return f"order-sweep-{task_queue}"


async def ensure_schedule(client: Client, task_queue: str, shipping_task_queue: str) -> None:
    """The sweep's schedule for this task queue, created once (a worker that finds it there leaves it)."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            SWEEP_WORKFLOW,
            SweepInput(shipping_task_queue),
            id=schedule_id(task_queue),
            task_queue=task_queue,
            execution_timeout=timedelta(minutes=2),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SWEEP_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id(task_queue), schedule)
    except ScheduleAlreadyRunningError:
        pass
