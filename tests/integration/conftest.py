"""The integration stack: a real Temporal dev server, real Postgres with the dbmate migrations, both
workers and the gateway on a real gRPC channel, all started by the project's own code (stack.local).

Orders run the real, unseeded flaky_call() unless a test gives their order id a script of outcomes
(`flaky.script(order_id, ...)`); the patch below says so and applies to scripted orders only.
"""

import asyncio
import os
import threading
import uuid
from collections import defaultdict
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import grpc
import pytest
import pytest_asyncio
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from temporalio import activity
from temporalio.client import Client

from client.connection import details_of
from common import codec, db, logs, telemetry, temporal, vendor_stubs, versioning
from common.settings import TemporalSettings
from gateway import server
from gateway.config import Settings as GatewaySettings
from gateway.repository import ReadRepository
from order_service import sweep
from order_service import worker as order_worker
from order_service.activities import OrderActivities
from order_service.repository import OrdersRepository
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from shipping_service import worker as shipping_worker
from shipping_service.activities import ShippingActivities
from shipping_service.repository import ShippingRepository
from stack import local

if TYPE_CHECKING:
    # What pb_grpc.OrderGatewayServiceStub(channel) gives on a grpc.aio channel; only the generated .pyi has it.
    from orderlife.gateway.v1.gateway_pb2_grpc import OrderGatewayServiceAsyncStub

pytestmark = pytest.mark.integration
REAL_FLAKY_CALL = vendor_stubs.flaky_call


class FlakyScript:
    """Outcomes for the flaky_call() of scripted orders: per step, one of "ok", "fail", "hang" per call."""

    def __init__(self):
        self.plans: dict[str, dict[str, list[str]]] = {}
        self.calls: dict[tuple[str, str], int] = defaultdict(int)

    def script(self, order_id: str, **steps: list[str]) -> None:
        self.plans[order_id] = {step: list(outcomes) for step, outcomes in steps.items()}

    async def __call__(self) -> None:
        info = activity.info()
        assert info.workflow_id is not None, "flaky_call() runs in a workflow's activities"
        order_id = info.workflow_id.split("-", 1)[1]
        plan = self.plans.get(order_id)
        if plan is None:
            return await REAL_FLAKY_CALL()
        self.calls[(order_id, info.activity_type)] += 1
        outcomes = plan.get(info.activity_type) or ["ok"]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if outcome == "fail":
            raise RuntimeError("Forced failure for testing")
        if outcome == "hang":
            await asyncio.sleep(300)


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace receiver on loopback: keeps every span the exporters send."""

    def __init__(self):
        self.spans = []
        self.resources = []
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            for resource_spans in request.resource_spans:
                self.resources.append({a.key: a.value.string_value for a in resource_spans.resource.attributes})
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def trace(self, trace_id: str) -> list:
        with self.lock:
            return [s for s in self.spans if s.trace_id.hex() == trace_id]


@dataclass
class Stack:
    gateway: "OrderGatewayServiceAsyncStub"
    client: Client
    admin: asyncpg.Pool
    flaky: FlakyScript
    gateway_address: str
    order_pool: asyncpg.Pool
    otlp: OtlpReceiver
    tracer_provider: object
    metrics_url: str
    gateway_settings: GatewaySettings
    reader: ReadRepository


@pytest.fixture(scope="session")
def otlp():
    receiver = OtlpReceiver()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    os.environ["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    # The whole suite traces into one process; a queue this size drops no span before the flush.
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = "100000"
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"
    provider = telemetry.setup_tracing("integration")
    assert provider is not None, "the OTLP endpoint set above enables tracing"
    yield receiver, provider
    provider.shutdown()  # exports what is left while the receiver still listens
    grpc_server.stop(0)


@pytest.fixture(scope="session")
def infra(tmp_path_factory):
    """Postgres (migrated) and the Temporal dev server, as processes of their own."""
    local_stack = local.LocalStack(tmp_path_factory.mktemp("stack"), keep_history=False)
    admin_url = local_stack.start_postgres()
    local_stack.start("temporal")
    yield admin_url, local_stack.temporal_address
    local_stack.stop()


@pytest_asyncio.fixture(scope="session")
async def stack(infra, otlp):
    admin_url, temporal_address = infra
    logs.keep_event_names()
    flaky = FlakyScript()
    patch = pytest.MonkeyPatch()
    patch.setattr(vendor_stubs, "flaky_call", flaky)
    # Histories are sealed as in production (common/codec.py); test_security reads one raw.
    os.environ["PAYLOAD_KEY"] = codec.new_key()
    metrics_port = local.free_port()
    runtime = telemetry.runtime(f"127.0.0.1:{metrics_port}")
    client = await temporal.connect(TemporalSettings(temporal_address, "default"), runtime)
    suffix = uuid.uuid4().hex[:6]
    order_tq, shipping_tq = f"orders-{suffix}", f"shipping-{suffix}"
    order_pool = await db.connect(db.url_for_role(admin_url, "order_service"))
    shipping_pool = await db.connect(db.url_for_role(admin_url, "shipping_service"))
    reader_pool = await db.connect(db.url_for_role(admin_url, "gateway_reader"))
    admin = await db.connect(admin_url)
    order_build, shipping_build = versioned_builds(suffix)
    workers = [
        order_worker.build(client, OrderActivities(OrdersRepository(order_pool)), order_tq, order_build),
        shipping_worker.build(
            client, ShippingActivities(ShippingRepository(shipping_pool)), shipping_tq, shipping_build
        ),
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    await versioning.make_current_if_unset(client, order_build, order_tq)
    await versioning.make_current_if_unset(client, shipping_build, shipping_tq)
    await sweep.ensure_schedule(client, order_tq, shipping_tq)
    settings = GatewaySettings(
        TemporalSettings(temporal_address, "default"), "", "127.0.0.1:0", order_tq, shipping_tq, "INFO"
    )
    reader = ReadRepository(reader_pool)
    grpc_server, port = await server.serve(client, reader, settings, runtime.metric_meter)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Stack(
        pb_grpc.OrderGatewayServiceStub(channel),
        client,
        admin,
        flaky,
        f"127.0.0.1:{port}",
        order_pool,
        otlp[0],
        otlp[1],
        f"http://127.0.0.1:{metrics_port}/metrics",
        settings,
        reader,
    )
    await channel.close()
    await grpc_server.stop(0)
    await client.get_schedule_handle(sweep.schedule_id(order_tq)).delete()
    for w in workers:
        await w.shutdown()
    await asyncio.gather(*tasks, return_exceptions=True)
    for pool in (order_pool, shipping_pool, reader_pool, admin):
        await pool.close()
    patch.undo()


def versioned_builds(suffix: str) -> tuple[versioning.Versioning, versioning.Versioning]:
    """The order and shipping builds of a test's own worker deployments (versioned as in production; named apart so
    no two tests share a deployment's routing)."""
    return (
        versioning.Versioning(f"it-{suffix}-{versioning.ORDER_DEPLOYMENT}", "test"),
        versioning.Versioning(f"it-{suffix}-{versioning.SHIPPING_DEPLOYMENT}", "test"),
    )


