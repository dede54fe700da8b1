"""Payment idempotency against real Postgres: ChargePayment in Temporal's ActivityEnvironment."""

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from order_service import contract as orders
from order_service.activities import ChargeInput, OrderActivities, OrderRef, ReceiveInput
from order_service.repository import OrdersRepository, PaymentConflict
from tests.integration.conftest import new_order_id

pytestmark = pytest.mark.integration
ADDRESS = orders.Address("Ada", "1 Loop Rd", "Springfield", "12345", "US")


async def received_order(stack, items=None) -> tuple[OrdersRepository, str]:
    repo = OrdersRepository(stack.order_pool)
    order_id = new_order_id("pay")
    await repo.receive(order_id, f"pay-{order_id}", items or [orders.Item("ABC", 2)], ADDRESS)
    stack.flaky.script(order_id)
    return repo, order_id


def env_for(order_id: str, attempt: int = 1, step: str = orders.Step.CHARGE) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        workflow_id=orders.workflow_id(order_id),
        workflow_run_id=f"run-{order_id}",  # the attempt log's key: each order's attempts rows of their own
        activity_type=step,
        attempt=attempt,
        scheduled_time=datetime.now(UTC),  # the step has its time left (common.attempts)
    )
    return env


async def payment_rows(stack, payment_id: str) -> list[dict]:
    return [
        dict(r)
        for r in await stack.admin.fetch(
            "SELECT order_id, amount, status FROM orders.payments WHERE payment_id = $1", payment_id
        )
    ]


async def test_repeated_charge_returns_the_first_result_and_charges_once(stack):
    repo, order_id = await received_order(stack)
    acts = OrderActivities(repo)
    charge = ChargeInput(order_id, f"pay-{order_id}", [orders.Item("ABC", 2)])
    first = await env_for(order_id, 1).run(acts.charge_payment, charge)
    again = await env_for(order_id, 2).run(acts.charge_payment, charge)
    assert first == again == orders.Payment(f"pay-{order_id}", 2, orders.PaymentStatus.CHARGED)
    assert stack.flaky.calls[(order_id, orders.Step.CHARGE)] == 1, (
        "the stub ran once; the repeat was answered from the row"
    )
    assert await payment_rows(stack, f"pay-{order_id}") == [{"order_id": order_id, "amount": 2, "status": "charged"}]


async def test_payment_id_of_another_order_is_refused_without_a_charge(stack):
    repo, first = await received_order(stack)
    _, second = await received_order(stack)
    acts = OrderActivities(repo)
    await env_for(first).run(acts.charge_payment, ChargeInput(first, f"pay-{first}", [orders.Item("ABC", 2)]))
    with pytest.raises(ApplicationError) as refused:
        await env_for(second).run(acts.charge_payment, ChargeInput(second, f"pay-{first}", [orders.Item("ABC", 2)]))
    assert refused.value.type == "PaymentConflict" and refused.value.non_retryable
    assert f"already used for order '{first}'" in refused.value.message
    assert await payment_rows(stack, f"pay-{first}") == [{"order_id": first, "amount": 2, "status": "charged"}]


async def test_same_payment_id_with_another_amount_is_refused(stack):
    repo, order_id = await received_order(stack)
    await repo.record_charge(f"pay-{order_id}", order_id, 2)
    with pytest.raises(PaymentConflict, match="already charged 2, not 5"):
        await repo.record_charge(f"pay-{order_id}", order_id, 5)
    assert await payment_rows(stack, f"pay-{order_id}") == [{"order_id": order_id, "amount": 2, "status": "charged"}]


async def test_a_refused_charge_moves_no_order_on_and_writes_no_event(stack):
    """The charge, the order's move to SHIPPING and its `charged` event are one statement: a conflict leaves the
    other order as it was."""
    repo, first = await received_order(stack)
    _, second = await received_order(stack)
    await repo.record_charge(f"pay-{first}", first, 2)
    with pytest.raises(PaymentConflict, match=f"already used for order '{first}'"):
        await repo.record_charge(f"pay-{first}", second, 2)
    orders_and_events = await stack.admin.fetch(
        "SELECT o.order_id, o.state, count(e.id) FILTER (WHERE e.type = 'charged') AS charged "
        "FROM orders.orders o LEFT JOIN orders.events e USING (order_id) WHERE o.order_id = ANY($1) "
        "GROUP BY o.order_id, o.state",
        [first, second],
    )
    assert {r["order_id"]: (r["state"], r["charged"]) for r in orders_and_events} == {
        first: ("SHIPPING", 1),
        second: ("RECEIVED", 0),
    }


async def test_a_steps_write_logs_its_attempt_and_a_conflict_found_after_it_replaces_that_row(stack):
    """ReceiveOrder's write carries its attempt's `ok` row in the same statement. When the step then finds a conflict
    (the payment id is another order's), the attempt's row says so: one row, the error."""
    repo, first = await received_order(stack)
    second, third = new_order_id("pay"), new_order_id("pay")
    stack.flaky.script(second)
    stack.flaky.script(third)
    acts = OrderActivities(repo)
    items = [orders.Item("ABC", 2)]
    await env_for(second, step=orders.Step.RECEIVE).run(
        acts.receive_order, ReceiveInput(second, f"pay-{second}", items, ADDRESS)
    )
    with pytest.raises(ApplicationError) as refused:
        await env_for(third, step=orders.Step.RECEIVE).run(
            acts.receive_order, ReceiveInput(third, f"pay-{first}", items, ADDRESS)
        )
    assert refused.value.type == "OrderConflict"
    log = await stack.admin.fetch(
        "SELECT order_id, step, outcome, message FROM orders.step_attempts WHERE order_id = ANY($1)", [second, third]
    )
    assert sorted((r["order_id"] == third, r["step"], r["outcome"]) for r in log) == [
        (False, orders.Step.RECEIVE, "ok"),
        (True, orders.Step.RECEIVE, "error"),
    ]
    [refused_row] = [r for r in log if r["order_id"] == third]
    assert f"payment_id 'pay-{first}' is already used" in refused_row["message"]


async def test_concurrent_charges_write_one_row(stack):
    repo, order_id = await received_order(stack)
    results = await asyncio.gather(*(repo.record_charge(f"pay-{order_id}", order_id, 2) for _ in range(50)))
    assert all(r == results[0] for r in results)
    assert len(await payment_rows(stack, f"pay-{order_id}")) == 1


async def test_refund_is_idempotent_and_needs_a_charge(stack):
    repo, order_id = await received_order(stack)
    acts = OrderActivities(repo)
    assert await env_for(order_id).run(acts.refund_payment, OrderRef(order_id)) is None
    await repo.record_charge(f"pay-{order_id}", order_id, 2)
    first = await env_for(order_id).run(acts.refund_payment, OrderRef(order_id))
    again = await env_for(order_id).run(acts.refund_payment, OrderRef(order_id))
    assert first == again == orders.Payment(f"pay-{order_id}", 2, orders.PaymentStatus.REFUNDED)
    events = await stack.admin.fetch(
        "SELECT type FROM orders.events WHERE order_id = $1 AND type = 'refunded'", order_id
    )
    assert len(events) == 1


async def test_each_service_role_is_limited_to_its_own_schema(stack):
    async with stack.order_pool.acquire() as conn:
        for sql in (
            "SELECT * FROM shipping.shipments",
            "CREATE TABLE orders.extra (id int)",
            "DROP TABLE orders.events",
        ):
            with pytest.raises(Exception) as denied:
                await conn.execute(sql)
            assert "permission denied" in str(denied.value) or "must be owner" in str(denied.value)
