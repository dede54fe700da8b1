"""A deploy of changed workflow code in the middle of a steady load (docs/deploys.md).

Orders arrive one every ORDER_EVERY seconds, each approved at review, on a stack run by the supervisor as ./dev up
runs it. DEPLOY_AFTER seconds in, once two orders are past review, a second build whose OrderWorkflow waits on one
more timer before the charge (tests/faults/changed_order_worker.py, which cannot replay the first build's histories
past review) is deployed:

- versioned: by stack/deploy.py's Deploy, the code behind ./dev deploy (start, poll, current, drain, stop);
- unversioned, the old way: workers without versioning, the new code replacing the old workers at once.

The same checks run on both: no non-determinism error, every order terminal within 15 s, each order's history on
one build (the old one if it started before the switch, the new one after), the old workers stopped, and, after
the sweep, the rows consistent with the workflows (tests/support/consistency.py). The versioned deploy must pass
them all; the old way must break some, so this test can fail. Each run prints its figures.
"""

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import grpc
import pytest
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus

from common import codec, db
from order_service import sweep
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from stack import local
from stack.deploy import Deploy, make_plan_current
from tests.faults.conftest import KEY, FaultStack, drive
from tests.support import consistency

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]
ORDER_EVERY = 1.0
LOAD_SECONDS = 36.0
DEPLOY_AFTER = 6.0
BUDGET_SECONDS = 15.0
OLD, NEW = "build-1", "build-2"
PAST_REVIEW = "SELECT count(*) FROM orders.orders WHERE order_id LIKE 'deploy-%' AND state = 'SHIPPING'"
# Orders charged and not yet ended: their histories are past review.
PAST_REVIEW = "SELECT count(*) FROM orders.orders WHERE order_id LIKE 'deploy-%' AND state = 'SHIPPING'"
CHANGED_ORDER_WORKER = [sys.executable, "-m", "tests.faults.changed_order_worker"]


def start_stack(state: Path, versioned: bool) -> tuple[local.LocalStack, subprocess.Popen[bytes], Path]:
    stack = local.LocalStack(
        state,
        env={
            "PAYLOAD_KEY": base64.b64encode(KEY).decode(),
            "OTEL_SDK_DISABLED": "true",
            "METRICS_LISTEN": "",
            "WORKER_BUILD_ID": OLD,
            "WORKER_VERSIONING": "on" if versioned else "off",
            # The load is steady and bounded: no order is turned away for the gateway's own admission limit.
            "GATEWAY_MAX_ORDERS_IN_FLIGHT": "100",
        },
    )
    stack.start_postgres()
    plan_file = state / "supervise.json"
    plan_file.write_text(json.dumps(stack.plan()))
    supervisor = local.spawn(
        [sys.executable, "-m", "stack.supervise", str(plan_file), str(state / "supervised.json")],
        stack.logs / "supervisor.log",
        os.environ.copy(),
        detach=False,
    )
    return stack, supervisor, plan_file


async def routed(stack: local.LocalStack, plan_file: Path) -> None:
    """Until the first build is current in both deployments, as ./dev up waits before its demo order."""
    client = await Client.connect(stack.temporal_address)
    await make_plan_current(client, json.loads(plan_file.read_text()))


async def deploy_the_old_way(plan_file: Path, supervisor_pid: int) -> None:
    """The new code replaces the old workers at once: the supervisor stops them and starts the new ones."""
    plan = json.loads(plan_file.read_text())
    replaced = {}
    for name, spec in plan.items():
        if spec.get("worker"):
            args = CHANGED_ORDER_WORKER if spec["worker"] == "order_service" else spec["args"]
            replaced[f"{name}@{NEW}"] = {**spec, "args": args, "env": {**spec["env"], "WORKER_BUILD_ID": NEW}}
        else:
            replaced[name] = spec
    plan_file.write_text(json.dumps(replaced))
    os.kill(supervisor_pid, 1)  # SIGHUP: read the plan again


async def history_facts(client: Client, order_id: str) -> tuple[set[str], int]:
    """The builds that completed the order's workflow tasks, and its non-determinism failures."""
    history = await client.get_workflow_handle(f"order-{order_id}").fetch_history()
    builds, nondeterminism = set(), 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            version = event.workflow_task_completed_event_attributes.deployment_version
            builds.add(version.build_id or "unversioned")
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            cause = event.workflow_task_failed_event_attributes.cause
            nondeterminism += cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            failure = event.workflow_execution_failed_event_attributes.failure
            error = await client.data_converter.decode_failure(failure)  # sealed by the codec
            nondeterminism += "nondetermin" in f"{type(error).__name__} {getattr(error, 'type', '')} {error}".lower()
    return builds, nondeterminism


