"""What one Temporal operation costs the dev server, in CPU: python -m lab.costs [--workflows N] [--rounds R]

The benchmark (lab.bench) counts what each order asks of the server (history events, memo writes, search-attribute
upserts, timers, updates, describes, visibility queries); this prices each kind. It starts the dev server alone (the
project's own command line, stack.local), N idle workflows on an in-process worker, then, for each operation, does it
once on every workflow (ten at a time) and divides the server's CPU time by N. A signal carries each in-workflow
operation, so "signal" alone is the price of the carrier; an operation's own price is its figure minus that one.
Medians of R rounds.
"""

import argparse
import asyncio
import statistics
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from order_service.contract import ORDER_STATE_ATTRIBUTE
from stack import local

# A memo of about this size (larger than an order's OrderMemo: a price on the safe side).
MEMO = "x" * 1500


@workflow.defn(name="CostProbe")
class CostProbe:
    def __init__(self) -> None:
        self.n = 0
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def nothing(self) -> None:
        self.n += 1

    @workflow.signal
    def memo(self) -> None:
        self.n += 1
        workflow.upsert_memo({"status": f"{MEMO}{self.n}"})

    @workflow.signal
    def search_attribute(self) -> None:
        self.n += 1
        workflow.upsert_search_attributes([ORDER_STATE_ATTRIBUTE.value_set(str(self.n))])

    @workflow.signal
    def search_attribute_and_memo(self) -> None:
        self.n += 1
        workflow.upsert_search_attributes([ORDER_STATE_ATTRIBUTE.value_set(str(self.n))])
        workflow.upsert_memo({"status": f"{MEMO}{self.n}"})

    @workflow.signal
    def timer(self) -> None:
        asyncio.ensure_future(workflow.sleep(3600))

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.update
    def update(self) -> int:
        return self.n


def operations(client: Client) -> dict[str, Callable[[WorkflowHandle[Any, Any]], Awaitable[Any]]]:
    running = "WorkflowType='CostProbe' AND ExecutionStatus='Running'"
    return {
        "signal (and the workflow task it wakes)": lambda h: h.signal(CostProbe.nothing),
        "signal + memo write": lambda h: h.signal(CostProbe.memo),
        "signal + search-attribute upsert": lambda h: h.signal(CostProbe.search_attribute),
        "signal + upsert and memo write together": lambda h: h.signal(CostProbe.search_attribute_and_memo),
        "signal + timer started": lambda h: h.signal(CostProbe.timer),
        "update (and its workflow task)": lambda h: h.execute_update(CostProbe.update),
        "describe": lambda h: h.describe(),
        "visibility count": lambda h: client.count_workflows(running),
    }


# What each operation leaves in a probe's history, counted after the run: proof that what was priced was done.
DONE = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signals",
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED: "memo writes",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "search-attribute upserts",
    EventType.EVENT_TYPE_TIMER_STARTED: "timers started",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: "updates",
}


async def run(workflows: int, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """The median CPU milliseconds each operation cost the server per workflow, and what the probes' histories
    show was done, per workflow."""
    stack = local.LocalStack(Path(tempfile.mkdtemp(prefix="costs-")), keep_history=False)
    stack.start("temporal")
    server = psutil.Process(stack.procs["temporal"].pid)
    figures: dict[str, list[float]] = {}
    try:
        client = await Client.connect(stack.temporal_address)
        # Unsandboxed: the probe's own workflow code is not what is measured.
        async with Worker(
            client, task_queue="costs", workflows=[CostProbe], workflow_runner=UnsandboxedWorkflowRunner()
        ):
            handles = [
                await client.start_workflow(CostProbe.run, id=f"probe-{i}", task_queue="costs")
                for i in range(workflows)
            ]
            gate = asyncio.Semaphore(10)

            async def on_each(operation: Callable[[WorkflowHandle[Any, Any]], Awaitable[Any]]) -> None:
                async def one(handle: WorkflowHandle[Any, Any]) -> None:
                    async with gate:
                        await operation(handle)

                await asyncio.gather(*(one(h) for h in handles))

            for _ in range(rounds):
                for name, operation in operations(client).items():
                    await asyncio.sleep(1.5)  # what the last operation left (timers, visibility) settles first
                    before = sum(server.cpu_times()[:2])
                    await on_each(operation)
                    await asyncio.sleep(1.5)
                    figures.setdefault(name, []).append((sum(server.cpu_times()[:2]) - before) / workflows * 1000)
            await on_each(lambda h: h.signal(CostProbe.finish))
            done: Counter[str] = Counter()
            for handle in handles:
                await handle.result()
                history = await handle.fetch_history()
                done.update(DONE[e.event_type] for e in history.events if e.event_type in DONE)
    finally:
        stack.stop()
    priced = {name: round(statistics.median(values), 2) for name, values in figures.items()}
    return priced, {what: done[what] / workflows for what in DONE.values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    priced, done = asyncio.run(run(args.workflows, args.rounds))
    for name, ms in priced.items():
        print(f"{ms:7.2f} ms  {name}")
    print("done per workflow: " + ", ".join(f"{n:g} {what}" for what, n in done.items()))


if __name__ == "__main__":
    main()
