"""Proto messages ↔ the order contract, and the checks every request passes before anything is written."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus

from common.attempts import Outcome
from common.validation import Problem, id_problem
from gateway.repository import AttemptRow, OrderFacts
from order_service import contract as orders
from orderlife.gateway.v1 import gateway_pb2 as pb
from shipping_service import contract as shipping

RECENT_ERRORS = 10
T = TypeVar("T")

STATE_TO_PROTO: dict[str, pb.OrderState.ValueType] = {
    orders.OrderState.RECEIVED: pb.ORDER_STATE_RECEIVED,
    orders.OrderState.VALIDATING: pb.ORDER_STATE_VALIDATING,
    orders.OrderState.AWAITING_REVIEW: pb.ORDER_STATE_AWAITING_REVIEW,
    orders.OrderState.CHARGING: pb.ORDER_STATE_CHARGING,
    orders.OrderState.SHIPPING: pb.ORDER_STATE_SHIPPING,
    orders.OrderState.COMPLETED: pb.ORDER_STATE_COMPLETED,
    orders.OrderState.CANCELLED: pb.ORDER_STATE_CANCELLED,
    orders.OrderState.REJECTED: pb.ORDER_STATE_REJECTED,
    orders.OrderState.FAILED: pb.ORDER_STATE_FAILED,
    orders.OrderState.IN_PROGRESS: pb.ORDER_STATE_IN_PROGRESS,
}
PROTO_TO_STATE = {v: k for k, v in STATE_TO_PROTO.items()}
ENDED = frozenset(STATE_TO_PROTO[state] for state in orders.TERMINAL_STATES)
# How a workflow closes when the order's own final write did not happen: the sweep (order_service/sweep.py) writes it.
ENDED_WITHOUT_FINAL_WRITE = frozenset(
    {
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.TIMED_OUT,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.CANCELED,
    }
)
_UNSETTLED = " AND ".join(f"ExecutionStatus != '{s}'" for s in ("Failed", "TimedOut", "Terminated", "Canceled"))


@dataclass
class Running:
    """A step a describe shows running now: the order's pending activity, its shipment, or the shipment's pending
    activity. Temporal counts the attempts (retries are the server's) and keeps the last failure."""

    step: str
    attempt: int = 0
    last_failure: str = ""
    since: datetime | None = None


class InvalidArgument(Exception):
    """A request that breaks the contract's rules; `violations` are (field, what is wrong) pairs."""

    def __init__(self, violations: list[Problem]):
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in violations))
        self.violations = violations


def checked(value: T, problems: list[Problem]) -> T:
    if problems:
        raise InvalidArgument(problems)
    return value


def check_id(field: str, value: str) -> str:
    problem = id_problem(value)
    return checked(value, [(field, problem)] if problem else [])


def address_from_proto(msg: pb.Address) -> orders.Address:
    return orders.Address(
        name=msg.name, line1=msg.line1, line2=msg.line2, city=msg.city, postal_code=msg.postal_code, country=msg.country
    )


def order_input(req: pb.StartOrderRequest) -> orders.OrderInput:
    inp = orders.OrderInput(
        req.order_id, req.payment_id, [orders.Item(i.sku, i.qty) for i in req.items], address_from_proto(req.address)
    )
    problems = inp.problems()
    if not req.HasField("address"):  # named once, not field by field
        problems = [p for p in problems if not p[0].startswith("address.")] + [("address", "is required")]
    return checked(inp, problems)


def address_update(req: pb.UpdateAddressRequest) -> orders.AddressUpdate:
    check_id("order_id", req.order_id)
    if not req.HasField("address"):
        raise InvalidArgument([("address", "is required")])
    address = address_from_proto(req.address)
    return orders.AddressUpdate(checked(address, address.problems()))


def review_decision(req: pb.ApproveOrderRequest | pb.RejectOrderRequest) -> orders.ReviewDecision:
    check_id("order_id", req.order_id)
    decision = orders.ReviewDecision(reviewer=req.reviewer, reason=getattr(req, "reason", ""))
    return checked(decision, decision.problems())


def cancel_request(req: pb.CancelOrderRequest) -> orders.CancelRequest:
    check_id("order_id", req.order_id)
    cancel = orders.CancelRequest(req.reason or "cancelled by request")
    return checked(cancel, cancel.problems())


