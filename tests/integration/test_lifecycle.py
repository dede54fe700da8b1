"""The order lifecycle through the gateway, on the real stack, with scripted flaky_call() outcomes."""

import asyncio
import time
from collections import Counter

import grpc
import pytest
from google.rpc.error_details_pb2 import BadRequest, ErrorInfo
from temporalio.service import RPCError, RPCStatusCode

from order_service import contract as orders
from orderlife.gateway.v1 import gateway_pb2 as pb
from tests.integration.conftest import detail, new_order_id, start_request, wait_for, wait_review, wait_terminal
from tests.support import consistency

pytestmark = pytest.mark.integration
NEW_ADDRESS = pb.Address(name="Ada", line1="2 Moved Ave", city="Shelbyville", postal_code="54321", country="US")


async def rows(stack, sql: str, *args):
    return [dict(r) for r in await stack.admin.fetch(sql, *args)]


async def approve(stack, order_id: str) -> None:
    await wait_review(stack, order_id)
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="tester"))


async def test_happy_path_survives_failures_and_hangs(stack):
    order_id = new_order_id()
    stack.flaky.script(
        order_id, ReceiveOrder=["fail", "hang", "ok"], ChargePayment=["hang", "ok"], DispatchCarrier=["fail", "ok"]
    )
    await stack.gateway.StartOrder(start_request(order_id))
    await approve(stack, order_id)
    order = await wait_terminal(stack, order_id)

    assert order.state == pb.ORDER_STATE_COMPLETED
    steps = {s.name: s for s in order.steps}
    assert steps["ReceiveOrder"].attempts == 3
    assert steps["ChargePayment"].attempts == 2
    assert steps["DispatchCarrier"].attempts == 2
    kinds = {(e.step, e.attempt, e.kind) for e in order.recent_errors}
    assert {("ReceiveOrder", 1, "error"), ("ReceiveOrder", 2, "timeout"), ("ChargePayment", 1, "timeout")} <= kinds
    assert order.payment.status == "charged" and order.payment.amount == 3
    assert order.shipment.status == "dispatched"
    assert (order.ended_at.ToDatetime() - order.started_at.ToDatetime()).total_seconds() <= 15
    [db_order] = await rows(stack, "SELECT state FROM orders.orders WHERE order_id = $1", order_id)
    assert db_order["state"] == "COMPLETED"
    assert len(await rows(stack, "SELECT * FROM orders.payments WHERE order_id = $1", order_id)) == 1
    [shipment] = await rows(stack, "SELECT status FROM shipping.shipments WHERE order_id = $1", order_id)
    assert shipment["status"] == "dispatched"
    # The attempt log: one row an attempt; a step's last one `ok` (written with the step's own write).
    log = await rows(
        stack,
        "SELECT step, outcome FROM orders.step_attempts WHERE order_id = $1 "
        "UNION ALL SELECT step, outcome FROM shipping.step_attempts WHERE order_id = $1",
        order_id,
    )
    assert Counter((r["step"], r["outcome"]) for r in log) == {
        ("ReceiveOrder", "error"): 1,
        ("ReceiveOrder", "timeout"): 1,
        ("ReceiveOrder", "ok"): 1,
        ("ValidateOrder", "ok"): 1,
        ("ChargePayment", "timeout"): 1,
        ("ChargePayment", "ok"): 1,
        ("PreparePackage", "ok"): 1,
        ("DispatchCarrier", "error"): 1,
        ("DispatchCarrier", "ok"): 1,
        ("MarkShipped", "ok"): 1,
    }


async def test_watch_streams_until_the_order_ends(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(order_id))
    states = []
    async for update in stack.gateway.WatchOrder(pb.WatchOrderRequest(order_id=order_id)):
        states.append(update.order.state)
        if update.order.state == pb.ORDER_STATE_AWAITING_REVIEW and pb.ORDER_STATE_AWAITING_REVIEW not in states[:-1]:
            await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id))
    assert states[-1] == pb.ORDER_STATE_COMPLETED
    assert pb.ORDER_STATE_AWAITING_REVIEW in states


