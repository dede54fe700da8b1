"""The order's side of its shipment: start the ShippingWorkflow child and steer it until it ends. Address changes and
a cancellation are forwarded as they come; each failed dispatch round the child reports is answered (the dispatch
protocol, shipping_service/contract.py).

Deterministic, like the workflow it runs in: no I/O, no clock.
"""

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    import shipping_service.contract as shipping
    from common.step_runner import WORKFLOW_TASK_TIMEOUT

ShipmentHandle = workflow.ChildWorkflowHandle[Any, shipping.ShipmentResult]


class ShipmentSteering:
    """What the order tells its shipment. The order's handlers record address changes, the cancellation and the
    child's DispatchFailed signals here at any time; `run` forwards each once the child is running."""

    def __init__(self, order_id: str, dispatch_retries: int) -> None:
        self.order_id = order_id
        self.dispatch_retries = dispatch_retries
        self.address: shipping.Address | None = None
        self.address_version = 0
        self.cancel_reason: str | None = None
        self.failures: list[shipping.DispatchFailure] = []

    def change_address(self, address: shipping.Address) -> None:
        self.address = address
        self.address_version += 1

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason

    def dispatch_failed(self, failure: shipping.DispatchFailure) -> None:
        self.failures.append(failure)

    async def run(self, inp: shipping.ShipmentInput, task_queue: str, summary: str) -> shipping.ShipmentResult:
        """Starts the child and steers it until it ends; its result. An address that changes while the child is
        being started is forwarded."""
        sent_address = self.address_version
        child = await workflow.start_child_workflow(
            shipping.WORKFLOW,
            inp,
            id=shipping.workflow_id(inp.order_id),
            task_queue=task_queue,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            static_summary=summary,
            result_type=shipping.ShipmentResult,
        )
        result = asyncio.ensure_future(child)
        sent_cancel, answered = False, 0
        while True:
            # The condition is called only within this iteration's wait: it sees this iteration's values.
            await workflow.wait_condition(
                lambda: (
                    result.done()
                    or self.address_version != sent_address  # noqa: B023
                    or (self.cancel_reason is not None and not sent_cancel)  # noqa: B023
                    or len(self.failures) > answered  # noqa: B023
                )
            )
            if result.done():
                done: shipping.ShipmentResult = result.result()
                return done
            if self.address_version != sent_address and self.address is not None:
                sent_address = self.address_version
                await self._signal(child, shipping.UPDATE_ADDRESS, shipping.AddressUpdate(self.address))
            if self.cancel_reason is not None and not sent_cancel:
                sent_cancel = True
                await self._signal(child, shipping.CANCEL_SHIPMENT, shipping.CancelShipment(self.cancel_reason))
            while len(self.failures) > answered:
                failure = self.failures[answered]
                answered += 1
                if not sent_cancel:
                    await self._answer(child, failure)

    async def _answer(self, child: ShipmentHandle, failure: shipping.DispatchFailure) -> None:
        """Another round while rounds are left (the child gives up at its ship-by time), else cancel the shipment
        (the order then fails and is refunded)."""
        log = {"order_id": self.order_id}
        if failure.round <= self.dispatch_retries:
            workflow.logger.info("dispatch_retry_ordered", extra={**log, "fields": {"round": failure.round + 1}})
            await self._signal(child, shipping.RETRY_DISPATCH, shipping.RetryDispatch(failure.round + 1))
        else:
            reason = f"dispatch failed {failure.round} time(s): {failure.reason}"
            workflow.logger.warning("dispatch_given_up", extra={**log, "error": reason})
            await self._signal(child, shipping.CANCEL_SHIPMENT, shipping.CancelShipment(reason))

    async def _signal(self, child: ShipmentHandle, name: str, arg: object) -> None:
        try:
            await child.signal(name, arg)
        except FailureError as err:
            # The child closed between the check and the signal; its result decides what comes next.
            workflow.logger.warning(
                "child_signal_not_delivered", extra={"order_id": self.order_id, "error": f"{name}: {err}"}
            )