def listed_state(state: pb.OrderState.ValueType) -> str | None:
    """ListOrders' state filter as the OrderState search attribute holds it (None: every state)."""
    if state == pb.ORDER_STATE_UNSPECIFIED:
        return None
    name = PROTO_TO_STATE.get(state)
    if name is None:
        raise InvalidArgument([("state", f"unknown state {state}")])
    if name not in orders.LISTED_STATES:
        raise InvalidArgument(
            [("state", f"{name} is not listed: list IN_PROGRESS (each order's status says which step it is in)")]
        )
    return name


def visibility_query(state: str | None) -> str:
    """Orders (in one state, when given) as Temporal's visibility finds them, by the OrderState search attribute. A
    workflow that ended without its final write keeps the OrderState it last had: it is listed as FAILED (the
    summary shows the end the sweep wrote), never as in progress."""
    query = f"WorkflowType='{orders.WORKFLOW}'"
    if state is None:
        return query
    by_state = f"{orders.ORDER_STATE_ATTRIBUTE.name}='{state}'"
    if state == orders.OrderState.FAILED:
        return f"{query} AND ({by_state} OR NOT ({_UNSETTLED}))"
    return f"{query} AND {by_state} AND {_UNSETTLED}"


def order_summary(execution: WorkflowExecution, end: tuple[str, str] | None = None) -> pb.ListOrdersResponse.Summary:
    """One listed order; `end` is the order row's end state and reason, read for an ended workflow (for one that
    ended without its final write, the sweep's end, once it has run)."""
    state = execution.typed_search_attributes.get(orders.ORDER_STATE_ATTRIBUTE) or ""
    reason = end[1] if end else ""
    if execution.status in ENDED_WITHOUT_FINAL_WRITE:
        state, reason = end or (state, unsettled_reason(execution.status))
    return pb.ListOrdersResponse.Summary(
        order_id=execution.id.removeprefix(orders.workflow_id("")),
        state=STATE_TO_PROTO.get(state, pb.ORDER_STATE_UNSPECIFIED),
        reason=reason,
        started_at=timestamp(execution.start_time),
        ended_at=timestamp(execution.close_time),
    )


def live_state(listed: str, running: Sequence[Running], attempts: list[AttemptRow]) -> tuple[orders.OrderState, str]:
    """The state and step of an order from its listed state and what runs now; between two steps, the last step the
    attempt log shows."""
    if listed in orders.TERMINAL_STATES:
        return orders.OrderState(listed), ""
    steps = {str(step): state for step, state in orders.STEP_STATES.items()}
    for now in running:  # the order's own activity, or its shipment, comes before the shipment's activity
        if now.step in steps:
            return steps[now.step], now.step
    if listed == orders.OrderState.AWAITING_REVIEW:
        return orders.OrderState.AWAITING_REVIEW, orders.Step.REVIEW
    for a in reversed(attempts):
        if a["step"] in steps:
            return steps[a["step"]], a["step"]
        return orders.OrderState.SHIPPING, orders.Step.SHIPPING  # the shipment's, the only other steps logged
    return orders.OrderState.RECEIVED, orders.Step.RECEIVE


def add_facts(status: orders.OrderStatus, facts: OrderFacts) -> None:
    """The payment and the shipment as their services recorded them."""
    if facts.payment is not None:
        payment_id, amount, paid = facts.payment
        status.payment = orders.Payment(payment_id, amount, orders.PaymentStatus(paid))
    status.shipment_status = facts.shipment_status
    if facts.shipment_address is not None:
        status.shipment_address = orders.Address(**facts.shipment_address)


def unsettled_reason(workflow_status: WorkflowExecutionStatus) -> str:
    return f"workflow {workflow_status.name} without its final write; the sweep settles it"


def settled(
    status: orders.OrderStatus, workflow_status: WorkflowExecutionStatus, end: tuple[str, str, datetime] | None
) -> None:
    """The status of an order whose workflow ended without its final write: the end the sweep wrote, or that the
    order awaits the sweep (its state as the workflow last had it)."""
    if end is None:
        status.reason = unsettled_reason(workflow_status)
        return
    state, status.reason, ended_at = end
    status.state = orders.OrderState(state)
    status.step, status.ended_at = "", ended_at.isoformat()
    if "by the sweep" not in status.reason:  # the order's own end was written; its workflow failed after it
        status.reason = "; ".join(filter(None, [status.reason, f"workflow {workflow_status.name} after the end"]))


