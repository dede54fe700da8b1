"""Proto ↔ contract mapping and request checks, without any server."""

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway import mapping
from order_service import contract as orders
from orderlife.gateway.v1 import gateway_pb2 as pb

ADDRESS = pb.Address(name="Ada", line1="1 Loop Rd", city="Springfield", postal_code="12345", country="US")


def request(**overrides) -> pb.StartOrderRequest:
    fields: dict[str, Any] = dict(order_id="o-1", payment_id="p-1", items=[pb.Item(sku="ABC", qty=2)], address=ADDRESS)
    fields.update(overrides)
    return pb.StartOrderRequest(**fields)


def test_start_request_becomes_order_input():
    inp = mapping.order_input(request())
    assert inp == orders.OrderInput(
        "o-1", "p-1", [orders.Item("ABC", 2)], orders.Address("Ada", "1 Loop Rd", "Springfield", "12345", "US")
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"order_id": ""}, "order_id: is required"),
        ({"order_id": "é"}, "order_id: may hold only"),
        ({"payment_id": "p" * 65}, "payment_id: is 65 characters; at most 64"),
        ({"items": [pb.Item(sku="A", qty=1)] * 101}, "items: 101 items; at most 100"),
        ({"items": [pb.Item(sku="A", qty=51)]}, "items[0].qty: is 51; must be 1 to 50"),
        ({"items": [pb.Item(sku="A", qty=30), pb.Item(sku="B", qty=21)]}, "items: 51 units in the order; at most 50"),
        (
            {"address": pb.Address(name="A\x00da", line1="1", city="X", postal_code="1", country="US")},
            "address.name: holds a NUL character",
        ),
        (
            {"address": pb.Address(name="Ada", line1="1", city="X", postal_code="1", country="us")},
            "address.country: is 'us'; must be a two-letter ISO 3166 code",
        ),
        (
            {"address": pb.Address(name=" Ada", line1="1", city="X", postal_code="1", country="US")},
            "address.name: starts or ends with white space",
        ),
        (
            {"address": pb.Address(name="Ada", line1="1", city="X", postal_code="", country="US")},
            "address.postal_code: is required",
        ),
        (
            {"address": pb.Address(name="x" * 201, line1="1", city="X", postal_code="1", country="US")},
            "address.name: is 201 characters",
        ),
    ],
)
def test_bad_requests_name_the_field(overrides, message):
    with pytest.raises(mapping.InvalidArgument) as err:
        mapping.order_input(request(**overrides))
    assert str(err.value).startswith(message)


def test_every_bad_field_is_named():
    bad = request(
        order_id="",
        items=[pb.Item(sku="A", qty=0)],
        address=pb.Address(name="", line1="1", city="X", postal_code="1", country="USA"),
    )
    with pytest.raises(mapping.InvalidArgument) as err:
        mapping.order_input(bad)
    assert [field for field, _ in err.value.violations] == [
        "order_id",
        "items[0].qty",
        "address.name",
        "address.country",
    ]


def test_the_workflow_and_the_gateway_apply_the_same_rules():
    """What the gateway accepts, ValidateOrder and a signalled address accept: one rule set, the contract's."""
    inp = mapping.order_input(request(items=[pb.Item(sku="A", qty=50)]))
    assert inp.problems() == [] and orders.item_problems(inp.items) == [] and inp.address.problems() == []
    assert orders.item_problems([orders.Item("A", 51)]) == [("items[0].qty", "is 51; must be 1 to 50")]


def test_fingerprint_tells_same_request_from_different():
    same = mapping.fingerprint(mapping.order_input(request()))
    assert same == mapping.fingerprint(mapping.order_input(request()))
    assert same != mapping.fingerprint(mapping.order_input(request(items=[pb.Item(sku="ABC", qty=3)])))


def _row(service: str, step: str, attempt: int, outcome: str, message: str = "", **more) -> dict:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "service": service,
        "step": step,
        "attempt": attempt,
        "outcome": outcome,
        "message": message,
        "ts": at,
        **more,
    }


def _status(**fields) -> orders.OrderStatus:
    defaults = dict(
        order_id="o-1",
        state=orders.OrderState.SHIPPING,
        step=orders.Step.SHIPPING,
        address=orders.Address("Ada", "1 Loop Rd", "Springfield", "12345", "US"),
        items=[orders.Item("ABC", 2)],
        payment_id="p-1",
        deadline="2026-01-01T00:00:15+00:00",
        started_at="2026-01-01T00:00:00+00:00",
    )
    return orders.OrderStatus(**{**defaults, **fields})