async def test_wait_returns_the_final_status_once_the_order_ends(stack):
    order_id = new_order_id("wait")
    stack.flaky.script(order_id)
    started = (await stack.gateway.StartOrder(start_request(order_id))).order
    # The status is there from the start (the gateway puts it in the memo), deadlines included.
    assert started.state == pb.ORDER_STATE_RECEIVED
    assert started.deadline.seconds - started.started_at.seconds == 15
    assert started.review_deadline.ToDatetime() < started.deadline.ToDatetime()
    waiting = asyncio.ensure_future(stack.gateway.WaitOrder(pb.WaitOrderRequest(order_id=order_id)))
    await wait_review(stack, order_id)
    assert not waiting.done(), "WaitOrder answers only once the order has ended"
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id))
    ended = (await waiting).order
    assert ended.state == pb.ORDER_STATE_COMPLETED and ended.shipment.status == "dispatched"
    again = (await stack.gateway.WaitOrder(pb.WaitOrderRequest(order_id=order_id))).order
    assert again == (await stack.gateway.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stack.gateway.WaitOrder(pb.WaitOrderRequest(order_id=new_order_id("nobody")))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_order_cancelled_before_it_was_received_is_recorded_cancelled(stack):
    """Found by the soak: a cancel that beat ReceiveOrder's first successful attempt ended the order CANCELLED
    with no row in the database. The final write records the order whether or not ReceiveOrder got to."""
    order_id = new_order_id("early")
    stack.flaky.script(order_id, ReceiveOrder=["hang"])  # ReceiveOrder never gets through
    await stack.gateway.StartOrder(start_request(order_id))
    cancelled = await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="changed my mind"))
    assert cancelled.order.state == pb.ORDER_STATE_CANCELLED
    [row] = await rows(stack, "SELECT state, reason, payment_id FROM orders.orders WHERE order_id = $1", order_id)
    assert row == {"state": "CANCELLED", "reason": cancelled.order.reason, "payment_id": f"pay-{order_id}"}
    assert await consistency.problems(stack.admin, stack.client, {order_id: "CANCELLED"}) == []


async def test_cancel_in_review_charges_nothing(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(order_id))
    await wait_review(stack, order_id)
    resp = await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="changed my mind"))
    assert resp.order.state == pb.ORDER_STATE_CANCELLED
    assert resp.order.reason == "changed my mind"
    assert await rows(stack, "SELECT * FROM orders.payments WHERE order_id = $1", order_id) == []
    assert await rows(stack, "SELECT * FROM shipping.shipments WHERE order_id = $1", order_id) == []
    [db_order] = await rows(stack, "SELECT state FROM orders.orders WHERE order_id = $1", order_id)
    assert db_order["state"] == "CANCELLED"


async def test_cancel_after_payment_refunds_and_cancels_shipment(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id, PreparePackage=["hang"] * 5 + ["ok"])
    await stack.gateway.StartOrder(start_request(order_id))
    await approve(stack, order_id)
    await wait_for(stack, order_id, lambda o: o.state == pb.ORDER_STATE_SHIPPING)
    resp = await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="too slow"))

    assert resp.order.state == pb.ORDER_STATE_CANCELLED
    assert resp.order.payment.status == "refunded"
    [payment] = await rows(stack, "SELECT status, refunded_at FROM orders.payments WHERE order_id = $1", order_id)
    assert payment["status"] == "refunded" and payment["refunded_at"] is not None
    [shipment] = await rows(stack, "SELECT status FROM shipping.shipments WHERE order_id = $1", order_id)
    assert shipment["status"] == "cancelled"


async def test_address_update_in_review_reaches_the_carrier(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(order_id))
    await wait_review(stack, order_id)
    resp = await stack.gateway.UpdateAddress(pb.UpdateAddressRequest(order_id=order_id, address=NEW_ADDRESS))
    assert resp.order.address.line1 == "2 Moved Ave"
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id))
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_COMPLETED
    [shipment] = await rows(
        stack, "SELECT address->>'line1' AS line1 FROM shipping.shipments WHERE order_id = $1", order_id
    )
    assert shipment["line1"] == "2 Moved Ave"


