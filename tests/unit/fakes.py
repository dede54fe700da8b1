"""Activities mocked by name, each following a script of outcomes, for time-skipping workflow tests."""

import asyncio
from collections import defaultdict
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from order_service import contract as orders
from order_service.activities import ChargeInput, FinalizeInput, MarkShippedInput, OrderRef, ReceiveInput, ValidateInput
from shipping_service import contract as shipping
from shipping_service.activities import DispatchInput, PackageInput
from shipping_service.contract import CancelInput

# For the test workers (tests/unit/conftest.py, tests/unit/test_step_runner.py): a hang() hears a cancel within this.
HEARTBEAT_THROTTLE = timedelta(milliseconds=20)


async def hang() -> None:
    """An attempt that never ends on its own: only its start-to-close (the server times it out) or a cancel ends it.

    It heartbeats so that the worker hears of a cancel the workflow requested, and the attempt ends as cancelled while
    the workflow still runs. An attempt that keeps running after a cancel holds the time-skipping server's clock for
    good (an activity whose cancel was requested is never timed out there, and its end is not recorded once the
    workflow has closed): every later test in the session then waits out its timers in real time. The workflows
    cancel with TRY_CANCEL and do not wait for the attempt to end, so this changes nothing they see."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_THROTTLE.total_seconds())


class Script:
    """outcomes[step] is a list consumed one per attempt: "ok", "fail", "hang", "invalid", "slow" (succeeds after
    0.2 s), then "ok". A charge may also go through and then lose its result: "charged-hang" (hangs after charging),
    "charged-fail" (fails after charging)."""

    def __init__(self, **outcomes: list[str]):
        self.outcomes = {k: list(v) for k, v in outcomes.items()}
        self.calls: dict[str, list] = defaultdict(list)
        self.refunded = False
        self.charged = False
        self.shipment = ""

    async def play(self, step: str, arg) -> None:
        self.calls[step].append(arg)
        plan = self.outcomes.get(step, [])
        outcome = plan.pop(0) if plan else "ok"
        if outcome.startswith("charged-"):
            self.charged = True
            outcome = outcome.removeprefix("charged-")
        if outcome == "slow":
            await asyncio.sleep(0.2)
        if outcome == "fail":
            raise RuntimeError("Forced failure for testing")
        if outcome == "hang":
            await hang()
        if outcome == "invalid":
            raise ApplicationError("No items to validate", type="ValueError", non_retryable=True)

    def activities(self) -> list:
        @activity.defn(name=orders.Step.RECEIVE)
        async def receive(inp: ReceiveInput) -> None:
            await self.play(orders.Step.RECEIVE, inp)

        @activity.defn(name=orders.Step.VALIDATE)
        async def validate(inp: ValidateInput) -> None:
            await self.play(orders.Step.VALIDATE, inp)

        @activity.defn(name=orders.Step.CHARGE)
        async def charge(inp: ChargeInput) -> orders.Payment:
            await self.play(orders.Step.CHARGE, inp)
            self.charged = True
            return orders.Payment(inp.payment_id, sum(i.qty for i in inp.items), orders.PaymentStatus.CHARGED)

        @activity.defn(name=orders.Step.MARK_SHIPPED)
        async def mark_shipped(inp: MarkShippedInput) -> None:
            await self.play(orders.Step.MARK_SHIPPED, inp)

        @activity.defn(name=orders.Step.REFUND)
        async def refund(inp: OrderRef) -> orders.Payment | None:
            await self.play(orders.Step.REFUND, inp)
            if not self.charged:
                return None
            self.refunded = True
            return orders.Payment("p", 1, orders.PaymentStatus.REFUNDED)

        @activity.defn(name=orders.Step.FINALIZE)
        async def finalize(inp: FinalizeInput) -> None:
            await self.play(orders.Step.FINALIZE, inp)

        @activity.defn(name=shipping.Step.PREPARE)
        async def prepare(inp: PackageInput) -> None:
            await self.play(shipping.Step.PREPARE, inp)

        @activity.defn(name=shipping.Step.DISPATCH)
        async def dispatch(inp: DispatchInput) -> None:
            await self.play(shipping.Step.DISPATCH, inp)
            self.shipment = "dispatched"

        @activity.defn(name=shipping.Step.CANCEL)
        async def cancel(inp: CancelInput) -> str:
            await self.play(shipping.Step.CANCEL, inp)
            if self.shipment != "dispatched":
                self.shipment = "cancelled"
            return self.shipment

        return [receive, validate, charge, mark_shipped, refund, finalize, prepare, dispatch, cancel]