def fingerprint(inp: orders.OrderInput) -> str:
    """Identifies the request behind an order, so a repeated start can be told from a conflicting one."""
    body = {"payment_id": inp.payment_id, "items": [asdict(i) for i in inp.items], "address": asdict(inp.address)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def timestamp(value: str | datetime | None) -> Timestamp | None:
    if not value:
        return None
    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(value) if isinstance(value, str) else value)
    return ts


def _address(a: orders.Address | None) -> pb.Address | None:
    return pb.Address(**asdict(a)) if a else None


def order_message(
    status: orders.OrderStatus, attempts: list[AttemptRow], workflow_id: str, running: Sequence[Running] = ()
) -> pb.Order:
    """The order: its status, its steps from the attempt log (every attempt of every step, from the database) and
    what runs now (from a describe; without one, the status's current step)."""
    if not running and status.state not in orders.TERMINAL_STATES and status.step:
        running = [Running(status.step)]
    errors = [
        pb.StepError(
            step=a["step"], attempt=a["attempt"], kind=a["outcome"], message=a["message"], time=timestamp(a["ts"])
        )
        for a in attempts
        if a["outcome"] != Outcome.OK
    ][-RECENT_ERRORS:]
    payment = status.payment
    return pb.Order(
        order_id=status.order_id,
        workflow_id=workflow_id,
        state=STATE_TO_PROTO.get(status.state, pb.ORDER_STATE_UNSPECIFIED),
        current_step=status.step,
        items=[pb.Item(sku=i.sku, qty=i.qty) for i in status.items],
        address=_address(status.address),
        payment_id=status.payment_id,
        payment=pb.Payment(payment_id=payment.payment_id, amount=payment.amount, status=payment.status)
        if payment
        else None,
        shipment=pb.Shipment(
            status=status.shipment_status,
            address=_address(status.shipment_address),
            dispatch_failures=dispatch_failures(attempts, status.shipment_status),
        ),
        steps=_steps(status, attempts, running),
        recent_errors=errors,
        started_at=timestamp(status.started_at),
        deadline=timestamp(status.deadline),
        review_deadline=timestamp(status.review_deadline),
        ended_at=timestamp(status.ended_at),
        reason=status.reason,
        trace_id=status.trace_id,
    )


def _steps(status: orders.OrderStatus, attempts: list[AttemptRow], running: Sequence[Running]) -> list[pb.Step]:
    """The lifecycle's steps so far, in order. An activity's step is its attempts in the log (rows carry their end time
    and duration) and, while it runs, the describe's; the review is the memo's decision; the shipment is its
    status. Once the order has ended, a step that had not succeeded ended with it."""
    steps: dict[str, pb.Step] = {}
    last: dict[str, datetime] = {}
    for a in attempts:
        step = steps.get(a["step"])
        if step is None:
            began = a["ts"] - timedelta(milliseconds=a.get("duration_ms", 0))
            step = steps[a["step"]] = pb.Step(name=a["step"], status="running", started_at=timestamp(began))
        last[a["step"]] = a["ts"]
        if a["outcome"] == Outcome.OK:
            step.status, step.error = "ok", ""
            step.ended_at.FromDatetime(a["ts"])
        elif step.status != "ok":
            step.error = a["message"]
    for name, count in _attempt_counts(attempts).items():
        steps[name].attempts = count
    for now in running:
        step = steps.setdefault(now.step, pb.Step(name=now.step, status="running", started_at=timestamp(now.since)))
        step.status, step.attempts = "running", max(step.attempts, now.attempt)
        step.error = now.last_failure or step.error
    review = _review_step(status, steps.get(orders.Step.VALIDATE))
    if review is not None:
        steps[orders.Step.REVIEW] = review
    shipment = _shipment_step(status, steps)
    if shipment is not None:
        steps[orders.Step.SHIPPING] = shipment
    order: list[str] = [orders.Step.RECEIVE, orders.Step.VALIDATE, orders.Step.REVIEW, orders.Step.CHARGE]
    order += [orders.Step.SHIPPING, shipping.Step.PREPARE, shipping.Step.DISPATCH, orders.Step.MARK_SHIPPED]
    shown = [steps[name] for name in order if name in steps]
    ended = status.state in orders.TERMINAL_STATES
    for step in shown:
        if ended and step.status == "running":
            step.status = "cancelled" if status.state == orders.OrderState.CANCELLED else "failed"
            step.ended_at.CopyFrom(timestamp(last.get(step.name) or status.ended_at) or step.started_at)
    return shown


