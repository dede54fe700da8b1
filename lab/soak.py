"""Chaos under load: python -m lab.soak [--minutes 10] [--concurrency 10] [--seed N] [--fault-every 15,30] ...

    python -m lab.soak --minutes 10 --concurrency 10 --seed 7 --json soak.json

Starts a stack of its own (stack.local.LocalStack on free ports): Postgres, and under the supervisor
(stack/supervise.py, which restarts what dies as compose's restart policy would) the Temporal dev server keeping its
history in a file,
two order workers, two shipping workers and the gateway. `concurrency` clients place orders through the gateway one
after another, each waiting for its order's end (WaitOrder); a share of them cancel their order or change its
address at a random moment; one reviewer approves every order the review desk's stream shows. Clients try a call
again, with the same order id, when it failed UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED, as a real client
would. Meanwhile, every `fault-every` seconds (seeded), one fault, the kinds taken in turn in a seeded order:
SIGKILL of an order or a shipping worker, SIGKILL of the gateway, SIGKILL of Postgres (restarted 1-3 s later: crash
recovery), the Temporal dev server stopped (the supervisor starts it again on its database file).

Once the load stops and every order has ended, it checks and prints (and writes with --json): orders acknowledged,
started and terminal, by state; faults by kind; consistency problems (tests/support/consistency.py); acknowledged orders
with no workflow (lost); order ids with more than one workflow (duplicates); double charges; orders over 15 s and how
many of them overlapped an outage of Temporal or Postgres; client-visible errors by code. Exit status 1 when a
target is missed (docs/chaos.md).
"""

import argparse
import asyncio
import base64
import functools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, TypeVar, cast

import grpc
import psutil
from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.service import RPCError, RPCStatusCode

from client.connection import call_metadata
from common import codec, db
from lab import report as report_file
from lab.bench import Reviewer
from lab.report import Row, met, table
from order_service.contract import ORDER_STATE_ATTRIBUTE, TERMINAL_STATES, workflow_id
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from stack import local
from tests.support import consistency

if TYPE_CHECKING:
    # The stub on an asyncio channel, as in lab.bench: a class of the generated stubs (the .pyi) only.
    from orderlife.gateway.v1.gateway_pb2_grpc import OrderGatewayServiceAsyncStub as Stub

FAULTS = ("kill_order_worker", "kill_shipping_worker", "kill_gateway", "kill_postgres", "stop_temporal")
# What a client tries again, with the same order id: the gateway or a backend was away, or the stack was busy.
RETRY_ON = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
CALL_TIMEOUT = 10.0
# A client gives up on a call it could not get through for this long.
GIVE_UP_SECONDS = 90.0
ACTION_SHARE = 0.2
BUDGET_SECONDS = 15.0

T = TypeVar("T")


@dataclass
class Order:
    order_id: str
    acknowledged: bool = False
    action: str = ""
    state: str = ""
    workflow_seconds: float | None = None
    started_at: float | None = None
    closed_at: float | None = None


@dataclass
class Outage:
    kind: str
    started: float
    ended: float | None = None


class OutageFigures(TypedDict):
    kind: str
    seconds: float


class Report(TypedDict):
    """What a run found (Soak.verify), as it is printed and written; main adds the targets it missed."""

    minutes: float
    concurrency: int
    seed: int
    orders_placed: int
    acknowledged: int
    started: int
    terminal: int
    by_state: dict[str, int]
    with_cancel_or_address_change: dict[str, int]
    faults: dict[str, int]
    outages: list[OutageFigures]
    consistency_problems: list[str]
    lost: list[str]
    duplicates: list[str]
    double_charges: int
    over_15s: int
    over_15s_during_outage: int
    untouched_by_outage: int
    untouched_within_15s: float
    client_errors: dict[str, int]
    workflow_seconds: dict[str, float]
    flood: dict[str, Any] | None
    missed_targets: NotRequired[list[str]]