def test_status_maps_to_order_message_with_attempts_and_errors():
    status = _status(
        decision=orders.ReviewOutcome("approve", "ada", decided_at="2026-01-01T00:00:01+00:00"),
        payment=orders.Payment("p-1", 2, orders.PaymentStatus.CHARGED),
    )
    attempts = [
        _row("orders", orders.Step.RECEIVE, 1, "timeout", "timed out"),
        _row("orders", orders.Step.RECEIVE, 2, "ok"),
        _row("orders", orders.Step.VALIDATE, 1, "ok"),
        _row("orders", orders.Step.CHARGE, 1, "ok"),
        _row("shipping", "PreparePackage", 1, "error", "boom", duration_ms=250),
    ]
    running = [mapping.Running(orders.Step.SHIPPING), mapping.Running("PreparePackage", 2, "boom again")]
    order = mapping.order_message(status, attempts, "order-o-1", running)
    assert order.state == pb.ORDER_STATE_SHIPPING
    assert [(s.name, s.status, s.attempts) for s in order.steps] == [
        (orders.Step.RECEIVE, "ok", 2),
        (orders.Step.VALIDATE, "ok", 1),
        (orders.Step.REVIEW, "ok", 0),
        (orders.Step.CHARGE, "ok", 1),
        (orders.Step.SHIPPING, "running", 0),
        ("PreparePackage", "running", 2),
    ]
    assert [(e.step, e.attempt, e.kind) for e in order.recent_errors] == [
        (orders.Step.RECEIVE, 1, "timeout"),
        ("PreparePackage", 1, "error"),
    ]
    assert order.payment.amount == 2 and order.deadline.seconds - order.started_at.seconds == 15
    prepare = order.steps[5]
    assert (attempts[0]["ts"] - prepare.started_at.ToDatetime(UTC)).total_seconds() == 0.25
    assert prepare.error == "boom again", "the describe's last failure, newer than the log's"
    rounds = [_row("shipping", "DispatchCarrier", n, "error", f"x{n}") for n in (1, 2, 1)]
    dispatch = mapping.order_message(status, rounds, "order-o-1").steps[-1]
    assert (dispatch.name, dispatch.attempts) == ("DispatchCarrier", 3), "attempts restart each round"
    assert mapping.dispatch_failures(rounds, "") == ["round 1: x2"], "the round still running is not a failure yet"
    assert mapping.dispatch_failures(rounds, "cancelled") == ["round 1: x2", "round 2: x1"]


def test_an_ended_order_shows_the_step_it_ended_in_and_the_review_as_decided():
    status = _status(
        state=orders.OrderState.CANCELLED, step="", reason="cancelled by request", ended_at="2026-01-01T00:00:05+00:00"
    )
    attempts = [_row("orders", orders.Step.RECEIVE, 1, "ok"), _row("orders", orders.Step.VALIDATE, 1, "ok")]
    order = mapping.order_message(status, attempts, "order-o-1")
    assert [(s.name, s.status) for s in order.steps] == [
        (orders.Step.RECEIVE, "ok"),
        (orders.Step.VALIDATE, "ok"),
        (orders.Step.REVIEW, "cancelled"),
    ]
    assert order.steps[2].ended_at.ToDatetime(UTC) == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    status.state, status.reason = orders.OrderState.REJECTED, "rejected in review: no stock"
    status.decision = orders.ReviewOutcome("reject", "ada", "no stock", "2026-01-01T00:00:03+00:00")
    review = mapping.order_message(status, attempts, "order-o-1").steps[2]
    assert (review.status, review.error) == ("failed", "no stock")


def test_live_state_comes_from_what_runs_now_then_the_listed_state_then_the_log():
    charged = [_row("orders", orders.Step.CHARGE, 1, "ok")]
    charging = [mapping.Running(orders.Step.CHARGE, 3)]
    assert mapping.live_state(orders.OrderState.IN_PROGRESS, charging, []) == (
        orders.OrderState.CHARGING,
        orders.Step.CHARGE,
    )
    shipping_now = [mapping.Running(orders.Step.SHIPPING), mapping.Running("DispatchCarrier", 2)]
    assert mapping.live_state(orders.OrderState.IN_PROGRESS, shipping_now, charged) == (
        orders.OrderState.SHIPPING,
        orders.Step.SHIPPING,
    )
    assert mapping.live_state(orders.OrderState.AWAITING_REVIEW, [], []) == (
        orders.OrderState.AWAITING_REVIEW,
        orders.Step.REVIEW,
    )
    assert mapping.live_state(orders.OrderState.IN_PROGRESS, [], charged) == (
        orders.OrderState.CHARGING,
        orders.Step.CHARGE,
    ), "between steps"
    assert mapping.live_state(orders.OrderState.IN_PROGRESS, [], []) == (
        orders.OrderState.RECEIVED,
        orders.Step.RECEIVE,
    )
    assert mapping.live_state(orders.OrderState.COMPLETED, [], charged) == (orders.OrderState.COMPLETED, "")


def test_listing_takes_the_listed_states_and_names_the_finer_ones_wrong():
    assert mapping.listed_state(pb.ORDER_STATE_UNSPECIFIED) is None
    assert mapping.listed_state(pb.ORDER_STATE_IN_PROGRESS) == orders.OrderState.IN_PROGRESS
    assert mapping.listed_state(pb.ORDER_STATE_AWAITING_REVIEW) == orders.OrderState.AWAITING_REVIEW
    with pytest.raises(mapping.InvalidArgument, match="state: CHARGING is not listed: list IN_PROGRESS"):
        mapping.listed_state(pb.ORDER_STATE_CHARGING)
