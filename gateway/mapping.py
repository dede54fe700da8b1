"""Proto messages ↔ the order contract, and the checks every request passes before anything is written."""

import hashlib
import json
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus

from common.validation import Problem, id_problem
from gateway.repository import AttemptRow
from order_service import contract as orders
from orderlife.gateway.v1 import gateway_pb2 as pb

RECENT_ERRORS = 10
T = TypeVar("T")

STATE_TO_PROTO = {
    orders.RECEIVED: pb.ORDER_STATE_RECEIVED,
    orders.VALIDATING: pb.ORDER_STATE_VALIDATING,
    orders.AWAITING_REVIEW: pb.ORDER_STATE_AWAITING_REVIEW,
    orders.CHARGING: pb.ORDER_STATE_CHARGING,
    orders.SHIPPING_STATE: pb.ORDER_STATE_SHIPPING,
    orders.COMPLETED: pb.ORDER_STATE_COMPLETED,
    orders.CANCELLED: pb.ORDER_STATE_CANCELLED,
    orders.REJECTED: pb.ORDER_STATE_REJECTED,
    orders.FAILED: pb.ORDER_STATE_FAILED,
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


def visibility_query(state: str | None) -> str:
    """Orders (in one state, when given) as Temporal's visibility finds them, by the OrderState search attribute. A
    workflow that ended without its final write keeps the OrderState it last had: it is listed as FAILED (the
    summary shows the end the sweep wrote), never as in progress."""
    query = f"WorkflowType='{orders.WORKFLOW}'"
    if state is None:
        return query
    by_state = f"{orders.ORDER_STATE_ATTRIBUTE.name}='{state}'"
    if state == orders.FAILED:
        return f"{query} AND ({by_state} OR NOT ({_UNSETTLED}))"
    return f"{query} AND {by_state} AND {_UNSETTLED}"


def order_summary(
    execution: WorkflowExecution, status: orders.OrderStatus | None, end: tuple[str, str] | None = None
) -> pb.ListOrdersResponse.Summary:
    """One listed order; `end` is the row's end state and reason, read for a workflow that ended without its final
    write (the sweep's end, once it has run)."""
    state = execution.typed_search_attributes.get(orders.ORDER_STATE_ATTRIBUTE) or ""
    reason = status.reason if status else ""
    if execution.status in ENDED_WITHOUT_FINAL_WRITE:
        state, reason = end or (state, unsettled_reason(execution.status))
    return pb.ListOrdersResponse.Summary(
        order_id=execution.id.removeprefix(orders.workflow_id("")),
        state=STATE_TO_PROTO.get(state, pb.ORDER_STATE_UNSPECIFIED),
        reason=reason,
        started_at=timestamp(execution.start_time),
        ended_at=timestamp(execution.close_time),
    )


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
    status.state, status.reason, ended_at = end
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


def order_message(status: orders.OrderStatus, attempts: list[AttemptRow], workflow_id: str) -> pb.Order:
    """The workflow's live status, with the attempt log (every attempt of every step) from the database."""
    per_step = _attempt_counts(attempts)
    steps = []
    for s in status.steps:
        steps.append(
            pb.Step(
                name=s.step,
                status=s.status,
                attempts=per_step.get(s.step, 0),
                error=s.error,
                started_at=timestamp(s.started_at),
                ended_at=timestamp(s.ended_at),
            )
        )
        if s.step == orders.SHIPPING_STEP:
            steps.extend(_child_steps(attempts, status))
    errors = [
        pb.StepError(
            step=a["step"], attempt=a["attempt"], kind=a["outcome"], message=a["message"], time=timestamp(a["ts"])
        )
        for a in attempts
        if a["outcome"] != "ok"
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
            dispatch_failures=status.dispatch_failures,
        ),
        steps=steps,
        recent_errors=errors,
        started_at=timestamp(status.started_at),
        deadline=timestamp(status.deadline),
        review_deadline=timestamp(status.review_deadline),
        ended_at=timestamp(status.ended_at),
        reason=status.reason,
        trace_id=status.trace_id,
    )


def _child_steps(attempts: list[AttemptRow], status: orders.OrderStatus) -> list[pb.Step]:
    """The shipping child's steps, seen through its attempt log (rows carry their end time and duration).
    Once the order has ended, a step with no successful attempt ended with its last one."""
    steps: dict[str, pb.Step] = {}
    for a in attempts:
        if a["service"] != "shipping":
            continue
        step = steps.get(a["step"])
        if step is None:
            began = a["ts"] - timedelta(milliseconds=a.get("duration_ms", 0))
            step = steps[a["step"]] = pb.Step(name=a["step"], status="running", started_at=timestamp(began))
        if a["outcome"] == "ok":
            step.status, step.error = "ok", ""
            step.ended_at.FromDatetime(a["ts"])
        else:
            step.error = a["message"]
    counts = _attempt_counts([a for a in attempts if a["service"] == "shipping"])
    last = {a["step"]: a["ts"] for a in attempts if a["service"] == "shipping"}
    for step in steps.values():
        step.attempts = counts[step.name]
        if step.status == "running" and status.state in orders.TERMINAL_STATES:
            step.status = "cancelled" if status.state == orders.CANCELLED else "failed"
            step.ended_at.FromDatetime(last[step.name])
    return list(steps.values())


def _attempt_counts(attempts: list[AttemptRow]) -> dict[str, int]:
    """Attempts per step: the rows logged, or the highest attempt number if some row was lost (the log is
    best effort). Counting rows matters for DispatchCarrier, whose attempt numbers restart each round."""
    rows: dict[str, int] = {}
    highest: dict[str, int] = {}
    for a in attempts:
        rows[a["step"]] = rows.get(a["step"], 0) + 1
        highest[a["step"]] = max(highest.get(a["step"], 0), a["attempt"])
    return {step: max(rows[step], highest[step]) for step in rows}