@dataclass
class Soak:
    args: argparse.Namespace
    stack: local.LocalStack
    rng: random.Random
    orders: list[Order] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    outages: list[Outage] = field(default_factory=list)
    flooded: Counter[str] = field(default_factory=Counter)

    def pids(self) -> dict[str, int]:
        state = json.loads((self.stack.state / "supervised.json").read_text())
        return {name: entry["pid"] for name, entry in state.items()}

    # --- load ---

    async def call(self, what: str, make_call: Callable[[], Awaitable[T]]) -> T | grpc.aio.AioRpcError:
        """A call tried again on RETRY_ON codes for up to GIVE_UP_SECONDS; other errors are returned, not raised."""
        give_up = time.monotonic() + GIVE_UP_SECONDS
        while True:
            try:
                return await make_call()
            except grpc.aio.AioRpcError as err:
                self.errors[f"{what} {err.code().name}"] += 1
                if err.code() not in RETRY_ON or time.monotonic() > give_up:
                    return err
                await asyncio.sleep(0.25 + self.rng.random() * 0.5)

    async def client(self, stub: "Stub", lane: int, until: float) -> None:
        number = 0
        while time.monotonic() < until:
            number += 1
            order = Order(f"soak-{self.args.seed}-{lane}-{number}")
            self.orders.append(order)
            request = pb.StartOrderRequest(
                order_id=order.order_id,
                payment_id=f"pay-{order.order_id}",
                items=[pb.Item(sku="ABC", qty=1), pb.Item(sku="XYZ", qty=2)],
                address=pb.Address(
                    name="Ada", line1="1 Loop Rd", city="Springfield", postal_code="12345", country="US"
                ),
            )
            started = await self.call("StartOrder", functools.partial(stub.StartOrder, request, timeout=CALL_TIMEOUT))
            if isinstance(started, grpc.aio.AioRpcError):
                continue
            order.acknowledged = True
            action = None
            if self.rng.random() < ACTION_SHARE:
                order.action = self.rng.choice(("cancel", "address"))
                action = asyncio.create_task(self.act(stub, order, self.rng.uniform(0, 5)))
            wait = pb.WaitOrderRequest(order_id=order.order_id)
            ended = await self.call("WaitOrder", functools.partial(stub.WaitOrder, wait, timeout=70))
            if not isinstance(ended, grpc.aio.AioRpcError):
                order.state = pb.OrderState.Name(ended.order.state).removeprefix("ORDER_STATE_")
            if action is not None:
                await action

    async def act(self, stub: "Stub", order: Order, after: float) -> None:
        await asyncio.sleep(after)
        if order.action == "cancel":
            cancel = pb.CancelOrderRequest(order_id=order.order_id, reason="soak")
            await self.call("CancelOrder", lambda: stub.CancelOrder(cancel, timeout=30))
        else:
            moved = pb.UpdateAddressRequest(
                order_id=order.order_id,
                address=pb.Address(
                    name="Ada", line1="2 Moved Ave", city="Springfield", postal_code="12345", country="US"
                ),
            )
            await self.call("UpdateAddress", lambda: stub.UpdateAddress(moved, timeout=CALL_TIMEOUT))

    # --- faults ---

    async def inject(self, until: float) -> None:
        low, high = self.args.fault_every
        kinds: list[str] = []
        due = time.monotonic()
        while True:
            # One fault every LOW to HIGH seconds, counted from the start of the last one (however long it took).
            due += self.rng.uniform(low, high)
            await asyncio.sleep(max(0.0, min(due, until) - time.monotonic()))
            if time.monotonic() >= until:
                return
            if not kinds:
                kinds = self.rng.sample(FAULTS, len(FAULTS))
            kind = kinds.pop()
            print(f"{time.strftime('%H:%M:%S')} fault {kind}", flush=True)
            await getattr(self, kind)()
            self.faults[kind] += 1

    async def kill_order_worker(self) -> None:
        os.kill(self.pids()[self.rng.choice(("order_service", "order_service-2"))], signal.SIGKILL)

    async def kill_shipping_worker(self) -> None:
        os.kill(self.pids()[self.rng.choice(("shipping_service", "shipping_service-2"))], signal.SIGKILL)

    async def kill_gateway(self) -> None:
        os.kill(self.pids()["gateway"], signal.SIGKILL)

    async def kill_postgres(self) -> None:
        """SIGKILL of the postmaster; 1-3 s later started again, recovering from its write-ahead log."""
        postmaster = self.postmaster()
        backends = postmaster.children()
        outage = Outage("postgres", time.time())
        self.outages.append(outage)
        postmaster.kill()
        await asyncio.to_thread(psutil.wait_procs, [postmaster, *backends], 10)
        # Its lock file names a pid that is gone and that another process may soon reuse, which would make the
        # restart believe a server is still running there.
        (self.stack.pgdata / "postmaster.pid").unlink(missing_ok=True)
        await asyncio.sleep(self.rng.uniform(1, 3))
        # In a process of its own: pg_ctl runs as another user, and forking for that from a process full of gRPC
        # threads can crash the child. Backends of the killed postmaster may take a moment to go: try again.
        code = (
            f"from pathlib import Path; from stack import local; local.start_postgres(Path({str(self.stack.pgdata)!r}))"
        )
        for _ in range(20):
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stderr=subprocess.DEVNULL)
            if await proc.wait() == 0 and self.running_postmaster() is not None:
                break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError("postgres did not start again")
        outage.ended = time.time()

    def postmaster(self) -> psutil.Process:
        """The running postmaster of the stack's data directory; RuntimeError if there is none."""
        process = self.running_postmaster()
        if process is None:
            raise RuntimeError(f"no postgres running on {self.stack.pgdata}")
        return process

    def running_postmaster(self) -> psutil.Process | None:
        """The running postmaster of the stack's data directory (checked by name: a pid can be reused), or None."""
        try:
            process = psutil.Process(int((self.stack.pgdata / "postmaster.pid").read_text().split()[0]))
            if process.name() == "postgres":
                return process
        except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess):
            pass
        return None

    async def stop_temporal(self) -> None:
        """The dev server stopped; the supervisor starts it again on its database file about a second later."""
        outage = Outage("temporal", time.time())
        self.outages.append(outage)
        os.kill(self.pids()["temporal"], signal.SIGTERM)
        await asyncio.sleep(0.5)
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(_listens, self.stack.temporal_port):
            if time.monotonic() > deadline:
                raise RuntimeError("the dev server did not come back")
            await asyncio.sleep(0.1)
        outage.ended = time.time()

    # --- the run ---

    async def flood(self, until: float) -> None:
        """`--flood` requests a second that no honest client sends, on a connection of their own: no token, a wrong
        token, bytes that are no request. The gateway must refuse them before they spend its rate budget or any
        Temporal or Postgres work."""
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.stack.gateway_port}") as channel:
            await self._flood(channel.unary_unary(f"/{SERVICE}/StartOrder"), until)  # bytes in, bytes out

    async def _flood(self, start: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes], until: float) -> None:
        kinds = {
            "no token": lambda: start(pb.StartOrderRequest(order_id="flood").SerializeToString(), timeout=2),
            "wrong token": lambda: start(
                pb.StartOrderRequest(order_id="flood").SerializeToString(), timeout=2, metadata=WRONG_TOKEN
            ),
            "not a request": lambda: start(os.urandom(64), timeout=2),
        }
        pending: set[asyncio.Task[None]] = set()
        while time.monotonic() < until:
            for name, send in kinds.items():
                task = asyncio.create_task(self._flood_one(name, send))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.sleep(3 / self.args.flood)
        await asyncio.gather(*pending)

    async def _flood_one(self, name: str, send: Callable[[], Awaitable[bytes]]) -> None:
        try:
            await send()
            self.flooded[f"{name} OK"] += 1
        except grpc.aio.AioRpcError as err:
            self.flooded[f"{name} {err.code().name}"] += 1

    async def run(self) -> Report:
        until = time.monotonic() + self.args.minutes * 60
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.stack.gateway_port}") as channel:
            # _WithToken answers every attribute with the stub's own method, the token bound to it: a Stub.
            stub: Stub = (
                cast("Stub", _WithToken(pb_grpc.OrderGatewayServiceStub(channel), TOKEN))
                if self.args.flood
                else (pb_grpc.OrderGatewayServiceStub(channel))
            )
            reviewer = Reviewer(stub, RETRY_ON | {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN})
            reviewing = asyncio.create_task(reviewer.run())
            injecting = asyncio.create_task(self.inject(until))
            flooding = asyncio.create_task(self.flood(until)) if self.args.flood else None
            await asyncio.gather(*(self.client(stub, lane, until) for lane in range(self.args.concurrency)))
            await injecting
            if flooding is not None:
                await flooding
            if reviewing.done():
                reviewing.result()
            reviewing.cancel()
        return await self.verify()

    async def verify(self) -> Report:
        client = await Client.connect(self.stack.temporal_address, data_converter=codec.data_converter(KEY))
        acknowledged = [o for o in self.orders if o.acknowledged]
        runs: Counter[str] = Counter()
        async for execution in client.list_workflows(f"WorkflowId STARTS_WITH 'order-soak-{self.args.seed}-'"):
            runs[execution.id.removeprefix("order-")] += 1
        started = {o.order_id: o for o in self.orders if o.order_id in runs}
        lost = [o.order_id for o in acknowledged if o.order_id not in runs and not await _exists(client, o.order_id)]
        for order in started.values():
            description = await _closed(client, workflow_id(order.order_id))
            if description is None:
                continue
            order.started_at = description.start_time.timestamp()
            order.closed_at = description.close_time.timestamp() if description.close_time else None
            if order.closed_at is not None:
                order.workflow_seconds = order.closed_at - order.started_at
            state = description.typed_search_attributes.get(ORDER_STATE_ATTRIBUTE)
            if state in TERMINAL_STATES:
                order.state = state
        admin = await db.connect(self.stack.admin_url)
        try:
            problems = await consistency.problems(admin, client, {o.order_id: o.state for o in started.values()})
            double_charges = await admin.fetchval(
                "SELECT count(*) FROM (SELECT payment_id FROM orders.payments WHERE order_id LIKE $1 "
                "GROUP BY payment_id HAVING count(*) > 1) twice",
                f"soak-{self.args.seed}-%",
            )
        finally:
            await admin.close()
        late = [o for o in started.values() if o.workflow_seconds is None or o.workflow_seconds > BUDGET_SECONDS]
        late_in_outage = [o for o in late if self.touched_by_outage(o)]
        untouched = [o for o in started.values() if not self.touched_by_outage(o)]
        untouched_in_time = sum(
            o.workflow_seconds is not None and o.workflow_seconds <= BUDGET_SECONDS for o in untouched
        )
        terminal = sum(o.state in consistency.TERMINAL for o in started.values())
        return {
            "minutes": self.args.minutes,
            "concurrency": self.args.concurrency,
            "seed": self.args.seed,
            "orders_placed": len(self.orders),
            "acknowledged": len(acknowledged),
            "started": len(started),
            "terminal": terminal,
            "by_state": dict(Counter(o.state for o in started.values())),
            "with_cancel_or_address_change": dict(Counter(o.action for o in started.values() if o.action)),
            "faults": dict(self.faults),
            "outages": [
                {"kind": o.kind, "seconds": round((o.ended or time.time()) - o.started, 2)} for o in self.outages
            ],
            "consistency_problems": problems,
            "lost": lost,
            "duplicates": [order_id for order_id, n in runs.items() if n > 1],
            "double_charges": double_charges,
            "over_15s": len(late),
            "over_15s_during_outage": len(late_in_outage),
            "untouched_by_outage": len(untouched),
            "untouched_within_15s": round(untouched_in_time / len(untouched), 4) if untouched else 1.0,
            "client_errors": dict(self.errors),
            "workflow_seconds": _percentiles([o.workflow_seconds for o in started.values() if o.workflow_seconds]),
            "flood": {"per_second": self.args.flood, "answers": dict(self.flooded)} if self.args.flood else None,
        }

    def touched_by_outage(self, order: Order) -> bool:
        if order.started_at is None:
            return True
        closed = order.closed_at or time.time()
        return any(o.started <= closed and order.started_at <= (o.ended or time.time()) for o in self.outages)