Detail = TypeVar("Detail", bound=Message)


def detail(err: grpc.RpcError, kind: type[Detail]) -> Detail:
    """The google.rpc detail of that kind (ErrorInfo, RetryInfo, BadRequest) the gateway's error carries."""
    found = details_of(err).get(kind.__name__)
    assert isinstance(found, kind), f"no {kind.__name__} in {err}"
    return found


def new_order_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start_request(order_id: str, **overrides) -> pb.StartOrderRequest:
    fields: dict[str, Any] = dict(
        order_id=order_id,
        payment_id=f"pay-{order_id}",
        items=[pb.Item(sku="ABC", qty=1), pb.Item(sku="XYZ", qty=2)],
        address=pb.Address(name="Ada", line1="1 Loop Rd", city="Springfield", postal_code="12345", country="US"),
    )
    fields.update(overrides)
    return pb.StartOrderRequest(**fields)


async def wait_for(stack: Stack, order_id: str, predicate, timeout: float = 20.0) -> pb.Order:
    """Polls GetOrder until predicate(order) holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        order = (await stack.gateway.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
        if predicate(order):
            return order
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"order {order_id} never matched; last seen:\n{order}")
        await asyncio.sleep(0.05)


TERMINAL = (pb.ORDER_STATE_COMPLETED, pb.ORDER_STATE_CANCELLED, pb.ORDER_STATE_REJECTED, pb.ORDER_STATE_FAILED)


async def wait_terminal(stack: Stack, order_id: str, timeout: float = 25.0) -> pb.Order:
    return await wait_for(stack, order_id, lambda o: o.state in TERMINAL, timeout)


async def wait_review(stack: Stack, order_id: str) -> pb.Order:
    return await wait_for(stack, order_id, lambda o: o.state == pb.ORDER_STATE_AWAITING_REVIEW or o.state in TERMINAL)


async def approve_in_time(stack: Stack, order_id: str, reviewer: str) -> bool:
    """Approves an order seen awaiting review. On the real flaky_call() (or a loaded machine) receive and
    validate can use up the window, and the approval is then refused as too late: False. If the window's expiry has
    also closed the workflow (REJECTED) by the time the approval arrives, the refusal says the order ended."""
    try:
        await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer=reviewer))
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
        too_late = ("review window has closed", "not awaiting review", "already ended REJECTED")
        assert any(reason in (err.details() or "") for reason in too_late), err
        return False
    return True
