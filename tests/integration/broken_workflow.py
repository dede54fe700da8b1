"""An OrderWorkflow whose code raises after validation, so its workflow task fails again and again (a bug shipped in
a build): test_sweep.py shows how the order's status and the logs tell of it."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import order_service.contract as contract
    from order_service.workflows import OrderWorkflow


@workflow.defn(name=contract.WORKFLOW)
class BrokenOrderWorkflow(OrderWorkflow):
    @workflow.run
    async def run(self, inp: contract.OrderInput) -> contract.OrderResult:
        return await super().run(inp)

    async def _review(self) -> None:
        raise RuntimeError("a bug in the review step")