def missed_targets(report: Report) -> list[str]:
    missed = []
    if report["terminal"] != report["started"]:
        missed.append(f"{report['started'] - report['terminal']} started orders not terminal")
    for name, found in (
        ("consistency_problems", report["consistency_problems"]),
        ("lost", report["lost"]),
        ("duplicates", report["duplicates"]),
    ):
        if found:
            missed.append(f"{name}: {found[:10]}")
    if report["double_charges"]:
        missed.append(f"{report['double_charges']} double charges")
    if report["untouched_within_15s"] < 0.99:
        missed.append(f"only {report['untouched_within_15s']:.1%} of orders no outage touched ended within 15 s")
    if not report["started"]:
        missed.append("no order started")
    return missed


def sections(report: Report) -> list[str]:
    """The report's page: the targets first, then what the orders, the faults and the clients saw."""
    untouched = report["untouched_by_outage"]
    targets: list[Row] = [
        [
            "every started order terminal",
            f"{report['terminal']} of {report['started']}",
            met(report["terminal"] == report["started"] > 0),
        ],
        ["no consistency problem", len(report["consistency_problems"]), met(not report["consistency_problems"])],
        ["no acknowledged order lost", len(report["lost"]), met(not report["lost"])],
        ["no order id with two workflows", len(report["duplicates"]), met(not report["duplicates"])],
        ["no double charge", report["double_charges"], met(not report["double_charges"])],
        [
            "at least 99 % of the orders no outage touched end within 15 s",
            f"{report['untouched_within_15s']:.2%} of {untouched}",
            met(report["untouched_within_15s"] >= 0.99),
        ],
    ]
    w = report["workflow_seconds"]
    outages = [o["seconds"] for o in report["outages"]]
    return [
        "## Targets\n\n" + table(["target", "figure", ""], targets),
        "## Orders\n\n"
        + table(
            ["placed", "acknowledged", "started", *sorted(report["by_state"]), "over 15 s (in an outage)"],
            [
                [
                    report["orders_placed"],
                    report["acknowledged"],
                    report["started"],
                    *(report["by_state"][k] for k in sorted(report["by_state"])),
                    f"{report['over_15s']} ({report['over_15s_during_outage']})",
                ]
            ],
        )
        + f"\n\nWorkflow start to close: p50 {w.get('p50')} / p90 {w.get('p90')} / p99 {w.get('p99')} / "
        f"max {w.get('max')} s. Clients that cancelled or changed the address at a random moment: "
        f"{report['with_cancel_or_address_change']}.",
        "## Faults\n\n"
        + table(["kind", "count"], sorted(report["faults"].items()))
        + (f"\n\nTemporal and Postgres outages: {len(outages)}, {min(outages)}-{max(outages)} s." if outages else ""),
        "## What clients saw\n\n"
        + table(["call and code", "count"], sorted(report["client_errors"].items(), key=lambda kv: -kv[1])),
        *([f"## Flood\n\n{report['flood']}"] if report["flood"] else []),
    ]


