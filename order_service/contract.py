"""What other services may know about the order service: names, ids and the data it exchanges."""

from dataclasses import dataclass, field

TASK_QUEUE = "orders-tq"
WORKFLOW = "OrderWorkflow"

# Workflow updates (the caller sees a refusal) and signals (fire and forget) share these names.
CANCEL_ORDER = "CancelOrder"
UPDATE_ADDRESS = "UpdateAddress"
APPROVE_ORDER = "ApproveOrder"
REJECT_ORDER = "RejectOrder"
# Sent by the shipping child when dispatch fails.
DISPATCH_FAILED = "DispatchFailed"
STATUS_QUERY = "status"
# The memo key the workflow keeps its OrderStatus under, so status reads need no worker round trip.
STATUS_MEMO = "status"

# Steps, as they appear in status, logs and the step_attempts table.
RECEIVE = "ReceiveOrder"
VALIDATE = "ValidateOrder"
REVIEW = "ManualReview"
CHARGE = "ChargePayment"
SHIPPING = "Shipping"
MARK_SHIPPED = "MarkShipped"
REFUND = "RefundPayment"
FINALIZE = "FinalizeOrder"

# States. The last four are terminal.
RECEIVED = "RECEIVED"
VALIDATING = "VALIDATING"
AWAITING_REVIEW = "AWAITING_REVIEW"
CHARGING = "CHARGING"
SHIPPING_STATE = "SHIPPING"
COMPLETED = "COMPLETED"
CANCELLED = "CANCELLED"
REJECTED = "REJECTED"
FAILED = "FAILED"
TERMINAL_STATES = (COMPLETED, CANCELLED, REJECTED, FAILED)

MAX_ID_LENGTH = 64
MAX_TEXT_LENGTH = 200


def workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


def order_id_from_workflow_id(wf_id: str) -> str:
    return wf_id.removeprefix("order-")


@dataclass
class Item:
    sku: str
    qty: int


@dataclass
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""

    def problem(self) -> str | None:
        """Why a carrier could not use this address; for input that did not pass the gateway (e.g. the CLI)."""
        for name in ("name", "line1", "city", "postal_code", "country"):
            if not getattr(self, name).strip():
                return f"address.{name} is required"
        for name in ("name", "line1", "line2", "city", "postal_code"):
            if len(getattr(self, name)) > MAX_TEXT_LENGTH:
                return f"address.{name} is longer than {MAX_TEXT_LENGTH} characters"
        if len(self.country) != 2 or not self.country.isalpha() or not self.country.isupper():
            return "address.country must be a two-letter ISO 3166 code"
        return None


@dataclass
class Budget:
    """How the 15 s from workflow start are spent. Part of the input so a replay sees the same numbers."""

    total_seconds: float = 15.0
    # Approval must arrive by this many seconds after start, leaving the rest for charge and shipping.
    review_closes_at_seconds: float = 7.0
    # Kept free at the end for refund, shipment cancellation and the final write. Sized for a saturated
    # box, where each workflow task waits up to about 2 s for a worker (stack.bench at concurrency 50):
    # cancelling a shipment and then refunding takes two of them.
    compensation_reserve_seconds: float = 4.0
    # MarkShipped stops this long before the deadline: the final write and the closing workflow task
    # still need time (with 1 s, one order in 300 closed at 15.1 s at concurrency 50).
    closing_reserve_seconds: float = 2.0
    # Start-to-close of one attempt of a flaky step. The worker cuts the stub's 300 s hang at this
    # minus the time kept for the attempt's database writes (common.attempts).
    attempt_timeout_seconds: float = 0.45
    retry_initial_interval_seconds: float = 0.02
    retry_max_interval_seconds: float = 0.08
    # How many times the parent restarts dispatch after the child reports DispatchFailed. A round is six
    # attempts, all failing with flaky_call()'s odds 0.67**6 = 9 %: five rounds all fail about 6 times in a
    # million orders (three: 7 in 10 000, with most of the budget left). Time bounds them as well.
    dispatch_retries: int = 4


@dataclass
class OrderInput:
    order_id: str
    payment_id: str
    items: list[Item]
    address: Address
    budget: Budget = field(default_factory=Budget)
    shipping_task_queue: str = "shipping-tq"
    # The trace and span of the request that started the order: shown in its status, and the link
    # target for later calls about the order.
    trace_id: str = ""
    span_id: str = ""


@dataclass
class CancelRequest:
    reason: str = ""


@dataclass
class AddressUpdate:
    address: Address


@dataclass
class ReviewDecision:
    reviewer: str = ""
    reason: str = ""


@dataclass
class DispatchFailure:
    reason: str
    round: int = 1


@dataclass
class StepProgress:
    step: str
    status: str  # running | ok | failed | skipped
    attempts: int = 0
    started_at: str = ""  # ISO-8601, as all times in this contract
    ended_at: str = ""
    error: str = ""


@dataclass
class Payment:
    payment_id: str
    amount: int
    status: str  # charged | refunded


@dataclass
class OrderStatus:
    order_id: str
    state: str
    step: str
    address: Address
    items: list[Item]
    payment_id: str
    deadline: str
    started_at: str
    steps: list[StepProgress] = field(default_factory=list)
    payment: Payment | None = None
    shipment_status: str = ""
    shipment_address: Address | None = None
    dispatch_failures: list[str] = field(default_factory=list)
    reason: str = ""
    ended_at: str = ""
    trace_id: str = ""
    span_id: str = ""


@dataclass
class OrderResult:
    order_id: str
    state: str
    reason: str = ""
    payment: Payment | None = None
    shipment_status: str = ""
