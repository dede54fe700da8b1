"""A local stack of real processes to break on purpose: Postgres, a Temporal dev server keeping its state in
a database file, both workers and the gateway as processes of their own (`python -m ...`, as `./dev up` runs
them), every step calling the real, unseeded flaky_call().

A batch of orders runs through the gateway with a reviewer approving each one at review while a test
kills or restarts a part; afterwards every order must be terminal and the rows consistent
(tests/support/consistency.py).
"""

import asyncio
import base64
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import grpc
import pytest
import pytest_asyncio
from temporalio.client import Client

from common import codec, db
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from stack import local
from tests.support import consistency

if TYPE_CHECKING:
    # What pb_grpc.OrderGatewayServiceStub(channel) gives on a grpc.aio channel; only the generated .pyi has it.
    from orderlife.gateway.v1.gateway_pb2_grpc import OrderGatewayServiceAsyncStub

pytestmark = pytest.mark.faults
# The replay suite's key, so histories recorded here can be committed and replayed.
KEY = bytes(range(32))
TERMINAL = (pb.ORDER_STATE_COMPLETED, pb.ORDER_STATE_CANCELLED, pb.ORDER_STATE_REJECTED, pb.ORDER_STATE_FAILED)


@dataclass
class FaultStack:
    """The local stack (stack/local.py) with what the fault tests do to it."""

    stack: local.LocalStack
    admin: asyncpg.Pool | None = None
    client: Client | None = None
    gateway: "OrderGatewayServiceAsyncStub | None" = None

    @property
    def procs(self) -> dict[str, subprocess.Popen[bytes]]:
        return self.stack.procs

    @property
    def admin_url(self) -> str:
        return self.stack.admin_url

    @property
    def gateway_port(self) -> int:
        return self.stack.gateway_port

    @property
    def logs(self) -> Path:
        return self.stack.logs

    def start(self, name: str, **env: str) -> None:
        # attempts given (as its default), so that no variable in env can be taken for it
        self.stack.start(name, attempts=3, **env)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def ensure_running(self) -> None:
        """Brings back whatever a test left stopped, so the next test starts from a whole stack."""
        if not (self.stack.pgdata / "postmaster.pid").exists():
            local.start_postgres(self.stack.pgdata)
        for name in ("temporal",) + local.SERVICES:
            if self.procs[name].poll() is not None:
                self.start(name)

    async def restart_postgres(self, down_seconds: float) -> None:
        await self.stop_postgres()
        await asyncio.sleep(down_seconds)
        await self.start_postgres()

    async def stop_postgres(self) -> None:
        await self._postgres("stop_postgres")

    async def start_postgres(self) -> None:
        await self._postgres("start_postgres")

    async def _postgres(self, action: str) -> None:
        # In a process of its own: pg_ctl runs as another user, and forking for that from a process full of
        # gRPC threads can crash the child.
        code = f"from pathlib import Path; from stack import local; local.{action}(Path({str(self.stack.pgdata)!r}))"
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
        assert await proc.wait() == 0, f"{action} failed"


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory):
    # Histories sealed with the replay suite's key; no traces or metrics from these processes.
    stack = local.LocalStack(
        tmp_path_factory.mktemp("faults"),
        env={"PAYLOAD_KEY": base64.b64encode(KEY).decode(), "OTEL_SDK_DISABLED": "true", "METRICS_LISTEN": ""},
    )
    stack.start_all()
    yield FaultStack(stack)
    stack.stop()


@pytest_asyncio.fixture
async def faults(fault_stack):
    fault_stack.ensure_running()
    local.wait_until_serving(fault_stack.gateway_port, 60, fault_stack.procs["gateway"], "gateway")
    fault_stack.admin = await db.connect(fault_stack.admin_url)
    fault_stack.client = await Client.connect(
        fault_stack.stack.temporal_address, data_converter=codec.data_converter(KEY)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fault_stack.gateway_port}") as channel:
        fault_stack.gateway = pb_grpc.OrderGatewayServiceStub(channel)
        yield fault_stack
    await fault_stack.admin.close()


def request(order_id: str) -> pb.StartOrderRequest:
    return pb.StartOrderRequest(
        order_id=order_id,
        payment_id=f"pay-{order_id}",
        items=[pb.Item(sku="ABC", qty=1), pb.Item(sku="XYZ", qty=2)],
        address=pb.Address(name="Ada", line1="1 Loop Rd", city="Springfield", postal_code="12345", country="US"),
    )


async def _retrying(call, until: float):
    """A gateway call retried while the stack is broken (UNAVAILABLE, or no gateway at all)."""
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            if (
                err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                or time.monotonic() > until
            ):
                raise
            await asyncio.sleep(0.2)


async def drive(stack: FaultStack, order_id: str, timeout: float = 60) -> pb.Order:
    """Starts an order, approves it at review, and follows it until it ends."""
    until = time.monotonic() + timeout
    gw = stack.gateway
    assert gw is not None, "the faults fixture connects the gateway"
    await _retrying(lambda: gw.StartOrder(request(order_id), timeout=10), until)
    approved = False
    while True:
        order = (await _retrying(lambda: gw.GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=10), until)).order
        if order.state in TERMINAL:
            return order
        if order.state == pb.ORDER_STATE_AWAITING_REVIEW and not approved:
            try:
                await gw.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="faults"), timeout=10)
                approved = True
            except grpc.aio.AioRpcError as err:
                if err.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise
        if time.monotonic() > until:
            raise AssertionError(f"order {order_id} did not end within {timeout}s; last seen {order}")
        await asyncio.sleep(0.1)


async def batch_with_fault(stack: FaultStack, name: str, fault, size: int = 20, fault_after: float = 1.5) -> dict:
    """Runs `size` orders; `fault` (a coroutine function) runs `fault_after` seconds in. Returns the report."""
    ids = [f"{name}-{uuid.uuid4().hex[:8]}" for _ in range(size)]
    started = time.monotonic()
    orders = asyncio.gather(*(drive(stack, i) for i in ids))
    await asyncio.sleep(fault_after)
    await fault()
    ended_orders = await orders
    ended = {o.order_id: pb.OrderState.Name(o.state).removeprefix("ORDER_STATE_") for o in ended_orders}
    assert stack.admin is not None and stack.client is not None, "the faults fixture connects them"
    found = await consistency.problems(stack.admin, stack.client, ended)
    # Asked of Temporal, not of the gateway the orders were driven through: each workflow closed, and when.
    closed = {}
    for order_id in ids:
        described = await stack.client.get_workflow_handle(f"order-{order_id}").describe()
        if described.close_time is not None:
            closed[order_id] = (described.close_time - described.start_time).total_seconds()
    report = {
        "fault": name,
        "orders": size,
        "terminal": len(closed),
        "states": dict(Counter(ended.values())),
        "max_workflow_seconds": round(max(closed.values(), default=0), 2),
        "over_15s": sorted(order_id for order_id, seconds in closed.items() if seconds > 15),
        "wall_seconds": round(time.monotonic() - started, 1),
        "problems": found,
    }
    print(f"\n{report}")
    return report
