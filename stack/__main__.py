"""`python -m stack up|down|demo|deploy`: the local stack for people (./dev wraps it).

up      starts Postgres (embedded unless DATABASE_URL is set), migrations, the Temporal dev server with
        its Web UI, both workers (their build made current) and the gateway, all left running; then runs the demo.
down    stops everything `up` started.
demo    places a sample order, approves it when it reaches review, and prints it until it ends.
deploy  a rolling deploy of both workers to the code on disk now (stack/deploy.py, docs/deploys.md).
"""

import asyncio
import json
import os
import sys
import uuid

import grpc
from temporalio.client import Client

from client.cli import render
from client.connection import call_metadata
from common import versioning
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from stack import deploy as rolling
from stack import local
from stack.supervise import ProcessSpec

STATE = local.ROOT / ".stack"
PIDS = STATE / "pids.json"
SUPERVISED = STATE / "supervised.json"
TEMPORAL_PORT = int(os.environ.get("TEMPORAL_PORT", "7233"))
TEMPORAL_UI_PORT = int(os.environ.get("TEMPORAL_UI_PORT", "8233"))
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "50051"))
CODEC_PORT = int(os.environ.get("CODEC_PORT", "8089"))
# Each service and the Prometheus port its Temporal runtime serves /metrics on.
METRICS = {"order_service": 9101, "shipping_service": 9102, "gateway": 9103}
# The workers' grpc.health.v1 ports (the gateway answers health checks on its own port).
HEALTH = {"order_service": 9201, "shipping_service": 9202}


def up() -> bool:
    """Starts the stack; False if it was already up."""
    if PIDS.exists():
        print("the stack is already up (./dev down stops it; ./dev demo runs another demo order)")
        return False
    STATE.mkdir(exist_ok=True)
    stack = local.LocalStack(
        STATE,
        TEMPORAL_PORT,
        TEMPORAL_UI_PORT,
        GATEWAY_PORT,
        CODEC_PORT,
        database_url=os.environ.get("DATABASE_URL", ""),
        env={"PAYLOAD_KEY": local.payload_key(STATE)},
        metrics_ports=METRICS,
        health_ports=HEALTH,
    )
    print(f"postgres      {stack.start_postgres()}")
    print("migrations    applied (db/orders, db/shipping)")
    plan_file = STATE / "supervise.json"
    plan_file.write_text(json.dumps(stack.plan()))
    plan_file.chmod(0o600)  # it holds PAYLOAD_KEY
    supervisor = local.spawn(
        [sys.executable, "-m", "stack.supervise", str(plan_file), str(SUPERVISED)],
        stack.logs / "supervisor.log",
        os.environ.copy(),
        detach=True,
    )
    PIDS.write_text(json.dumps({"supervisor": supervisor.pid}))
    local.wait_for_port(TEMPORAL_PORT, 60, supervisor, "temporal dev server")
    codec_url = f"http://127.0.0.1:{CODEC_PORT}"
    print(
        f"temporal      127.0.0.1:{TEMPORAL_PORT}, Web UI http://127.0.0.1:{TEMPORAL_UI_PORT} (payloads decoded "
        f"through the codec server)"
    )
    print(
        f"codec server  {codec_url} (Temporal's remote codec protocol: temporal workflow show -w order-<id> "
        f"--codec-endpoint {codec_url})"
    )
    local.wait_until_serving(GATEWAY_PORT, 60, what="gateway")
    print(f"gateway       127.0.0.1:{GATEWAY_PORT} (grpcurl -plaintext 127.0.0.1:{GATEWAY_PORT} list)")
    build = asyncio.run(make_current(json.loads(plan_file.read_text())))
    print(f"workers       build {build}, current in Worker Deployments order-service and shipping-service (pinned)")
    print("metrics       " + ", ".join(f"{m} http://127.0.0.1:{p}/metrics" for m, p in METRICS.items()))
    print(
        "health        "
        + ", ".join(f"{m} 127.0.0.1:{p}" for m, p in HEALTH.items())
        + f", gateway 127.0.0.1:{GATEWAY_PORT} (python -m common.health ADDRESS)"
    )
    print(f"logs          {stack.logs}/*.log (JSON lines)")
    print(
        f"supervisor    restarts any of these processes that exits, as compose's restart policy would "
        f"({SUPERVISED} shows pids and restarts)"
    )
    print(f"histories     sealed with {STATE / 'payload.key'}; the Web UI and the codec server above read them\n")
    return True


async def make_current(plan: dict[str, ProcessSpec]) -> str:
    """The build `up` started becomes current (a stack started again on newer code routes new orders to it)."""
    return await rolling.make_plan_current(await Client.connect(f"127.0.0.1:{TEMPORAL_PORT}"), plan)


def deploy() -> None:
    if not PIDS.exists():
        raise SystemExit("the stack is not up (./dev up starts it)")

    async def run() -> None:
        client = await Client.connect(f"127.0.0.1:{TEMPORAL_PORT}")
        supervisor = json.loads(PIDS.read_text())["supervisor"]
        try:
            await rolling.Deploy(client, STATE / "supervise.json", supervisor, versioning.build_id()).run()
        except (rolling.DeployError, versioning.NoPollers) as err:
            raise SystemExit(f"deploy stopped: {err}") from None

    asyncio.run(run())


def down() -> None:
    if PIDS.exists():
        for name, pid in reversed(list(json.loads(PIDS.read_text()).items())):
            local.stop_process(pid, timeout=60)  # the supervisor stops what it runs first
            print(f"stopped {name}" + (" and everything it ran" if name == "supervisor" else ""))
        PIDS.unlink()
    if not os.environ.get("DATABASE_URL"):
        local.stop_postgres(local.LocalStack(STATE).pgdata)
        print("stopped postgres")


def demo() -> None:
    order_id = f"demo-{uuid.uuid4().hex[:8]}"
    auth = call_metadata(os.environ.get("GATEWAY_TOKEN", ""))
    with grpc.insecure_channel(f"127.0.0.1:{GATEWAY_PORT}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = pb_grpc.OrderGatewayServiceStub(channel)
        request = pb.StartOrderRequest(
            order_id=order_id,
            payment_id=f"pay-{order_id}",
            items=[pb.Item(sku="ABC", qty=1), pb.Item(sku="XYZ", qty=2)],
            address=pb.Address(
                name="Ada Lovelace", line1="12 Analytical St", city="London", postal_code="N1 9GU", country="GB"
            ),
        )
        print(f"$ orders start {order_id} ...")
        stub.StartOrder(request, timeout=10, metadata=auth)
        approved = False
        last = ""
        for update in stub.WatchOrder(pb.WatchOrderRequest(order_id=order_id), timeout=30, metadata=auth):
            view = render(update.order)
            if view != last:
                print(view, end="\n\n", flush=True)
                last = view
            if update.order.state == pb.ORDER_STATE_AWAITING_REVIEW and not approved:
                print(f"$ orders approve {order_id}")
                stub.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="demo"), timeout=10, metadata=auth)
                approved = True
    print(f"try: .venv/bin/orders status {order_id}   |   Temporal Web UI http://127.0.0.1:{TEMPORAL_UI_PORT}")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "up":
        if up():
            demo()
    elif command == "down":
        down()
    elif command == "demo":
        demo()
    elif command == "deploy":
        deploy()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
