"""Workers are stateless: two order workers and two shipping workers share their queues, the orders
spread across all four, and no step runs twice."""

import asyncio
import dataclasses
import uuid
from typing import TYPE_CHECKING

import grpc
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from common import codec, db, versioning
from gateway import server
from order_service import worker as order_worker
from order_service.activities import OrderActivities
from order_service.repository import OrdersRepository
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from shipping_service import worker as shipping_worker
from shipping_service.activities import ShippingActivities
from shipping_service.repository import ShippingRepository
from tests.integration.conftest import new_order_id, start_request, versioned_builds
from tests.support import consistency

if TYPE_CHECKING:
    # What pb_grpc.OrderGatewayServiceStub(channel) gives on a grpc.aio channel; only the generated .pyi has it.
    from orderlife.gateway.v1.gateway_pb2_grpc import OrderGatewayServiceAsyncStub

pytestmark = pytest.mark.integration
ORDERS = 16


async def test_two_workers_per_queue_share_the_orders_and_run_nothing_twice(stack, infra):
    admin_url, temporal_address = infra
    suffix = uuid.uuid4().hex[:6]
    order_tq, shipping_tq = f"orders-scale-{suffix}", f"shipping-scale-{suffix}"
    order_pool = await db.connect(db.url_for_role(admin_url, "order_service"))
    shipping_pool = await db.connect(db.url_for_role(admin_url, "shipping_service"))

    async def client(identity: str) -> Client:
        return await Client.connect(temporal_address, identity=identity, data_converter=codec.data_converter())

    order_build, shipping_build = versioned_builds(f"scale-{suffix}")  # two workers of one build per queue
    workers = [
        order_worker.build(
            await client(f"order-{n}"), OrderActivities(OrdersRepository(order_pool)), order_tq, order_build
        )
        for n in "ab"
    ]
    workers += [
        shipping_worker.build(
            await client(f"shipping-{n}"),
            ShippingActivities(ShippingRepository(shipping_pool)),
            shipping_tq,
            shipping_build,
        )
        for n in "ab"
    ]
    running = [asyncio.create_task(w.run()) for w in workers]
    await versioning.make_current_if_unset(stack.client, order_build, order_tq)
    await versioning.make_current_if_unset(stack.client, shipping_build, shipping_tq)
    settings = dataclasses.replace(stack.gateway_settings, order_task_queue=order_tq, shipping_task_queue=shipping_tq)
    grpc_server, port = await server.serve(stack.client, stack.reader, settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            gateway = pb_grpc.OrderGatewayServiceStub(channel)
            ids = [new_order_id("scale") for _ in range(ORDERS)]
            for order_id in ids:
                stack.flaky.script(order_id)  # one attempt per step, so a second run of any step would show
            orders = await asyncio.gather(*(run(gateway, order_id) for order_id in ids))
    finally:
        await grpc_server.stop(0)
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*running, return_exceptions=True)
        await order_pool.close()
        await shipping_pool.close()

    assert {o.state for o in orders} == {pb.ORDER_STATE_COMPLETED}
    ran_on: dict[str, set[str]] = {"order": set(), "shipping": set()}
    server_attempts: dict[tuple[str, str], int] = {}
    for order_id in ids:
        for prefix, kind in (("order", "order"), ("shipment", "shipping")):
            history = await stack.client.get_workflow_handle(f"{prefix}-{order_id}").fetch_history()
            step_of = {}
            for event in history.events:
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    step_of[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
                if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    started = event.activity_task_started_event_attributes
                    ran_on[kind].add(started.identity)
                    server_attempts[(order_id, step_of[started.scheduled_event_id])] = started.attempt
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                    ran_on[kind].add(event.workflow_task_started_event_attributes.identity)
    assert ran_on == {"order": {"order-a", "order-b"}, "shipping": {"shipping-a", "shipping-b"}}, ran_on

    for schema in ("orders", "shipping"):
        # Every step is scripted to succeed, so one succeeds once. An attempt the server timed out under load
        # is retried (the server's attempt count shows it): that is a retry, not a step run twice.
        repeated = await stack.admin.fetch(
            f"SELECT order_id, step, count(*) AS runs FROM {schema}.step_attempts WHERE order_id = ANY($1) "
            "AND outcome = 'ok' GROUP BY order_id, step HAVING count(*) > 1",
            ids,
        )
        twice = [dict(r) for r in repeated if r["runs"] > server_attempts.get((r["order_id"], r["step"]), 1)]
        assert twice == [], f"steps that ran twice in {schema}"
    assert await consistency.problems(stack.admin, stack.client, {i: "COMPLETED" for i in ids}) == []


async def run(gateway: "OrderGatewayServiceAsyncStub", order_id: str) -> pb.Order:
    await gateway.StartOrder(start_request(order_id))
    approved = False
    async for update in gateway.WatchOrder(pb.WatchOrderRequest(order_id=order_id)):
        if update.order.state == pb.ORDER_STATE_AWAITING_REVIEW and not approved:
            await gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="scale"))
            approved = True
        last = update.order
    return last


async def test_status_and_listings_are_served_while_no_worker_runs(stack, infra):
    """A read comes from the describe, the memo and Postgres, a listing from visibility: neither needs a worker."""
    admin_url, temporal_address = infra
    order_tq = f"orders-alone-{uuid.uuid4().hex[:6]}"
    order_pool = await db.connect(db.url_for_role(admin_url, "order_service"))
    worker = order_worker.build(stack.client, OrderActivities(OrdersRepository(order_pool)), order_tq)
    running = asyncio.create_task(worker.run())
    settings = dataclasses.replace(stack.gateway_settings, order_task_queue=order_tq)
    grpc_server, port = await server.serve(stack.client, stack.reader, settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            gateway = pb_grpc.OrderGatewayServiceStub(channel)
            order_id = new_order_id("alone")
            stack.flaky.script(order_id)
            await gateway.StartOrder(start_request(order_id))
            async for update in gateway.WatchOrder(pb.WatchOrderRequest(order_id=order_id)):
                if update.order.state == pb.ORDER_STATE_AWAITING_REVIEW:
                    break
            await worker.shutdown()
            await running
            seen = (await gateway.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=3)).order
            assert seen.state == pb.ORDER_STATE_AWAITING_REVIEW and seen.current_step == "ManualReview"
            assert [s.name for s in seen.steps][:2] == ["ReceiveOrder", "ValidateOrder"]

            # A database row ahead of its workflow: listings go by the workflow's listed state.
            await stack.admin.execute("UPDATE orders.orders SET state = 'CHARGING' WHERE order_id = $1", order_id)
            moving = await gateway.ListOrders(pb.ListOrdersRequest(state=pb.ORDER_STATE_IN_PROGRESS, page_size=100))
            assert order_id not in [o.order_id for o in moving.orders]
            everything = await gateway.ListOrders(pb.ListOrdersRequest(page_size=100))
            assert {o.order_id: o.state for o in everything.orders}[order_id] == pb.ORDER_STATE_AWAITING_REVIEW
    finally:
        await grpc_server.stop(0)
        await order_pool.close()
    await stack.client.get_workflow_handle(f"order-{order_id}").terminate("no worker will run it")
