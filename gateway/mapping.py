"""Proto messages ↔ the order contract, and the checks every request passes before anything is written."""

import hashlib
import json
import re
from dataclasses import asdict
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from order_service import contract as c
from orderlife.gateway.v1 import gateway_pb2 as pb

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
MAX_ITEMS = 100
MAX_QTY = 1000
MAX_TEXT = c.MAX_TEXT_LENGTH
RECENT_ERRORS = 10

STATE_TO_PROTO = {
    c.RECEIVED: pb.ORDER_STATE_RECEIVED,
    c.VALIDATING: pb.ORDER_STATE_VALIDATING,
    c.AWAITING_REVIEW: pb.ORDER_STATE_AWAITING_REVIEW,
    c.CHARGING: pb.ORDER_STATE_CHARGING,
    c.SHIPPING_STATE: pb.ORDER_STATE_SHIPPING,
    c.COMPLETED: pb.ORDER_STATE_COMPLETED,
    c.CANCELLED: pb.ORDER_STATE_CANCELLED,
    c.REJECTED: pb.ORDER_STATE_REJECTED,
    c.FAILED: pb.ORDER_STATE_FAILED,
}
PROTO_TO_STATE = {v: k for k, v in STATE_TO_PROTO.items()}


class InvalidArgument(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field


def check_id(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > c.MAX_ID_LENGTH:
        raise InvalidArgument(field, f"is {len(value)} characters; at most {c.MAX_ID_LENGTH}")
    if not ID_PATTERN.fullmatch(value):
        raise InvalidArgument(field, "may hold only letters, digits and . _ : - (starting with a letter or digit)")
    return value


def _text(field: str, value: str, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_TEXT:
        raise InvalidArgument(field, f"is {len(value)} characters; at most {MAX_TEXT}")
    return value


def address_from_proto(msg: pb.Address, field: str = "address") -> c.Address:
    country = _text(f"{field}.country", msg.country).upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise InvalidArgument(f"{field}.country", "must be a two-letter ISO 3166 code")
    return c.Address(
        name=_text(f"{field}.name", msg.name),
        line1=_text(f"{field}.line1", msg.line1),
        line2=_text(f"{field}.line2", msg.line2, required=False),
        city=_text(f"{field}.city", msg.city),
        postal_code=_text(f"{field}.postal_code", msg.postal_code),
        country=country,
    )


def order_input(req: pb.StartOrderRequest) -> c.OrderInput:
    order_id = check_id("order_id", req.order_id)
    payment_id = check_id("payment_id", req.payment_id)
    if not req.items:
        raise InvalidArgument("items", "at least one item is required")
    if len(req.items) > MAX_ITEMS:
        raise InvalidArgument("items", f"{len(req.items)} items; at most {MAX_ITEMS}")
    items = []
    for n, item in enumerate(req.items):
        sku = check_id(f"items[{n}].sku", item.sku)
        if not 1 <= item.qty <= MAX_QTY:
            raise InvalidArgument(f"items[{n}].qty", f"is {item.qty}; must be 1 to {MAX_QTY}")
        items.append(c.Item(sku, item.qty))
    if not req.HasField("address"):
        raise InvalidArgument("address", "is required")
    return c.OrderInput(order_id, payment_id, items, address_from_proto(req.address))


def fingerprint(inp: c.OrderInput) -> str:
    """Identifies the request behind an order, so a repeated start can be told from a conflicting one."""
    body = {"payment_id": inp.payment_id, "items": [asdict(i) for i in inp.items], "address": asdict(inp.address)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def timestamp(value: str | datetime | None) -> Timestamp | None:
    if not value:
        return None
    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(value) if isinstance(value, str) else value)
    return ts


def _address(a: c.Address | None) -> pb.Address | None:
    return pb.Address(**asdict(a)) if a else None


def order_message(status: c.OrderStatus, attempts: list[dict], workflow_id: str) -> pb.Order:
    """The workflow's live status, with the attempt log (every attempt of every step) from the database."""
    per_step = _attempt_counts(attempts)
    steps = []
    for s in status.steps:
        steps.append(pb.Step(name=s.step, status=s.status, attempts=per_step.get(s.step, 0), error=s.error,
                             started_at=timestamp(s.started_at), ended_at=timestamp(s.ended_at)))
        if s.step == c.SHIPPING:
            steps.extend(_child_steps(attempts))
    errors = [
        pb.StepError(step=a["step"], attempt=a["attempt"], kind=a["outcome"], message=a["message"], time=timestamp(a["ts"]))
        for a in attempts if a["outcome"] != "ok"
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
        payment=pb.Payment(payment_id=payment.payment_id, amount=payment.amount, status=payment.status) if payment else None,
        shipment=pb.Shipment(status=status.shipment_status, address=_address(status.shipment_address),
                             dispatch_failures=status.dispatch_failures),
        steps=steps,
        recent_errors=errors,
        started_at=timestamp(status.started_at),
        deadline=timestamp(status.deadline),
        ended_at=timestamp(status.ended_at),
        reason=status.reason,
        trace_id=status.trace_id,
    )


def _child_steps(attempts: list[dict]) -> list[pb.Step]:
    """The shipping child's steps, seen through its attempt log (rows carry their end time and duration)."""
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
            step.ended_at.CopyFrom(timestamp(a["ts"]))
        else:
            step.error = a["message"]
    counts = _attempt_counts([a for a in attempts if a["service"] == "shipping"])
    for step in steps.values():
        step.attempts = counts[step.name]
    return list(steps.values())


def _attempt_counts(attempts: list[dict]) -> dict[str, int]:
    """Attempts per step: the rows logged, or the highest attempt number if some row was lost (the log is
    best effort). Counting rows matters for DispatchCarrier, whose attempt numbers restart each round."""
    rows: dict[str, int] = {}
    highest: dict[str, int] = {}
    for a in attempts:
        rows[a["step"]] = rows.get(a["step"], 0) + 1
        highest[a["step"]] = max(highest.get(a["step"], 0), a["attempt"])
    return {step: max(rows[step], highest[step]) for step in rows}
