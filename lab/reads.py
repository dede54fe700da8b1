"""What a status read costs over Temporal's own describe, on a box at rest: python -m lab.reads [--reads N]

The benchmark (lab.bench) samples GetOrder and a raw describe while orders run, where both wait on a saturated box.
This starts the stack (stack.local, as the benchmark does), places one order and leaves it in review (nobody
approves it), then reads it N times each way, in turn: GetOrder through the gateway (a describe, the memo and one
Postgres read) and a raw describe. The target: GetOrder's p99 within 10 ms of the describe's.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
from temporalio.client import Client

from common import codec
from lab import report as report_file
from lab.bench import percentiles
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from stack import local

TARGET_MS = 10.0


async def run(reads: int) -> dict[str, Any]:
    stack = local.LocalStack(
        Path(tempfile.mkdtemp(prefix="reads-")),
        keep_history=False,
        env={"LOG_LEVEL": "WARNING", "PAYLOAD_KEY": os.environ.get("PAYLOAD_KEY") or codec.new_key()},
    )
    stack.start_all()
    try:
        client = await Client.connect(stack.temporal_address)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.gateway_port}") as channel:
            stub = pb_grpc.OrderGatewayServiceStub(channel)
            order_id = f"reads-{uuid.uuid4().hex[:8]}"
            await stub.StartOrder(
                pb.StartOrderRequest(
                    order_id=order_id,
                    payment_id=f"pay-{order_id}",
                    items=[pb.Item(sku="ABC", qty=1)],
                    address=pb.Address(
                        name="Ada", line1="1 Loop Rd", city="Springfield", postal_code="12345", country="US"
                    ),
                )
            )
            order = (await stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
            while order.state != pb.ORDER_STATE_AWAITING_REVIEW:
                if order.ended_at.seconds:
                    raise SystemExit(f"the order ended {pb.OrderState.Name(order.state)} before review: run again")
                await asyncio.sleep(0.05)
                order = (await stub.GetOrder(pb.GetOrderRequest(order_id=order_id))).order
            handle = client.get_workflow_handle(f"order-{order_id}")
            took: dict[str, list[float]] = {"GetOrder": [], "describe": []}
            for _ in range(reads):
                started = time.perf_counter()
                await stub.GetOrder(pb.GetOrderRequest(order_id=order_id))
                took["GetOrder"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await handle.describe()
                took["describe"].append(time.perf_counter() - started)
            await handle.terminate("lab.reads is done with it")
    finally:
        stack.stop()
    return {
        "reads": reads,
        "state": "AWAITING_REVIEW",
        "ms": {name: {k: round(v * 1000, 2) for k, v in percentiles(values).items()} for name, values in took.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--report", type=Path, default=None, metavar="PREFIX", help="write PREFIX.md and PREFIX.json")
    args = parser.parse_args()
    source = report_file.provenance("lab.reads", sys.argv[1:])
    figures = asyncio.run(run(args.reads))
    ms = figures["ms"]
    over = round(ms["GetOrder"]["p99"] - ms["describe"]["p99"], 2)
    figures["p99_over_describe_ms"] = over
    rows = [[name, *(v[k] for k in ("p50", "p90", "p99", "max"))] for name, v in ms.items()]
    print(report_file.table(["read", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows))
    print(f"GetOrder p99 over the describe's: {over} ms (target ≤ {TARGET_MS})")
    if args.report:
        page = (
            f"One order awaiting review, read {args.reads} times each way, in turn, on a box at rest.\n\n"
            + report_file.table(
                ["target", "figure", ""],
                [
                    [
                        f"GetOrder p99 within {TARGET_MS:g} ms of a raw describe",
                        f"+{over} ms",
                        report_file.met(over <= TARGET_MS),
                    ],
                ],
            )  # fmt: skip
            + "\n\n"
            + report_file.table(["read", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows)
        )
        report_file.write(args.report, "Status reads: GetOrder against a raw describe", source, figures, [page])


if __name__ == "__main__":
    main()
