"""A second build of the order worker for the deploy test (test_deploy.py): its OrderWorkflow waits on one more
timer between the review and the charge, so it cannot replay a history of the first build that got past review.

    python -m tests.faults.changed_order_worker    (the order worker's own settings, from the environment)
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import order_service.contract as contract
    from order_service.workflows import OrderWorkflow


@workflow.defn(name=contract.WORKFLOW, failure_exception_types=[workflow.NondeterminismError])
class ChangedOrderWorkflow(OrderWorkflow):
    @workflow.run
    async def run(self, inp: contract.OrderInput) -> contract.OrderResult:
        return await super().run(inp)

    async def _review(self) -> None:
        await super()._review()
        await workflow.sleep(0.01)


def main() -> None:
    from common import worker_runner
    from order_service.config import Settings
    from order_service.worker import worker_for

    settings = Settings.from_env()
    worker_runner.serve("order_service", settings, worker_for(settings, ChangedOrderWorkflow))


if __name__ == "__main__":
    main()