async def test_the_review_desk_shows_what_changed_while_an_order_waits(stack):
    """The desk's stream sends the order again when its status changes in review (its decoded copy is reused only
    while the memo it came from is unchanged), and drops it once decided."""
    order_id = new_order_id()
    stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(order_id))
    desk = stack.gateway.WatchReviews(pb.WatchReviewsRequest())

    async def next_queue(predicate) -> list[pb.Order]:
        async with asyncio.timeout(20):
            async for update in desk:
                mine = [o for o in update.waiting if o.order_id == order_id]
                if predicate(mine):
                    return mine
        raise AssertionError("the review desk's stream ended")

    try:
        [waiting] = await next_queue(lambda mine: len(mine) == 1)
        assert waiting.address.line1 == "1 Loop Rd"
        await stack.gateway.UpdateAddress(pb.UpdateAddressRequest(order_id=order_id, address=NEW_ADDRESS))
        [moved] = await next_queue(lambda mine: len(mine) == 1 and mine[0].address.line1 != "1 Loop Rd")
        assert moved.address.line1 == "2 Moved Ave"
        await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="tester"))
        assert await next_queue(lambda mine: not mine) == []
    finally:
        desk.cancel()


async def test_address_update_while_package_is_prepared_reaches_the_carrier(stack):
    order_id = new_order_id()
    # Hung attempts keep the package in preparation for about a second, so the update lands there (one in
    # flight during dispatch would reach only a later round) even on a loaded machine.
    stack.flaky.script(order_id, PreparePackage=["hang"] * 8 + ["ok"])
    await stack.gateway.StartOrder(start_request(order_id))
    await approve(stack, order_id)
    await wait_for(stack, order_id, lambda o: o.state == pb.ORDER_STATE_SHIPPING)
    await stack.gateway.UpdateAddress(pb.UpdateAddressRequest(order_id=order_id, address=NEW_ADDRESS))
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_COMPLETED
    assert order.shipment.address.line1 == "2 Moved Ave"
    [shipment] = await rows(
        stack, "SELECT address->>'line1' AS line1 FROM shipping.shipments WHERE order_id = $1", order_id
    )
    assert shipment["line1"] == "2 Moved Ave"


async def test_review_rejected_charges_nothing(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(order_id))
    await wait_review(stack, order_id)
    await stack.gateway.RejectOrder(pb.RejectOrderRequest(order_id=order_id, reviewer="bob", reason="fraud risk"))
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_REJECTED
    assert "fraud risk" in order.reason
    assert await rows(stack, "SELECT * FROM orders.payments WHERE order_id = $1", order_id) == []


async def test_review_window_expiry_rejects_without_charge(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(order_id))
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_REJECTED
    assert "review window expired" in order.reason
    assert await rows(stack, "SELECT * FROM orders.payments WHERE order_id = $1", order_id) == []
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id))
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already ended" in (late.value.details() or "")


async def test_an_order_that_bypassed_the_gateway_is_held_to_the_same_rules_by_validate_order(stack):
    """The gateway refuses 51 units at the door; an order started on Temporal directly (its CLI, a script)
    meets the same contract rule in ValidateOrder, which rejects it without retrying."""
    order_id = new_order_id()
    refused = start_request(order_id, items=[pb.Item(sku="BULK", qty=30), pb.Item(sku="MORE", qty=21)])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.StartOrder(refused)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 50" in (err.value.details() or "")
    stack.flaky.script(order_id, ValidateOrder=["fail", "ok"])
    inp = orders.OrderInput(
        order_id,
        f"pay-{order_id}",
        [orders.Item("BULK", 30), orders.Item("MORE", 21)],
        orders.Address("Ada", "1 Loop Rd", "Springfield", "12345", "US"),
        shipping_task_queue=stack.gateway_settings.shipping_task_queue,
    )
    await stack.client.start_workflow(
        orders.WORKFLOW, inp, id=orders.workflow_id(order_id), task_queue=stack.gateway_settings.order_task_queue
    )
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_REJECTED
    assert "items: 51 units in the order; at most 50" in order.reason
    validate = {s.name: s for s in order.steps}["ValidateOrder"]
    assert validate.attempts == 2, "ValueError is not retried"
    assert await rows(stack, "SELECT * FROM orders.payments WHERE order_id = $1", order_id) == []


async def test_dispatch_failure_signals_parent_which_retries(stack):
    order_id = new_order_id()
    # One round of DispatchCarrier is 6 attempts; all fail, then the retried round succeeds.
    stack.flaky.script(order_id, DispatchCarrier=["fail"] * 6 + ["ok"])
    await stack.gateway.StartOrder(start_request(order_id))
    await approve(stack, order_id)
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_COMPLETED
    assert len(order.shipment.dispatch_failures) == 1
    assert "round 1" in order.shipment.dispatch_failures[0]
    [shipment] = await rows(
        stack, "SELECT status, dispatch_rounds FROM shipping.shipments WHERE order_id = $1", order_id
    )
    assert shipment == {"status": "dispatched", "dispatch_rounds": 2}