def _review_step(status: orders.OrderStatus, validate: pb.Step | None) -> pb.Step | None:
    validated = validate is not None and validate.status == "ok"
    if status.decision is None and status.state != orders.OrderState.AWAITING_REVIEW and not validated:
        return None
    step = pb.Step(name=orders.Step.REVIEW, status="running", started_at=validate.ended_at if validate else None)
    decision = status.decision
    if decision is not None:
        step.status = "ok" if decision.verdict == "approve" else "failed"
        step.error = "" if decision.verdict == "approve" else decision.reason or "rejected"
        step.ended_at.FromDatetime(datetime.fromisoformat(decision.decided_at))
    elif status.state == orders.OrderState.REJECTED:
        step.error = status.reason  # the window expired (or the order was rejected before review)
    return step


def _shipment_step(status: orders.OrderStatus, steps: dict[str, pb.Step]) -> pb.Step | None:
    """The order's shipping step: the shipment, from its start (the charge's end) until dispatched or cancelled."""
    started = steps.get(orders.Step.SHIPPING)
    child = [steps[name] for name in (shipping.Step.PREPARE, shipping.Step.DISPATCH) if name in steps]
    if started is None and not child and not status.shipment_status:
        return None
    charge = steps.get(orders.Step.CHARGE)
    step = started or pb.Step(name=orders.Step.SHIPPING, status="running")
    if not step.started_at.seconds:
        step.started_at.CopyFrom(charge.ended_at if charge and charge.ended_at.seconds else child[0].started_at)
    if status.shipment_status == shipping.ShipmentStatus.DISPATCHED:
        step.status = "ok"
        if dispatch := steps.get(shipping.Step.DISPATCH):
            step.ended_at.CopyFrom(dispatch.ended_at)
    elif status.shipment_status == shipping.ShipmentStatus.CANCELLED:
        step.status = "cancelled" if status.state == orders.OrderState.CANCELLED else "failed"
        step.error = status.reason
        step.ended_at.CopyFrom(timestamp(status.ended_at) or (child[-1].ended_at if child else step.started_at))
    return step


def dispatch_failures(attempts: list[AttemptRow], shipment_status: str) -> list[str]:
    """Each failed dispatch round, with its last error: a round is a run of DispatchCarrier attempts from attempt 1,
    failed when another round followed it or the shipment was cancelled after it."""
    rounds: list[list[AttemptRow]] = []
    for a in attempts:
        if a["step"] == shipping.Step.DISPATCH:
            if not rounds or a["attempt"] <= rounds[-1][-1]["attempt"]:
                rounds.append([])
            rounds[-1].append(a)
    failed = [r for n, r in enumerate(rounds) if r[-1]["outcome"] != Outcome.OK]
    if failed and failed[-1] is rounds[-1] and shipment_status != shipping.ShipmentStatus.CANCELLED:
        failed.pop()  # the round still running, or whose failure the parent has not answered yet
    return [f"round {rounds.index(r) + 1}: {r[-1]['message']}" for r in failed]


def _attempt_counts(attempts: list[AttemptRow]) -> dict[str, int]:
    """Attempts per step: the rows logged, or the highest attempt number if some row was lost (the log is
    best effort). Counting rows matters for DispatchCarrier, whose attempt numbers restart each round."""
    rows: dict[str, int] = {}
    highest: dict[str, int] = {}
    for a in attempts:
        rows[a["step"]] = rows.get(a["step"], 0) + 1
        highest[a["step"]] = max(highest.get(a["step"], 0), a["attempt"])
    return {step: max(rows[step], highest[step]) for step in rows}
