"""Activities mocked by name, each following a script of outcomes, for time-skipping workflow tests."""

import asyncio
from collections import defaultdict

from temporalio import activity
from temporalio.exceptions import ApplicationError

from order_service import contract as c
from order_service.activities import ChargeInput, FinalizeInput, MarkShippedInput, OrderRef, ReceiveInput, ValidateInput
from shipping_service import contract as s
from shipping_service.activities import CancelInput, DispatchInput, PackageInput


class Script:
    """outcomes[step] is a list consumed one per attempt: "ok", "fail", "hang", "invalid"; then "ok"."""

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
        if outcome == "fail":
            raise RuntimeError("Forced failure for testing")
        if outcome == "hang":
            await asyncio.sleep(300)
        if outcome == "invalid":
            raise ApplicationError("No items to validate", type="ValueError", non_retryable=True)

    def activities(self) -> list:
        @activity.defn(name=c.RECEIVE)
        async def receive(inp: ReceiveInput) -> None:
            await self.play(c.RECEIVE, inp)

        @activity.defn(name=c.VALIDATE)
        async def validate(inp: ValidateInput) -> None:
            await self.play(c.VALIDATE, inp)

        @activity.defn(name=c.CHARGE)
        async def charge(inp: ChargeInput) -> c.Payment:
            await self.play(c.CHARGE, inp)
            self.charged = True
            return c.Payment(inp.payment_id, sum(i.qty for i in inp.items), "charged")

        @activity.defn(name=c.MARK_SHIPPED)
        async def mark_shipped(inp: MarkShippedInput) -> None:
            await self.play(c.MARK_SHIPPED, inp)

        @activity.defn(name=c.REFUND)
        async def refund(inp: OrderRef) -> c.Payment | None:
            await self.play(c.REFUND, inp)
            if not self.charged:
                return None
            self.refunded = True
            return c.Payment("p", 1, "refunded")

        @activity.defn(name=c.FINALIZE)
        async def finalize(inp: FinalizeInput) -> None:
            await self.play(c.FINALIZE, inp)

        @activity.defn(name=s.PREPARE)
        async def prepare(inp: PackageInput) -> None:
            await self.play(s.PREPARE, inp)

        @activity.defn(name=s.DISPATCH)
        async def dispatch(inp: DispatchInput) -> None:
            await self.play(s.DISPATCH, inp)
            self.shipment = "dispatched"

        @activity.defn(name=s.CANCEL)
        async def cancel(inp: CancelInput) -> str:
            await self.play(s.CANCEL, inp)
            if self.shipment != "dispatched":
                self.shipment = "cancelled"
            return self.shipment

        return [receive, validate, charge, mark_shipped, refund, finalize, prepare, dispatch, cancel]