async def test_dispatch_that_never_works_fails_the_order_and_refunds(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id, DispatchCarrier=["fail"])
    await stack.gateway.StartOrder(start_request(order_id))
    await approve(stack, order_id)
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_FAILED
    assert order.payment.status == "refunded"
    assert len(order.shipment.dispatch_failures) == 5
    [shipment] = await rows(stack, "SELECT status FROM shipping.shipments WHERE order_id = $1", order_id)
    assert shipment["status"] == "cancelled"
    assert (order.ended_at.ToDatetime() - order.started_at.ToDatetime()).total_seconds() <= 15


async def test_second_order_with_a_used_payment_id_is_not_charged(stack):
    first, second = new_order_id(), new_order_id()
    for order_id in (first, second):
        stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(first, payment_id=f"shared-{first}"))
    await approve(stack, first)
    await wait_terminal(stack, first)
    await stack.gateway.StartOrder(start_request(second, payment_id=f"shared-{first}"))
    order = await wait_terminal(stack, second)
    assert order.state == pb.ORDER_STATE_REJECTED
    assert "already used" in order.reason
    payments = await rows(stack, "SELECT order_id FROM orders.payments WHERE payment_id = $1", f"shared-{first}")
    assert payments == [{"order_id": first}]


async def test_duplicate_start_returns_the_same_order_and_conflict_is_refused(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id)
    first = await stack.gateway.StartOrder(start_request(order_id))
    again = await stack.gateway.StartOrder(start_request(order_id))
    assert not first.already_existed and again.already_existed
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await stack.gateway.StartOrder(start_request(order_id, items=[pb.Item(sku="OTHER", qty=1)]))
    assert conflict.value.code() == grpc.StatusCode.ALREADY_EXISTS
    runs = [w async for w in stack.client.list_workflows(f"WorkflowId = 'order-{order_id}'")]
    assert len(runs) == 1
    await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id))


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"order_id": ""}, "order_id"),
        ({"order_id": "x" * 65}, "order_id"),
        ({"order_id": "bad id; DROP TABLE"}, "order_id"),
        ({"payment_id": ""}, "payment_id"),
        ({"items": []}, "items"),
        ({"items": [pb.Item(sku="ABC", qty=0)]}, "items[0].qty"),
        ({"items": [pb.Item(sku="ABC", qty=-3)]}, "items[0].qty"),
        ({"items": [pb.Item(sku="", qty=1)]}, "items[0].sku"),
        ({"address": pb.Address(name="Ada", line1="", city="X", postal_code="1", country="US")}, "address.line1"),
        (
            {"address": pb.Address(name="Ada", line1="1 Rd", city="X", postal_code="1", country="USA")},
            "address.country",
        ),
        ({"address": None}, "address"),
    ],
)
async def test_bad_start_requests_are_refused_and_write_nothing(stack, overrides, field):
    fields = {"order_id": new_order_id("bad"), **overrides}
    request = start_request(**{k: v for k, v in fields.items() if v is not None})
    if "address" in overrides and overrides["address"] is None:
        request.ClearField("address")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.gateway.StartOrder(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(f"{field}:")
    with pytest.raises(RPCError) as missing:
        await stack.client.get_workflow_handle(f"order-{request.order_id}").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert await rows(stack, "SELECT * FROM orders.orders WHERE order_id = $1", request.order_id) == []


async def test_refused_transitions_name_the_reason(stack):
    order_id = new_order_id()
    stack.flaky.script(order_id, ReceiveOrder=["hang"] * 3 + ["ok"])
    await stack.gateway.StartOrder(start_request(order_id))
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id))
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not awaiting review" in (early.value.details() or "")
    await approve(stack, order_id)
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_COMPLETED
    for call in (
        stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id)),
        stack.gateway.UpdateAddress(pb.UpdateAddressRequest(order_id=order_id, address=NEW_ADDRESS)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await call
        assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "already ended COMPLETED" in (late.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=new_order_id("nobody")))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def listed(stack, state: pb.OrderState.ValueType, order_id: str, present: bool = True, timeout: float = 5.0):
    """The order appears in (or leaves) the listing of `state` within `timeout`: visibility lags a little."""
    deadline = time.monotonic() + timeout
    while True:
        page = await stack.gateway.ListOrders(pb.ListOrdersRequest(state=state, page_size=100))
        assert all(o.state == state for o in page.orders)
        if (order_id in [o.order_id for o in page.orders]) == present:
            return page
        assert time.monotonic() < deadline, f"{order_id} {'not ' if present else ''}listed as {state} after {timeout}s"
        await asyncio.sleep(0.05)


