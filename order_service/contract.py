"""What other services may know about the order service: names, ids, the data it exchanges, and the
rules that data follows (the gateway and the workflow check the same ones)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio.common import SearchAttributeKey

from common.step_runner import StepTiming
from common.validation import MAX_TEXT_LENGTH, Problem, id_problem, text_problem
from shipping_service.contract import Address, AddressUpdate, DispatchFailure, Item

__all__ = ["Address", "AddressUpdate", "DispatchFailure", "Item"]  # the shipment's types, used in orders too

TASK_QUEUE = "orders-tq"
WORKFLOW = "OrderWorkflow"

# The order's messages, each with one way in per kind of client, under the same rules (order_service.rules):
# - CancelOrder and UpdateAddress are the brief's signals, which the Temporal CLI sends (a refusal is logged), and
#   updates, which the gateway sends (the caller sees a refusal, and the order's status when accepted);
# - ApproveOrder and RejectOrder are updates only: a reviewer must hear that a decision came too late;
# - the status query answers a worker round trip for the Temporal CLI and tests (the gateway reads the memo).
CANCEL_ORDER = "CancelOrder"
UPDATE_ADDRESS = "UpdateAddress"
APPROVE_ORDER = "ApproveOrder"
REJECT_ORDER = "RejectOrder"
STATUS_QUERY = "status"
# The workflow keeps its state in this search attribute, for listing orders by state (temporal workflow list
# -q 'OrderState="AWAITING_REVIEW"', the Web UI, ListOrders). Search attributes are not encrypted: nothing
# personal goes into one.
ORDER_STATE_ATTRIBUTE = SearchAttributeKey.for_keyword("OrderState")
# The memo key the workflow keeps its OrderStatus under, so status reads need no worker round trip.
STATUS_MEMO_KEY = "status"

# Why a request was refused: the stable reason (google.rpc.ErrorInfo) sent with FAILED_PRECONDITION.
ORDER_ENDED = "ORDER_ENDED"
ALREADY_DISPATCHED = "ALREADY_DISPATCHED"
BEING_CANCELLED = "BEING_CANCELLED"
NOT_AWAITING_REVIEW = "NOT_AWAITING_REVIEW"
REVIEW_WINDOW_CLOSED = "REVIEW_WINDOW_CLOSED"
ALREADY_DECIDED = "ALREADY_DECIDED"
INVALID_ADDRESS = "INVALID_ADDRESS"
CANCEL_TOO_LATE = "CANCEL_TOO_LATE"

# Steps, as they appear in status, logs and the step_attempts table.
RECEIVE = "ReceiveOrder"
VALIDATE = "ValidateOrder"
REVIEW = "ManualReview"
CHARGE = "ChargePayment"
SHIPPING_STEP = "Shipping"
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

MAX_ITEMS = 100
MAX_UNITS_PER_ORDER = 50
MAX_REASON_LENGTH = 500


def workflow_id(order_id: str) -> str:
    return f"order-{order_id}"


def item_problems(items: list[Item]) -> list[Problem]:
    if not items:
        return [("items", "at least one item is required")]
    if len(items) > MAX_ITEMS:
        return [("items", f"{len(items)} items; at most {MAX_ITEMS}")]
    found = [p for n, item in enumerate(items) for p in item.problems(f"items[{n}]")]
    units = sum(i.qty for i in items)
    if not found and units > MAX_UNITS_PER_ORDER:
        found.append(("items", f"{units} units in the order; at most {MAX_UNITS_PER_ORDER}"))
    return found


@dataclass
class Budget:
    """How the 15 s from workflow start are spent. Part of the input so a replay sees the same numbers."""

    total_seconds: float = 15.0
    # What follows approval (charge, then shipping with its dispatch rounds) needs this long in 99 % of
    # orders: the benchmark's approval_to_dispatch_seconds p99 at 20 at a time (docs/reports/bench.md). The
    # review window closes that long before the compensation reserve begins, and no sooner.
    after_approval_p99_seconds: float = 4.3
    # Kept free at the end for refund, shipment cancellation and the final write. Sized for a saturated
    # box, where a workflow task can wait seconds for a worker (docs/budget.md): cancelling a shipment and
    # then refunding takes two of them.
    compensation_reserve_seconds: float = 4.0
    # MarkShipped stops this long before the deadline: the final write and the closing workflow task
    # still need time, on a saturated box too (docs/budget.md).
    closing_reserve_seconds: float = 2.0
    steps: StepTiming = field(default_factory=StepTiming)
    # How many times the parent restarts dispatch after the child reports DispatchFailed. A round is six
    # attempts, all failing with flaky_call()'s odds 0.67**6 = 9 %: five rounds all fail about 6 times in a
    # million orders. Time bounds them as well.
    dispatch_retries: int = 4

    @property
    def review_closes_at_seconds(self) -> float:
        """Approval must arrive by this many seconds after start."""
        return self.total_seconds - self.compensation_reserve_seconds - self.after_approval_p99_seconds


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

    def summary(self) -> str:
        """The Web UI's one line for the order: id, items, amount (payment_charged charges one per unit)."""
        items = ", ".join(f"{i.qty} x {i.sku}" for i in self.items)
        return f"Order {self.order_id}: {items}; amount {sum(i.qty for i in self.items)}"

    def problems(self) -> list[Problem]:
        found = [
            (name, p)
            for name, p in (("order_id", id_problem(self.order_id)), ("payment_id", id_problem(self.payment_id)))
            if p
        ]
        return found + item_problems(self.items) + self.address.problems()