async def _closed(client: Client, workflow: str) -> WorkflowExecutionDescription | None:
    """The workflow's description once it has closed (None if it does not exist), waiting up to 90 s."""
    deadline = time.monotonic() + 90
    while True:
        try:
            description = await client.get_workflow_handle(workflow).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if description.close_time is not None or time.monotonic() > deadline:
            return description
        await asyncio.sleep(0.5)


class _WithToken:
    """The stub, with the gateway's token on every call."""

    def __init__(self, stub: "Stub", token: str):
        self.stub, self.metadata = stub, call_metadata(token)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.stub, name)
        return functools.partial(method, metadata=self.metadata)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {
        q: round(ordered[min(len(ordered) - 1, int(f * len(ordered)))], 2)
        for q, f in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    }


async def _exists(client: Client, order_id: str) -> bool:
    """Asked of Temporal itself, in case the visibility listing lagged."""
    return await _closed(client, workflow_id(order_id)) is not None


def _listens(port: int) -> bool:
    try:
        local.wait_for_port(port, 0.2)
        return True
    except RuntimeError:
        return False


# The histories are sealed as in production; the soak reads them with the key it gave the stack.
KEY = os.urandom(32)
# With --flood the gateway asks for a token; honest clients have it, the flood does not.
TOKEN = base64.urlsafe_b64encode(os.urandom(24)).decode()
WRONG_TOKEN = (("authorization", "Bearer not-the-token"),)
SERVICE = pb.DESCRIPTOR.services_by_name["OrderGatewayService"].full_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fault-every",
        type=lambda s: tuple(float(x) for x in s.split(",")),
        default=(15.0, 20.0),
        metavar="LOW,HIGH",
        help="seconds between faults, drawn between LOW and HIGH (default 15,20: over 30 in ten minutes)",
    )
    parser.add_argument(
        "--flood",
        type=float,
        default=0,
        metavar="PER_SECOND",
        help="with a gateway token, also send this many requests a second without it or malformed (default 0: none)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="PREFIX",
        help="write the report to PREFIX.md and PREFIX.json (docs/reports/soak keeps the latest)",
    )
    args = parser.parse_args()
    source = report_file.provenance("lab.soak", sys.argv[1:])
    # SIGTERM (a CI timeout, kill) ends the run through the `finally` below, which stops the stack it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = local.LocalStack(
        Path(tempfile.mkdtemp(prefix="soak-")),
        env={
            "PAYLOAD_KEY": base64.b64encode(KEY).decode(),
            "LOG_LEVEL": "WARNING",
            **({"GATEWAY_TOKEN": TOKEN} if args.flood else {}),
        },
        replicas={"order_service": 2, "shipping_service": 2},
    )
    stack.start_postgres()
    plan_file = stack.state / "supervise.json"
    plan_file.write_text(json.dumps(stack.plan()))
    supervisor = local.spawn(
        [sys.executable, "-m", "stack.supervise", str(plan_file), str(stack.state / "supervised.json")],
        stack.logs / "supervisor.log",
        os.environ.copy(),
        detach=False,
    )
    try:
        local.wait_until_serving(stack.gateway_port, 60, supervisor, "gateway")
        print(
            f"soak: {args.minutes} min, {args.concurrency} clients, seed {args.seed}, logs in {stack.logs}", flush=True
        )
        report = asyncio.run(Soak(args, stack, random.Random(args.seed)).run())
    finally:
        local.stop_process(supervisor.pid, timeout=60)
        local.stop_postgres(stack.pgdata)
    missed = missed_targets(report)
    report["missed_targets"] = missed
    print(json.dumps(report, indent=2))
    if args.report:
        report_file.write(args.report, "Soak: orders under faults", source, report, sections(report))
    print("targets met" if not missed else "targets missed:\n  " + "\n  ".join(missed))
    raise SystemExit(1 if missed else 0)


if __name__ == "__main__":
    main()