async def test_list_orders_by_state_while_steps_run(stack):
    """VALIDATING and CHARGING last as long as their step: a read shows them (from the describe), while a listing
    finds both IN_PROGRESS, and is refused a finer state with the field named."""
    validating, charging = new_order_id("validating"), new_order_id("charging")
    stack.flaky.script(validating, ValidateOrder=["hang"] * 8 + ["ok"])
    stack.flaky.script(charging, ChargePayment=["hang"] * 8 + ["ok"])
    await stack.gateway.StartOrder(start_request(validating))
    await stack.gateway.StartOrder(start_request(charging))
    await wait_review(stack, charging)
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=charging, reviewer="test"))
    for order_id, state, step in (
        (validating, pb.ORDER_STATE_VALIDATING, "ValidateOrder"),
        (charging, pb.ORDER_STATE_CHARGING, "ChargePayment"),
    ):
        order = await wait_for(stack, order_id, lambda o, state=state: o.state == state)
        assert order.current_step == step
        running = {s.name: s for s in order.steps}[step]
        assert running.status == "running" and running.attempts >= 1, "the attempt comes from the pending activity"
        await listed(stack, pb.ORDER_STATE_IN_PROGRESS, order_id)
    await listed(stack, pb.ORDER_STATE_AWAITING_REVIEW, charging, present=False)
    with pytest.raises(grpc.aio.AioRpcError) as finer:
        await stack.gateway.ListOrders(pb.ListOrdersRequest(state=pb.ORDER_STATE_CHARGING))
    assert finer.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "state: CHARGING is not listed: list IN_PROGRESS" in (finer.value.details() or "")
    await wait_review(stack, validating)
    await stack.gateway.RejectOrder(pb.RejectOrderRequest(order_id=validating, reviewer="test"))
    assert (await wait_terminal(stack, charging)).state == pb.ORDER_STATE_COMPLETED
    await listed(stack, pb.ORDER_STATE_COMPLETED, charging)


async def test_list_orders_awaiting_review_page_by_page(stack):
    order_ids = [new_order_id() for _ in range(3)]
    for order_id in order_ids:
        stack.flaky.script(order_id)
        await stack.gateway.StartOrder(start_request(order_id))
    for order_id in order_ids:
        await wait_review(stack, order_id)
        await listed(stack, pb.ORDER_STATE_AWAITING_REVIEW, order_id)
    seen, token = [], ""
    while True:
        page = await stack.gateway.ListOrders(
            pb.ListOrdersRequest(state=pb.ORDER_STATE_AWAITING_REVIEW, page_size=1, page_token=token)
        )
        assert len(page.orders) <= 1
        seen += [o.order_id for o in page.orders]
        token = page.next_page_token
        if not token:
            break
    assert set(order_ids) <= set(seen) and len(seen) == len(set(seen))
    for order_id in order_ids:
        await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id))


async def test_errors_carry_google_rpc_details(stack):
    bad = start_request(
        new_order_id(),
        items=[pb.Item(sku="A", qty=0)],
        address=pb.Address(name="", line1="1", city="X", postal_code="1", country="us"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.StartOrder(bad)
    violations = detail(err.value, BadRequest).field_violations
    assert [v.field for v in violations] == ["items[0].qty", "address.name", "address.country"]

    order_id = new_order_id()
    stack.flaky.script(order_id, ReceiveOrder=["hang"] * 3 + ["ok"])
    await stack.gateway.StartOrder(start_request(order_id))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="early"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert detail(err.value, ErrorInfo).reason == "NOT_AWAITING_REVIEW"
    review = await wait_review(stack, order_id)
    assert review.state == pb.ORDER_STATE_AWAITING_REVIEW, review
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="test"))
    assert (await wait_terminal(stack, order_id)).state == pb.ORDER_STATE_COMPLETED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id))
    assert detail(err.value, ErrorInfo).reason == "ORDER_ENDED"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.GetOrder(pb.GetOrderRequest(order_id="nobody-here"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert detail(err.value, ErrorInfo).reason == "ORDER_NOT_FOUND"
