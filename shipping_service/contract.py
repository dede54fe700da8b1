"""What other services may know about the shipping service: names, ids, and the data it takes and sends.

The shipping service owns the shipment's types (items, the address a carrier can use) and the messages
of its protocol with the order that started it; the order service imports this module, never the reverse.

The dispatch protocol, child → parent: when a round of DispatchCarrier attempts fails, the shipment
signals its parent DISPATCH_FAILED(DispatchFailure) and waits. The parent decides: RETRY_DISPATCH(round)
starts another round, CANCEL_SHIPMENT(reason) ends the shipment cancelled. The parent's handlers are in
order_service/workflows.py (`dispatch_failed`, `_answer_dispatch_failure`).
"""

from dataclasses import dataclass, field
from enum import StrEnum

from common.step_runner import StepTiming
from common.validation import Problem, id_problem, text_problem

TASK_QUEUE = "shipping-tq"
WORKFLOW = "ShippingWorkflow"

# Signals from the parent order.
UPDATE_ADDRESS = "UpdateAddress"
RETRY_DISPATCH = "RetryDispatch"
CANCEL_SHIPMENT = "CancelShipment"
# The signal the shipment sends its parent when a dispatch round fails.
DISPATCH_FAILED = "DispatchFailed"


class Step(StrEnum):
    """The shipment's activities, as they appear in status, logs and the step_attempts table."""

    PREPARE = "PreparePackage"
    DISPATCH = "DispatchCarrier"
    CANCEL = "CancelShipment"


class ShipmentStatus(StrEnum):
    """A shipment's status in the shipments table; a shipment ends DISPATCHED or CANCELLED."""

    PREPARING = "preparing"
    PREPARED = "prepared"
    DISPATCHED = "dispatched"
    CANCELLED = "cancelled"


MAX_QTY = 50


def workflow_id(order_id: str) -> str:
    return f"shipment-{order_id}"


@dataclass
class Item:
    sku: str
    qty: int

    def problems(self, field: str = "item") -> list[Problem]:
        found = []
        if sku := id_problem(self.sku):
            found.append((f"{field}.sku", sku))
        if not 1 <= self.qty <= MAX_QTY:
            found.append((f"{field}.qty", f"is {self.qty}; must be 1 to {MAX_QTY}"))
        return found


@dataclass
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""

    def problems(self, field: str = "address") -> list[Problem]:
        """Why a carrier could not use this address (empty when it can)."""
        found = []
        for name in ("name", "line1", "line2", "city", "postal_code", "country"):
            if problem := text_problem(getattr(self, name), required=name != "line2"):
                found.append((f"{field}.{name}", problem))
        if not any(f == f"{field}.country" for f, _ in found) and not (
            len(self.country) == 2 and self.country.isascii() and self.country.isalpha() and self.country.isupper()
        ):
            found.append((f"{field}.country", f"is {self.country!r}; must be a two-letter ISO 3166 code such as US"))
        return found


@dataclass
class AddressUpdate:
    address: Address


@dataclass
class ShipmentInput:
    order_id: str
    items: list[Item]
    address: Address
    # The parent's deadline for shipping: every activity here ends by then.
    ship_by: str  # ISO-8601
    timing: StepTiming = field(default_factory=StepTiming)
    # Attempts of DispatchCarrier per round before the parent is told DispatchFailed.
    dispatch_attempts_per_round: int = 6


@dataclass
class DispatchFailure:
    reason: str
    round: int = 1


@dataclass
class RetryDispatch:
    round: int


@dataclass
class CancelShipment:
    reason: str


@dataclass
class CancelInput:
    """CANCEL's argument: the order's own sweep (order_service/sweep.py) calls it too, on this service's queue."""

    order_id: str
    items: list[Item]
    address: Address
    reason: str = ""


@dataclass
class ShipmentResult:
    order_id: str
    status: ShipmentStatus  # DISPATCHED or CANCELLED
    address: Address
    reason: str = ""
