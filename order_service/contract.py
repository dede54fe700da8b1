"""What other services may know about the order service: names, ids, the data it exchanges, and the
rules that data follows (the gateway and the workflow check the same ones)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

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
# - the status query answers with a worker round trip, for the Temporal CLI and tests (the gateway reads the
#   describe, the memo and Postgres instead: no worker is asked).
CANCEL_ORDER = "CancelOrder"
UPDATE_ADDRESS = "UpdateAddress"
APPROVE_ORDER = "ApproveOrder"
REJECT_ORDER = "RejectOrder"
STATUS_QUERY = "status"
# The order's listed state (LISTED_STATES), for listing orders by what an operator acts on (temporal workflow list
# -q 'OrderState="AWAITING_REVIEW"', the Web UI, ListOrders). Each change rewrites the visibility record, so it
# changes only around review and at the end; the finer states are in the status a read returns. Search
# attributes are not encrypted: nothing personal goes into one.
ORDER_STATE_ATTRIBUTE = SearchAttributeKey.for_keyword("OrderState")
# The memo key of the OrderMemo: what a read needs that Temporal keeps nowhere a describe returns.
ORDER_MEMO_KEY = "order"

# Why a request was refused: the stable reason (google.rpc.ErrorInfo) sent with FAILED_PRECONDITION.
ORDER_ENDED = "ORDER_ENDED"
ALREADY_DISPATCHED = "ALREADY_DISPATCHED"
BEING_CANCELLED = "BEING_CANCELLED"
NOT_AWAITING_REVIEW = "NOT_AWAITING_REVIEW"
REVIEW_WINDOW_CLOSED = "REVIEW_WINDOW_CLOSED"
ALREADY_DECIDED = "ALREADY_DECIDED"
INVALID_ADDRESS = "INVALID_ADDRESS"
CANCEL_TOO_LATE = "CANCEL_TOO_LATE"


class Step(StrEnum):
    """The order's steps, as they appear in status, logs and the step_attempts table (the activities' names)."""

    RECEIVE = "ReceiveOrder"
    VALIDATE = "ValidateOrder"
    REVIEW = "ManualReview"
    CHARGE = "ChargePayment"
    SHIPPING = "Shipping"  # the shipment, a child workflow of its own
    MARK_SHIPPED = "MarkShipped"
    REFUND = "RefundPayment"
    FINALIZE = "FinalizeOrder"


class OrderState(StrEnum):
    RECEIVED = "RECEIVED"
    VALIDATING = "VALIDATING"
    AWAITING_REVIEW = "AWAITING_REVIEW"
    CHARGING = "CHARGING"
    SHIPPING = "SHIPPING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    # In the OrderState search attribute only: an order past its start and not in review or ended.
    IN_PROGRESS = "IN_PROGRESS"


TERMINAL_STATES = (OrderState.COMPLETED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.FAILED)
LISTED_STATES = (OrderState.IN_PROGRESS, OrderState.AWAITING_REVIEW, *TERMINAL_STATES)
# The state a running step puts the order in (the shipment's steps and MarkShipped are all SHIPPING).
STEP_STATES = {
    Step.RECEIVE: OrderState.RECEIVED,
    Step.VALIDATE: OrderState.VALIDATING,
    Step.REVIEW: OrderState.AWAITING_REVIEW,
    Step.CHARGE: OrderState.CHARGING,
    Step.SHIPPING: OrderState.SHIPPING,
    Step.MARK_SHIPPED: OrderState.SHIPPING,
}


class PaymentStatus(StrEnum):
    CHARGED = "charged"
    REFUNDED = "refunded"


def listed_state(state: str) -> OrderState:
    """The OrderState search attribute's value for an order in `state`."""
    return OrderState(state) if state in LISTED_STATES else OrderState.IN_PROGRESS


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
class Payment:
    payment_id: str
    amount: int
    status: PaymentStatus


@dataclass
class ReviewOutcome:
    verdict: str  # approve | reject
    reviewer: str = ""
    reason: str = ""
    decided_at: str = ""  # ISO-8601, as all times in this contract


@dataclass
class OrderMemo:
    """What a read of the order needs that a describe does not return: the gateway writes it as it starts the order
    (free: part of the start); the workflow rewrites it only when the address changes or review is decided."""

    items: list[Item]
    payment_id: str
    address: Address
    deadline: str
    review_deadline: str
    trace_id: str = ""
    span_id: str = ""
    decision: ReviewOutcome | None = None


@dataclass
class OrderStatus:
    """The order as a reader sees it: built by the workflow (its query, update answers and result), or by the gateway
    from the describe, the memo and Postgres. The steps, their attempts and errors come from the attempt log."""

    order_id: str
    state: OrderState
    step: str  # a Step, or "" once ended
    address: Address
    items: list[Item]
    payment_id: str
    deadline: str
    started_at: str
    review_deadline: str = ""
    decision: ReviewOutcome | None = None
    payment: Payment | None = None
    shipment_status: str = ""
    shipment_address: Address | None = None
    reason: str = ""
    ended_at: str = ""
    trace_id: str = ""
    span_id: str = ""


def order_memo(inp: OrderInput, start: datetime) -> OrderMemo:
    return OrderMemo(
        items=inp.items,
        payment_id=inp.payment_id,
        address=inp.address,
        deadline=(start + timedelta(seconds=inp.budget.total_seconds)).isoformat(),
        review_deadline=(start + timedelta(seconds=inp.budget.review_closes_at_seconds)).isoformat(),
        trace_id=inp.trace_id,
        span_id=inp.span_id,
    )


def status_from_memo(order_id: str, memo: OrderMemo, state: OrderState, step: str, started_at: str) -> OrderStatus:
    """The status as far as the memo tells it; the reader adds what the describe and Postgres say."""
    return OrderStatus(
        order_id=order_id,
        state=state,
        step=step,
        address=memo.address,
        items=memo.items,
        payment_id=memo.payment_id,
        deadline=memo.deadline,
        started_at=started_at,
        review_deadline=memo.review_deadline,
        decision=memo.decision,
        trace_id=memo.trace_id,
        span_id=memo.span_id,
    )


@dataclass
class OrderResult:
    order_id: str
    state: OrderState
    reason: str = ""
    payment: Payment | None = None
    shipment_status: str = ""
    # The final status, as the memo holds it: a caller waiting on the close event needs no describe to show it.
    status: OrderStatus | None = None
