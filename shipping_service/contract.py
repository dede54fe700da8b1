"""What other services may know about the shipping service: names, ids and the data it exchanges."""

from dataclasses import dataclass
from order_service.contract import Address, Item

TASK_QUEUE = "shipping-tq"
WORKFLOW = "ShippingWorkflow"

# Signals from the parent order.
UPDATE_ADDRESS = "UpdateAddress"
RETRY_DISPATCH = "RetryDispatch"
CANCEL_SHIPMENT = "CancelShipment"

PREPARE = "PreparePackage"
DISPATCH = "DispatchCarrier"
CANCEL = "CancelShipment"

# Shipment outcomes.
DISPATCHED = "dispatched"
CANCELLED = "cancelled"


def workflow_id(order_id: str) -> str:
    return f"shipment-{order_id}"


@dataclass
class ShipmentInput:
    order_id: str
    items: list[Item]
    address: Address
    # The parent's deadline for shipping: every activity here ends by then.
    ship_by: str  # ISO-8601
    attempt_timeout_seconds: float = 0.45
    retry_initial_interval_seconds: float = 0.02
    retry_max_interval_seconds: float = 0.08
    # Attempts of DispatchCarrier per round before the parent is told DispatchFailed.
    dispatch_attempts_per_round: int = 6


@dataclass
class RetryDispatch:
    round: int


@dataclass
class CancelShipment:
    reason: str


@dataclass
class ShipmentResult:
    order_id: str
    status: str  # dispatched | cancelled
    address: Address
    dispatch_rounds: int
    reason: str = ""
