"""ShippingWorkflow: PreparePackage → DispatchCarrier, telling the parent when dispatch fails.

Deterministic: no I/O, time from workflow.now(), decisions on dispatch retries left to the parent.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    import shipping_service.contract as contract
    from common import failures
    from common.step_runner import Deadline, Stopped, compensate, run_step, wait_until
    from shipping_service.activities import DispatchInput, PackageInput, ShippingActivities
    from shipping_service.contract import CancelInput


Arg = TypeVar("Arg")


# Pinned by its worker (common/versioning.py): an execution finishes on the build it started on, so a deploy never
# needs a patch here (docs/deploys.md). A non-determinism error fails the execution instead of retrying its task
# until the 60 s backstop: the order's budget is gone by then, and the sweep (order_service/sweep.py) settles it.
@workflow.defn(name=contract.WORKFLOW, failure_exception_types=[workflow.NondeterminismError])
class ShippingWorkflow:
    @workflow.init
    def __init__(self, inp: contract.ShipmentInput) -> None:
        self.inp = inp
        self.ship_by = datetime.fromisoformat(inp.ship_by)
        self.address = inp.address
        self.round = 1
        self.retry_allowed_round = 1
        self.cancel: contract.CancelShipment | None = None
        self.dispatching = False

    @workflow.run
    async def run(self, inp: contract.ShipmentInput) -> contract.ShipmentResult:
        log = {"order_id": inp.order_id}
        # No timer while steps run: each activity's schedule-to-close already ends at ship_by. The deadline's timer
        # starts only if the shipment has to wait for the parent's answer to a failed dispatch.
        ship_by: Deadline | None = None
        try:
            # A cancel stops the packing at once; a dispatch, once started, runs its round out.
            await self._step(
                contract.Step.PREPARE,
                ShippingActivities.prepare_package,
                PackageInput(inp.order_id, inp.items, self.address),
                stop=lambda: self.cancel is not None,
            )
        except ActivityError as err:
            return await self._cancel(f"package not prepared: {failures.reason(err)}")
        except Stopped:
            assert self.cancel is not None  # the only reason to stop
            return await self._cancel(self.cancel.reason)
        while True:
            if self.cancel:
                return await self._cancel(self.cancel.reason)
            try:
                self.dispatching = True
                await self._step(
                    contract.Step.DISPATCH,
                    ShippingActivities.dispatch_carrier,
                    DispatchInput(inp.order_id, inp.items, self.address, self.round),
                    max_attempts=inp.dispatch_attempts_per_round,
                )
                workflow.logger.info("shipment_dispatched", extra={**log, "fields": {"round": self.round}})
                return contract.ShipmentResult(inp.order_id, contract.ShipmentStatus.DISPATCHED, self.address)
            except ActivityError as err:
                reason = failures.reason(err)
            finally:
                self.dispatching = False
            workflow.logger.warning("dispatch_failed", extra={**log, "error": reason, "fields": {"round": self.round}})
            if not await self._tell_parent(contract.DispatchFailure(reason, self.round)):
                return await self._cancel(f"dispatch failed: {reason}")

            def answered() -> bool:
                return self.cancel is not None or self.retry_allowed_round > self.round

            ship_by = ship_by or Deadline(self.ship_by)
            try:
                await wait_until(ship_by, answered)
            except TimeoutError:
                return await self._cancel(f"dispatch failed and no retry came before the deadline: {reason}")
            if self.cancel is None and ship_by.passed():
                return await self._cancel(f"dispatch failed and the deadline passed: {reason}")
            if self.cancel is None:
                self.round = self.retry_allowed_round
                workflow.logger.info("dispatch_retry", extra={**log, "fields": {"round": self.round}})

    @workflow.signal(name=contract.UPDATE_ADDRESS)
    def update_address(self, update: contract.AddressUpdate) -> None:
        self.address = update.address
        if self.dispatching:
            # The running attempt carries the old address; a retry round takes the new one.
            workflow.logger.warning("address_update_during_dispatch", extra={"order_id": self.inp.order_id})

    @workflow.signal(name=contract.RETRY_DISPATCH)
    def retry_dispatch(self, retry: contract.RetryDispatch) -> None:
        self.retry_allowed_round = max(self.retry_allowed_round, retry.round)

    @workflow.signal(name=contract.CANCEL_SHIPMENT)
    def cancel_shipment(self, cancel: contract.CancelShipment) -> None:
        if self.cancel is None:
            self.cancel = cancel

    async def _step(
        self,
        step: str,
        activity: MethodAsyncSingleParam[Any, Arg, None],
        arg: Arg,
        max_attempts: int = 0,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        details = f"step **{step}**" + (f", dispatch round {self.round}" if step == contract.Step.DISPATCH else "")
        workflow.set_current_details(details)  # the Web UI shows it; the attempts are the pending activity's
        await run_step(
            step,
            activity,
            arg,
            self.ship_by,
            self.inp.timing,
            max_attempts,
            stop=stop,
            summary=f"{step} for order {self.inp.order_id}",
        )

    async def _tell_parent(self, failure: contract.DispatchFailure) -> bool:
        """The child's half of the dispatch protocol (contract.py): tell the parent and wait for its answer."""
        parent = workflow.info().parent
        if parent is None:
            return False
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(contract.DISPATCH_FAILED, failure)
        return True

    async def _cancel(self, reason: str) -> contract.ShipmentResult:
        status = await compensate(
            ShippingActivities.cancel_shipment, CancelInput(self.inp.order_id, self.inp.items, self.address, reason)
        )
        if status == contract.ShipmentStatus.DISPATCHED:
            return contract.ShipmentResult(self.inp.order_id, contract.ShipmentStatus.DISPATCHED, self.address)
        workflow.logger.info("shipment_cancelled", extra={"order_id": self.inp.order_id, "reason": reason})
        return contract.ShipmentResult(self.inp.order_id, contract.ShipmentStatus.CANCELLED, self.address, reason)
