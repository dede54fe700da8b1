"""docker-compose.yml run as a user runs it, on a real Docker engine: from nothing to all healthy, orders through
the gateway container (the CLI, grpcurl), crashes of each service's main process while orders flow, a second order
worker, one trace across the containers, `up gateway` alone, and `down -v` leaving nothing. The tests run in file
order: the last two take the stack down."""

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf import json_format
from temporalio.client import Client

from lab import soak
from lab.bench import Reviewer
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from shipping_service import contract as shipping_contract
from stack import compose
from tests.compose.conftest import MEASURED, Stack
from tests.conftest import venv_bin
from tests.support import consistency

pytestmark = [pytest.mark.compose, pytest.mark.timeout(600)]
GATEWAY = "127.0.0.1:50051"
ADMIN_URL = "postgresql://postgres:postgres@127.0.0.1:5432/orders"
ADDRESS = [
    "--name",
    "Ada",
    "--line1",
    "1 Loop Rd",
    "--city",
    "Springfield",
    "--postal-code",
    "12345",
    "--country",
    "US",
]
TERMINAL = {"COMPLETED", "CANCELLED", "REJECTED", "FAILED"}


def orders_started(*args: str) -> subprocess.Popen[str]:
    """The project's CLI against the gateway container's published port, started."""
    command = [venv_bin("orders"), "--gateway", GATEWAY, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(cli: subprocess.Popen[str]) -> str:
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, (cli.args, out, err)
    return out


def orders(*args: str) -> str:
    return finished(orders_started(*args))


def status(order_id: str) -> dict:
    """The order as `orders status -o json` prints it, over the generated stubs (quicker to poll than the CLI)."""
    with grpc.insecure_channel(GATEWAY) as channel:
        answer = pb_grpc.OrderGatewayServiceStub(channel).GetOrder(pb.GetOrderRequest(order_id=order_id), timeout=10)
    return json_format.MessageToDict(answer.order, preserving_proto_field_name=True)


def wait_for(order_id: str, states: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        order = status(order_id)
        if order["state"].removeprefix("ORDER_STATE_") in states:
            return order
        assert time.monotonic() < deadline, f"{order_id} still {order['state']}, waited for {states}"
        time.sleep(0.1)


def start_and_approve(order_id: str) -> None:
    orders("start", order_id, "--item", "ABC:2", *ADDRESS)
    wait_for(order_id, {"AWAITING_REVIEW"})
    orders("approve", order_id)


def new_id(what: str) -> str:
    return f"compose-{what}-{uuid.uuid4().hex[:6]}"


def test_from_nothing_every_service_is_healthy(stack: Stack):
    expected = {"postgres", "temporal", "order-service", "shipping-service", "gateway", "codec-server", "jaeger"}
    running = {name.removeprefix("orderlife-").rsplit("-", 1)[0] for name in stack.containers()}
    assert running == expected
    for container in stack.containers():
        stack.wait_healthy(container, timeout=5)
    for migration in ("migrate-orders", "migrate-shipping"):
        (container,) = stack.containers(migration, everything=True)
        assert stack.inspect(container)["State"]["ExitCode"] == 0


def test_an_order_completes_through_the_gateway_container(stack: Stack):
    order_id = new_id("happy")
    start_and_approve(order_id)
    order = wait_for(order_id, TERMINAL)
    assert order["state"] == "ORDER_STATE_COMPLETED", order
    assert order["payment"]["status"] == "charged" and order["shipment"]["status"] == "dispatched"
    # grpcurl, as the README's examples call it, through the gateway's reflection.
    done = subprocess.run(
        [venv_bin("grpcurl"), "-plaintext", "-d", json.dumps({"order_id": order_id}), GATEWAY,
         "orderlife.gateway.v1.OrderGatewayService/GetOrder"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0 and '"ORDER_STATE_COMPLETED"' in done.stdout, done.stderr


def test_the_codec_server_container_shows_a_sealed_history_in_the_clear(stack: Stack):
    """The workers' containers seal payloads with PAYLOAD_KEY; `temporal workflow show` reads the history through
    the codec-server container as the Web UI does (the next test opens the page in Chromium)."""
    order_id = new_id("sealed")
    start_and_approve(order_id)
    wait_for(order_id, TERMINAL)
    show = [venv_bin("temporal"), "workflow", "show", "-w", f"order-{order_id}", "--detailed"]
    show += ["--address", "127.0.0.1:7233"]
    sealed = subprocess.run(show, capture_output=True, text=True, timeout=30)
    decoded = subprocess.run(
        show + ["--codec-endpoint", "http://127.0.0.1:8089"], capture_output=True, text=True, timeout=30
    )
    assert sealed.returncode == 0 and decoded.returncode == 0, sealed.stderr + decoded.stderr
    assert "1 Loop Rd" not in sealed.stdout
    assert "1 Loop Rd" in decoded.stdout, decoded.stdout[-2000:]
    with urllib.request.urlopen("http://127.0.0.1:8233/", timeout=10) as page:
        assert page.status == 200


def web_ui_page(url: str, profile: Path) -> str:
    """The page as headless Chromium renders it (its DOM once the page's scripts have run)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("not run: no chromium here (Debian's chromium package; .ci/run installs it as root)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
    flags += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    flags += [f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", url]
    done = subprocess.run([chromium, *flags], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_web_ui_shows_an_orders_input_decoded_through_the_codec_server_container(stack: Stack, tmp_path: Path):
    order_id = new_id("web-ui")
    start_and_approve(order_id)
    wait_for(order_id, TERMINAL)
    url = f"http://localhost:8233/namespaces/default/workflows/order-{order_id}"
    assert "1 Loop Rd" in web_ui_page(url, tmp_path / "with-codec")
    (codec,) = stack.containers("codec-server")
    compose.docker("stop", codec)
    try:
        assert "1 Loop Rd" not in web_ui_page(url, tmp_path / "without-codec"), "the page shows it sealed or not at all"
    finally:
        compose.docker("start", codec)
        stack.wait_healthy(codec)


class ShippingStopped:
    """The shipping worker stopped (docker stop: it ends what it holds and exits; no restart policy undoes a manual
    stop), so an order waits for its parcel after its charge, and the order workflow's signal to its shipment is
    written to the shipment's history at once. A frozen worker (docker pause) may hold one of the shipment's
    workflow tasks, which holds the signal back until that task times out, 10 s, most of the order's budget."""

    def __init__(self, stack: Stack):
        (self.container,) = stack.containers("shipping-service")

    def __enter__(self) -> None:
        stopped = compose.docker("stop", self.container)
        assert stopped.returncode == 0, stopped.stderr

    def __exit__(self, *exc: object) -> None:
        compose.docker("start", self.container)


def grpcurl_started(method: str, request: dict) -> subprocess.Popen[str]:
    """grpcurl calling the gateway container, started (a cancel answers once the order has ended)."""
    command = [venv_bin("grpcurl"), "-plaintext", "-max-time", "60", "-d", json.dumps(request), GATEWAY]
    command.append(f"orderlife.gateway.v1.OrderGatewayService/{method}")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_shipping_is_signalled(order_id: str, timeout: float = 30) -> None:
    """Until the order workflow's signal (cancel or new address) is in its shipment's history: the shipment sees it
    at its next step, before dispatch, once its worker runs again."""
    show = [venv_bin("temporal"), "workflow", "show", "-w", shipping_contract.workflow_id(order_id)]
    show += ["--address", "127.0.0.1:7233", "-o", "json"]
    deadline = time.monotonic() + timeout
    while "EXECUTION_SIGNALED" not in subprocess.run(show, capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, f"no signal reached the shipment of {order_id}"
        time.sleep(0.1)


def test_an_order_cancelled_after_its_charge_is_refunded(stack: Stack):
    order_id = new_id("cancel")
    with ShippingStopped(stack):
        start_and_approve(order_id)
        order = wait_for(order_id, {"SHIPPING"})
        assert order["payment"]["status"] == "charged", order
        cancel = grpcurl_started("CancelOrder", {"order_id": order_id, "reason": "changed mind"})
        wait_until_shipping_is_signalled(order_id)
    out, err = cancel.communicate(timeout=90)
    assert cancel.returncode == 0 and "ORDER_STATE_CANCELLED" in out, err
    order = wait_for(order_id, TERMINAL)
    assert order["state"] == "ORDER_STATE_CANCELLED", order
    assert order["payment"]["status"] == "refunded", order
    assert order.get("shipment", {}).get("status", "") != "dispatched", order


def test_an_address_changed_before_dispatch_is_where_it_ships(stack: Stack):
    order_id = new_id("address")
    new = {"name": "Bo", "line1": "2 New St", "city": "Shelbyville", "postal_code": "54321", "country": "US"}
    with ShippingStopped(stack):
        start_and_approve(order_id)
        wait_for(order_id, {"SHIPPING"})
        moved = grpcurl_started("UpdateAddress", {"order_id": order_id, "address": new})
        wait_until_shipping_is_signalled(order_id)
    out, err = moved.communicate(timeout=90)
    assert moved.returncode == 0, err
    order = wait_for(order_id, TERMINAL)
    assert order["state"] == "ORDER_STATE_COMPLETED", order
    assert order["shipment"]["status"] == "dispatched" and order["shipment"]["address"]["line1"] == "2 New St", order


async def orders_flowing(seconds: float, during, lanes: int = 4) -> list[soak.Order]:
    """`lanes` clients place orders one after another for `seconds` (the soak's clients: each waits for its order's
    end and tries a call again on UNAVAILABLE and the like; a share cancel or change the address), a reviewer
    approves them, and `during()` runs meanwhile. Returns the orders placed."""
    load = soak.Soak(argparse.Namespace(seed=random.randrange(10**6)), None, random.Random())  # type: ignore[arg-type]
    async with grpc.aio.insecure_channel(GATEWAY) as channel:
        stub = pb_grpc.OrderGatewayServiceStub(channel)
        reviewer = asyncio.create_task(
            Reviewer(stub, soak.RETRY_ON | {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN}).run()
        )
        until = time.monotonic() + seconds
        clients = [asyncio.create_task(load.client(stub, lane, until)) for lane in range(lanes)]
        await during()
        await asyncio.gather(*clients)
        reviewer.cancel()
    return load.orders


async def consistency_problems(placed: list[soak.Order]) -> list[str]:
    """The soak's checks on the acknowledged orders, plus: every acknowledged order ended."""
    acknowledged = {o.order_id: o.state for o in placed if o.acknowledged}
    found = [f"{order_id}: no end seen" for order_id, state in acknowledged.items() if not state]
    admin = await asyncpg.create_pool(ADMIN_URL, min_size=1, max_size=2)
    try:
        client = await Client.connect("127.0.0.1:7233")
        found += await consistency.problems(admin, client, acknowledged)
    finally:
        await admin.close()
    return found


@pytest.mark.parametrize("service", ["order-service", "shipping-service", "gateway", "postgres"])
async def test_a_crashed_service_is_restarted_and_no_order_is_lost_or_charged_twice(stack: Stack, service: str):
    (container,) = stack.containers(service)
    restarts: list[tuple[int, float]] = []

    async def crash() -> None:
        await asyncio.sleep(4)
        before = stack.crash(container)
        back = await asyncio.to_thread(stack.wait_healthy, container, 120, before + 1)
        restarts.append((before, back))

    placed = await orders_flowing(14, crash)
    (before, back), after = restarts[0], stack.inspect(container)["RestartCount"]
    assert after == before + 1, "the restart policy did not bring it back"
    problems = await consistency_problems(placed)
    acknowledged = [o for o in placed if o.acknowledged]
    by_state: dict[str, int] = {}
    for order in acknowledged:
        by_state[order.state] = by_state.get(order.state, 0) + 1
    MEASURED[f"{service} SIGKILLed"] = (
        f"restarted and healthy again in {back:.1f} s; {len(acknowledged)} orders acknowledged, ended {by_state}"
    )
    assert acknowledged and not problems, problems


async def test_two_order_workers_share_the_queue_and_orders_complete_while_one_is_killed(stack: Stack, tmp_path: Path):
    # The second worker cannot take the first's published metrics and health ports: this override drops them.
    unpublished = tmp_path / "scale.yml"
    unpublished.write_text("services:\n  order-service:\n    ports: !reset []\n")
    scale = ["up", "--wait", "--wait-timeout", "120", "--scale"]
    await asyncio.to_thread(stack.compose, *scale, "order-service=2", extra_files=(str(unpublished),))
    workers = stack.containers("order-service")
    assert len(workers) == 2, workers

    async def kill_one() -> None:
        await asyncio.sleep(3)
        stack.crash(workers[0])

    placed = await orders_flowing(10, kill_one)
    problems = await consistency_problems(placed)
    states = {o.state for o in placed if o.acknowledged}
    MEASURED["two order workers, one SIGKILLed"] = f"{len(placed)} orders, ended {sorted(states)}"
    assert "COMPLETED" in states and not problems, problems
    await asyncio.to_thread(stack.compose, *scale, "order-service=1")


def test_one_trace_runs_from_the_gateway_through_both_workers(stack: Stack):
    order_id = new_id("traced")
    start_and_approve(order_id)
    order = wait_for(order_id, TERMINAL)
    assert order["trace_id"], order
    deadline = time.monotonic() + 30
    services: set[str] = set()
    while time.monotonic() < deadline:  # the exporters send in batches
        with urllib.request.urlopen("http://127.0.0.1:16686/api/spans", timeout=5) as answer:
            spans = json.load(answer)
        services = {s["service"] for s in spans if s["trace_id"] == order["trace_id"]}
        if {"gateway", "order_service", "shipping_service"} <= services:
            break
        time.sleep(1)
    assert {"gateway", "order_service", "shipping_service"} <= services, services


def test_up_gateway_on_a_clean_project_starts_exactly_what_the_gateway_needs(stack: Stack):
    stack.compose("--profile", "*", "down", "--volumes", "--remove-orphans")
    assert not stack.containers(everything=True)
    plain = Stack(stack.standins, {"PAYLOAD_KEY": stack.env["PAYLOAD_KEY"]})
    started = time.monotonic()
    plain.compose("up", "--wait", "--wait-timeout", "240", "gateway")
    MEASURED["docker compose up gateway, clean project to healthy"] = f"{time.monotonic() - started:.1f} s"
    services = {
        stack.inspect(c)["Config"]["Labels"]["com.docker.compose.service"] for c in stack.containers(everything=True)
    }
    assert services == {
        "postgres",
        "migrate-orders",
        "migrate-shipping",
        "temporal",
        "order-service",
        "shipping-service",
        "gateway",
    }
    order_id = new_id("gateway-only")
    start_and_approve(order_id)
    assert wait_for(order_id, TERMINAL)["state"] == "ORDER_STATE_COMPLETED"


def test_down_with_volumes_leaves_nothing_of_the_project(stack: Stack):
    stack.compose("--profile", "*", "down", "--volumes", "--remove-orphans")
    label = f"label=com.docker.compose.project={compose.PROJECT}"
    assert not compose.docker("ps", "-aq", "--filter", label).stdout.split()
    assert not compose.docker("network", "ls", "-q", "--filter", label).stdout.split()
    assert not compose.docker("volume", "ls", "-q", "--filter", label).stdout.split()
