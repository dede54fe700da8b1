"""Order activities: unpack, call the brief's stub inside one recorded attempt, persist."""

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from common import vendor_stubs
from common.attempts import call_stub, run_attempt
from order_service import contract
from order_service.repository import SCHEMA, Event, OrderConflict, OrdersRepository, PaymentConflict, check_payment

T = TypeVar("T")


@dataclass
class OrderRef:
    order_id: str


@dataclass
class ReceiveInput:
    order_id: str
    payment_id: str
    items: list[contract.Item]
    address: contract.Address


@dataclass
class ValidateInput:
    order_id: str
    items: list[contract.Item]


@dataclass
class ChargeInput:
    order_id: str
    payment_id: str
    items: list[contract.Item]


@dataclass
class MarkShippedInput:
    order_id: str
    address: contract.Address


@dataclass
class FinalizeInput:
    order_id: str
    state: contract.OrderState
    reason: str = ""
    # The order as received: its row is written now if it ended before ReceiveOrder wrote it.
    received: ReceiveInput | None = None


def _as_received(inp: ReceiveInput | None) -> tuple[str, list[contract.Item], contract.Address] | None:
    return None if inp is None else (inp.payment_id, inp.items, inp.address)


def _order(order_id: str, items: list[contract.Item]) -> dict[str, Any]:
    return {"order_id": order_id, "items": [asdict(i) for i in items]}


class OrderActivities:
    def __init__(self, repo: OrdersRepository):
        self.repo = repo

    async def _attempt(self, order_id: str, work: Callable[[], Awaitable[T]]) -> T:
        return await run_attempt(self.repo.pool, SCHEMA, order_id, work)

    @activity.defn(name=contract.Step.RECEIVE)
    async def receive_order(self, inp: ReceiveInput) -> None:
        async def work() -> None:
            await call_stub(vendor_stubs.order_received(inp.order_id))
            try:
                await self.repo.receive(inp.order_id, inp.payment_id, inp.items, inp.address)
            except OrderConflict as err:
                raise ApplicationError(str(err), type="OrderConflict", non_retryable=True) from None

        await self._attempt(inp.order_id, work)

    @activity.defn(name=contract.Step.VALIDATE)
    async def validate_order(self, inp: ValidateInput) -> None:
        async def work() -> None:
            await call_stub(vendor_stubs.order_validated(_order(inp.order_id, inp.items)))
            problems = contract.item_problems(inp.items)
            if problems:
                raise ValueError("; ".join(f"{field}: {problem}" for field, problem in problems))
            await self.repo.set_state(inp.order_id, contract.OrderState.AWAITING_REVIEW, Event.VALIDATED)

        await self._attempt(inp.order_id, work)

    @activity.defn(name=contract.Step.CHARGE)
    async def charge_payment(self, inp: ChargeInput) -> contract.Payment:
        async def work() -> contract.Payment:
            try:
                # A charge that already happened is not repeated: return the first result.
                existing = await self.repo.find_payment(inp.payment_id)
                check_payment(existing, inp.order_id, None)
                if existing is not None:
                    return contract.Payment(existing["payment_id"], existing["amount"], existing["status"])
                order = _order(inp.order_id, inp.items)
                charged = await call_stub(vendor_stubs.payment_charged(order, inp.payment_id, self.repo))
                return await self.repo.record_charge(inp.payment_id, inp.order_id, charged["amount"])
            except PaymentConflict as err:
                raise ApplicationError(str(err), type="PaymentConflict", non_retryable=True) from None

        return await self._attempt(inp.order_id, work)

    @activity.defn(name=contract.Step.MARK_SHIPPED)
    async def mark_shipped(self, inp: MarkShippedInput) -> None:
        async def work() -> None:
            await call_stub(vendor_stubs.order_shipped({"order_id": inp.order_id, "address": asdict(inp.address)}))
            await self.repo.mark_shipped(inp.order_id, inp.address)

        await self._attempt(inp.order_id, work)

    # Compensation and bookkeeping: no stub in the brief, so no flaky_call(); plain retried DB writes.

    @activity.defn(name=contract.Step.REFUND)
    async def refund_payment(self, inp: OrderRef) -> contract.Payment | None:
        return await self._attempt(inp.order_id, lambda: self.repo.refund(inp.order_id))

    @activity.defn(name=contract.Step.FINALIZE)
    async def finalize_order(self, inp: FinalizeInput) -> None:
        await self._attempt(
            inp.order_id, lambda: self.repo.finalize(inp.order_id, inp.state, inp.reason, _as_received(inp.received))
        )

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        return [
            self.receive_order,
            self.validate_order,
            self.charge_payment,
            self.mark_shipped,
            self.refund_payment,
            self.finalize_order,
        ]