@dataclass
class CancelRequest:
    reason: str = ""

    def problems(self) -> list[Problem]:
        problem = text_problem(self.reason, required=False, limit=MAX_REASON_LENGTH)
        return [("reason", problem)] if problem else []


@dataclass
class ReviewDecision:
    reviewer: str = ""
    reason: str = ""

    def problems(self) -> list[Problem]:
        found = [
            ("reviewer", text_problem(self.reviewer, required=False, limit=MAX_TEXT_LENGTH)),
            ("reason", text_problem(self.reason, required=False, limit=MAX_REASON_LENGTH)),
        ]
        return [(name, p) for name, p in found if p]


@dataclass
class StepProgress:
    step: str
    status: str  # running, then ok | failed | cancelled
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
    review_deadline: str = ""
    steps: list[StepProgress] = field(default_factory=list)
    payment: Payment | None = None
    shipment_status: str = ""
    shipment_address: Address | None = None
    dispatch_failures: list[str] = field(default_factory=list)
    reason: str = ""
    ended_at: str = ""
    trace_id: str = ""
    span_id: str = ""


def initial_status(inp: OrderInput, start: datetime) -> OrderStatus:
    """An order's status at its start: what the workflow begins with, and what the gateway puts in the memo as it
    starts the workflow, so the status reads right before the workflow's first task has run. ReceiveOrder runs
    from the start: the workflow schedules it in its first task, which then has nothing new to write to the memo."""
    return OrderStatus(
        order_id=inp.order_id,
        state=RECEIVED,
        step=RECEIVE,
        address=inp.address,
        items=inp.items,
        payment_id=inp.payment_id,
        deadline=(start + timedelta(seconds=inp.budget.total_seconds)).isoformat(),
        review_deadline=(start + timedelta(seconds=inp.budget.review_closes_at_seconds)).isoformat(),
        started_at=start.isoformat(),
        steps=[StepProgress(RECEIVE, "running", started_at=start.isoformat())],
        trace_id=inp.trace_id,
        span_id=inp.span_id,
    )


@dataclass
class OrderResult:
    order_id: str
    state: str
    reason: str = ""
    payment: Payment | None = None
    shipment_status: str = ""
    # The final status, as the memo holds it: a caller waiting on the close event needs no describe to show it.
    status: OrderStatus | None = None
