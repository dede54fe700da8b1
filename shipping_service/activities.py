"""Shipping activities: unpack, call the brief's stub inside one recorded attempt, persist."""

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from common import vendor_stubs
from common.attempts import call_stub, run_attempt
from shipping_service import contract
from shipping_service.contract import Address, CancelInput, Item
from shipping_service.repository import SCHEMA, ShipmentCancelled, ShippingRepository

T = TypeVar("T")


@dataclass
class PackageInput:
    order_id: str
    items: list[Item]
    address: Address


@dataclass
class DispatchInput:
    order_id: str
    items: list[Item]
    address: Address
    round: int = 1


def _order(order_id: str, items: list[Item], address: Address) -> dict[str, Any]:
    return {"order_id": order_id, "items": [asdict(i) for i in items], "address": asdict(address)}


class ShippingActivities:
    def __init__(self, repo: ShippingRepository):
        self.repo = repo

    async def _attempt(self, order_id: str, work: Callable[[], Awaitable[T]]) -> T:
        return await run_attempt(self.repo.pool, SCHEMA, order_id, work)

    @activity.defn(name=contract.Step.PREPARE)
    async def prepare_package(self, inp: PackageInput) -> None:
        async def work() -> None:
            await call_stub(vendor_stubs.package_prepared(_order(inp.order_id, inp.items, inp.address)))
            await self.repo.prepared(inp.order_id, inp.items, inp.address)

        await self._attempt(inp.order_id, work)

    @activity.defn(name=contract.Step.DISPATCH)
    async def dispatch_carrier(self, inp: DispatchInput) -> None:
        async def work() -> None:
            # The carrier gets the address current when this attempt was scheduled.
            order = _order(inp.order_id, inp.items, inp.address)
            message = await call_stub(vendor_stubs.carrier_dispatched(order))
            try:
                await self.repo.dispatched(inp.order_id, inp.address, inp.round, message)
            except ShipmentCancelled as err:
                raise ApplicationError(str(err), type="ShipmentCancelled", non_retryable=True) from None

        await self._attempt(inp.order_id, work)

    # Compensation: no stub in the brief, so no flaky_call(); a plain retried DB write.
    @activity.defn(name=contract.Step.CANCEL)
    async def cancel_shipment(self, inp: CancelInput) -> str:
        return await self._attempt(
            inp.order_id, lambda: self.repo.cancel(inp.order_id, inp.items, inp.address, inp.reason)
        )

    def all(self) -> list[Callable[..., Awaitable[Any]]]:
        return [self.prepare_package, self.dispatch_carrier, self.cancel_shipment]