@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned-old-way"])
async def test_a_deploy_of_an_incompatible_build_under_steady_load(tmp_path, versioned):
    stack, supervisor, plan_file = start_stack(tmp_path, versioned)
    admin = None
    try:  # whatever fails from here, the stack is stopped
        local.wait_until_serving(stack.gateway_port, 60, supervisor, "gateway")
        if versioned:
            await routed(stack, plan_file)
        admin = await db.connect(stack.admin_url)
        client = await Client.connect(stack.temporal_address, data_converter=codec.data_converter(KEY))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.gateway_port}") as channel:
            gateway = FaultStack(stack, gateway=pb_grpc.OrderGatewayServiceStub(channel))
            started: dict[str, float] = {}
            stage_at: dict[str, float] = {}

            async def load() -> list[pb.Order]:
                runs = []
                until = time.monotonic() + LOAD_SECONDS
                while time.monotonic() < until:
                    order_id = f"deploy-{uuid.uuid4().hex[:8]}"
                    started[order_id] = time.time()
                    runs.append(asyncio.create_task(drive(gateway, order_id, timeout=90)))
                    await asyncio.sleep(ORDER_EVERY)
                return list(await asyncio.gather(*runs))

            async def deploy() -> dict[str, float]:
                await asyncio.sleep(DEPLOY_AFTER)
                # At a moment when orders are past review (the part of a history the new build cannot replay): a
                # deploy between two such orders would show nothing either way.
                give_up = time.monotonic() + 20
                while time.monotonic() < give_up and await admin.fetchval(PAST_REVIEW) < 2:
                    await asyncio.sleep(0.05)
                stage_at["start"] = time.time()
                if not versioned:
                    await deploy_the_old_way(plan_file, supervisor.pid)
                    stage_at["current"] = time.time()
                    return {}

                def report(line: str) -> None:
                    print(line, flush=True)
                    if line.startswith("current"):
                        stage_at["current"] = time.time()

                return await Deploy(
                    client,
                    plan_file,
                    supervisor.pid,
                    NEW,
                    worker_args={"order_service": CHANGED_ORDER_WORKER},
                    report=report,
                ).run()

            ended, stages = await asyncio.gather(load(), deploy())

            # The schedule's sweep has settled what ended without its final write (drive waited for an end); one
            # more now finds nothing left.
            left = await client.execute_workflow(
                sweep.SWEEP_WORKFLOW,
                sweep.SweepInput(unsettled_after_seconds=0),
                id=f"sweep-{uuid.uuid4().hex[:6]}",
                task_queue="orders-tq",
                result_type=sweep.SweepResult,
            )
            states = {o.order_id: pb.OrderState.Name(o.state).removeprefix("ORDER_STATE_") for o in ended}

            rows = await admin.fetch("SELECT order_id, state FROM orders.orders WHERE order_id = ANY($1)", list(states))
            for row in rows:
                if row["state"] in consistency.TERMINAL:
                    states[row["order_id"]] = row["state"]

            problems = await consistency.problems(admin, client, states)
            # The consistency rules want a workflow COMPLETED. An order whose workflow failed (a non-determinism
            # error) is consistent when its row has an end, written by the sweep or by the order itself before the
            # failure, and its payment and shipment agree with it (the other rules): only the workflow's own status
            # is excused.
            settled_ids = {
                r["order_id"]
                for r in await admin.fetch(
                    "SELECT order_id FROM orders.orders WHERE order_id = ANY($1) AND reason LIKE '%by the sweep%'",
                    list(states),
                )
            }
            problems = [p for p in problems if not p.endswith(": workflow FAILED")]

            switch = stage_at.get("current", float("inf"))
            broken: list[str] = []
            facts = {}
            sweep_latency: list[float] = []  # from the workflow's close to the sweep's end on the order's row
            for order in ended:
                builds, nondeterminism = await history_facts(client, order.order_id)
                facts[order.order_id] = builds
                took = (order.ended_at.ToDatetime() - order.started_at.ToDatetime()).total_seconds()
                description = await client.get_workflow_handle(f"order-{order.order_id}").describe()
                if nondeterminism:
                    broken.append(f"{order.order_id}: {nondeterminism} non-determinism error(s)")
                if description.status != WorkflowExecutionStatus.COMPLETED or took > BUDGET_SECONDS:
                    status = description.status.name if description.status else "?"
                    broken.append(f"{order.order_id}: workflow {status}, {took:.1f}s")
                if order.order_id in settled_ids and description.close_time:
                    row_end = await admin.fetchval(
                        "SELECT updated_at FROM orders.orders WHERE order_id = $1", order.order_id
                    )
                    sweep_latency.append(round((row_end - description.close_time).total_seconds(), 1))
                if len(builds) != 1:
                    broken.append(f"{order.order_id}: ran on builds {sorted(builds)}")
                elif versioned and started[order.order_id] < stage_at["start"] and builds != {OLD}:
                    broken.append(f"{order.order_id}: started before the deploy, ran on {builds}")
                elif versioned and started[order.order_id] > switch + 0.5 and builds != {NEW}:
                    broken.append(f"{order.order_id}: started after the switch, ran on {builds}")
            if versioned:
                state = json.loads((tmp_path / "supervised.json").read_text())
                if set(state) != {"temporal", "gateway", f"order_service@{NEW}", f"shipping_service@{NEW}"}:
                    broken.append(f"processes after the deploy: {sorted(state)}")
            broken += problems
            broken += [f"{s.order_id}: left for a later sweep" for s in left.settled]

            before = sum(t < stage_at["start"] for t in started.values())
            during = sum(stage_at["start"] <= t <= switch for t in started.values())
            if not before or len(started) - before - during < 3:
                broken.append(f"too few orders on each side of the deploy: {before} before, {len(started)} in all")
            print(
                json.dumps(
                    {
                        "deploy": "versioned" if versioned else "unversioned, the old way",
                        "orders": {"before": before, "during": during, "after": len(started) - before - during},
                        "end_states": dict(Counter(states.values())),
                        "builds": dict(Counter("+".join(sorted(b)) for b in facts.values())),
                        "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
                        "settled_by_sweep": len(settled_ids),
                        "sweep_seconds_after_close": sweep_latency,
                        "broken": broken[:20],
                        "broken_count": len(broken),
                    },
                    indent=2,
                ),
                flush=True,
            )
            if versioned:
                assert broken == [], broken
            else:
                assert any("non-determinism" in b for b in broken), broken
                assert not problems, problems  # even the old way ends, after the sweep, with nothing left charged
    finally:
        if admin is not None:
            await admin.close()
        local.stop_process(supervisor.pid, timeout=60)
        local.stop_postgres(stack.pgdata)
