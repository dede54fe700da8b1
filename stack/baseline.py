"""The benchmark's baseline: a bare Temporal workflow running the same chain of flaky steps with the
same timeouts and retries, and nothing else (no gateway, database, review, tracing or hang cut).

    python -m stack.baseline <temporal address> <task queue>     runs its worker
"""

import asyncio
import sys

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from common import brief
    from common.budget import attempt_options
    from order_service.contract import Budget

STEPS = ("ReceiveOrder", "ValidateOrder", "ChargePayment", "PreparePackage", "DispatchCarrier", "MarkShipped")


@activity.defn(name="BareStep")
async def bare_step(step: str) -> None:
    await brief.flaky_call()


@workflow.defn(name="BareOrderWorkflow")
class BareOrderWorkflow:
    @workflow.run
    async def run(self, budget: Budget) -> str:
        from datetime import timedelta

        until = workflow.info().workflow_start_time + timedelta(seconds=budget.total_seconds)
        try:
            for step in STEPS:
                options = attempt_options(workflow.now(), until, budget.steps)
                await workflow.execute_activity(bare_step, step, **options)
        except Exception:
            return "FAILED"
        return "COMPLETED"


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    await Worker(client, task_queue=task_queue, workflows=[BareOrderWorkflow], activities=[bare_step]).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
