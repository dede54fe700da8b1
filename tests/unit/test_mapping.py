"""Proto ↔ contract mapping and request checks, without any server."""

from datetime import UTC
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


def test_status_maps_to_order_message_with_attempts_and_errors():
    status = orders.OrderStatus(
        order_id="o-1",
        state=orders.SHIPPING_STATE,
        step=orders.SHIPPING_STEP,
        address=orders.Address("Ada", "1 Loop Rd", "Springfield", "12345", "US"),
        items=[orders.Item("ABC", 2)],
        payment_id="p-1",
        deadline="2026-01-01T00:00:15+00:00",
        started_at="2026-01-01T00:00:00+00:00",
        steps=[
            orders.StepProgress(
                orders.RECEIVE, "ok", started_at="2026-01-01T00:00:00+00:00", ended_at="2026-01-01T00:00:01+00:00"
            ),
            orders.StepProgress(orders.SHIPPING_STEP, "running", started_at="2026-01-01T00:00:02+00:00"),
        ],
        payment=orders.Payment("p-1", 2, "charged"),
    )
    from datetime import datetime

    at = datetime(2026, 1, 1, tzinfo=UTC)
    attempts = [
        {
            "service": "orders",
            "step": orders.RECEIVE,
            "attempt": 1,
            "outcome": "timeout",
            "message": "timed out",
            "ts": at,
        },
        {"service": "orders", "step": orders.RECEIVE, "attempt": 2, "outcome": "ok", "message": "", "ts": at},
        {
            "service": "shipping",
            "step": "PreparePackage",
            "attempt": 1,
            "outcome": "error",
            "message": "boom",
            "ts": at,
            "duration_ms": 250,
        },
    ]
    order = mapping.order_message(status, attempts, "order-o-1")
    assert order.state == pb.ORDER_STATE_SHIPPING
    assert [(s.name, s.status, s.attempts) for s in order.steps] == [
        (orders.RECEIVE, "ok", 2),
        (orders.SHIPPING_STEP, "running", 0),
        ("PreparePackage", "running", 1),
    ]
    assert [(e.step, e.attempt, e.kind) for e in order.recent_errors] == [
        (orders.RECEIVE, 1, "timeout"),
        ("PreparePackage", 1, "error"),
    ]
    assert order.payment.amount == 2 and order.deadline.seconds - order.started_at.seconds == 15
    prepare = order.steps[2]
    rounds = [
        {"service": "shipping", "step": "DispatchCarrier", "attempt": n, "outcome": "error", "message": "x", "ts": at}
        for n in (1, 2, 1)
    ]
    assert mapping.order_message(status, rounds, "order-o-1").steps[2].attempts == 3, "attempts restart each round"
    assert (at - prepare.started_at.ToDatetime(UTC)).total_seconds() == 0.25 and prepare.error == "boom"
