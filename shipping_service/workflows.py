"""ShippingWorkflow: PreparePackage → DispatchCarrier, telling the parent when dispatch fails.

Deterministic: no I/O, time from workflow.now(), decisions on dispatch retries left to the parent.
"""

import asyncio
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from common.budget import Alarms, OutOfBudget, compensate, run_step, wait_until
    import shipping_service.contract as s
    from shipping_service.activities import CancelInput, DispatchInput, PackageInput, ShippingActivities


def _reason(err: Exception) -> str:
    if isinstance(err, ActivityError) and err.cause is not None:
        cause = err.cause
        if cause.cause is not None:  # a timeout wraps the last attempt's error
            return f"{cause.message}; last attempt: {cause.cause.message}"
        return cause.message
    return str(err)


@workflow.defn(name=s.WORKFLOW)
class ShippingWorkflow:
    @workflow.init
    def __init__(self, inp: s.ShipmentInput) -> None:
        self.inp = inp
        self.ship_by = datetime.fromisoformat(inp.ship_by)
        self.address = inp.address
        self.round = 1
        self.retry_allowed_round = 1
        self.cancel: s.CancelShipment | None = None
        self.dispatching = False

    @workflow.run
    async def run(self, inp: s.ShipmentInput) -> s.ShipmentResult:
        log = {"order_id": inp.order_id}
        self.alarms = Alarms(self.ship_by)
        try:
            await self._step(s.PREPARE, ShippingActivities.prepare_package, PackageInput(inp.order_id, inp.items, self.address))
        except (ActivityError, OutOfBudget) as err:
            return await self._cancel(f"package not prepared: {_reason(err)}")
        while True:
            if self.cancel:
                return await self._cancel(self.cancel.reason)
            try:
                self.dispatching = True
                await self._step(
                    s.DISPATCH,
                    ShippingActivities.dispatch_carrier,
                    DispatchInput(inp.order_id, inp.items, self.address, self.round),
                    max_attempts=inp.dispatch_attempts_per_round,
                )
                workflow.logger.info("shipment_dispatched", extra={**log, "fields": {"round": self.round}})
                return s.ShipmentResult(inp.order_id, s.DISPATCHED, self.address)
            except (ActivityError, OutOfBudget) as err:
                reason = _reason(err)
            finally:
                self.dispatching = False
            workflow.logger.warning("dispatch_failed", extra={**log, "error": reason, "fields": {"round": self.round}})
            if not await self._tell_parent(s.DispatchFailure(reason, self.round)):
                return await self._cancel(f"dispatch failed: {reason}")

            def answered() -> bool:
                return self.cancel is not None or self.retry_allowed_round > self.round

            try:
                await wait_until(self.alarms, answered, self.ship_by)
            except asyncio.TimeoutError:
                return await self._cancel(f"dispatch failed and no retry came before the deadline: {reason}")
            if self.cancel is None:
                self.round = self.retry_allowed_round
                workflow.logger.info("dispatch_retry", extra={**log, "fields": {"round": self.round}})

    @workflow.signal(name=s.UPDATE_ADDRESS)
    def update_address(self, update: s.AddressUpdate) -> None:
        self.address = update.address
        if self.dispatching:
            # The running attempt carries the old address; a retry round takes the new one.
            workflow.logger.warning("address_update_during_dispatch", extra={"order_id": self.inp.order_id})

    @workflow.signal(name=s.RETRY_DISPATCH)
    def retry_dispatch(self, retry: s.RetryDispatch) -> None:
        self.retry_allowed_round = max(self.retry_allowed_round, retry.round)

    @workflow.signal(name=s.CANCEL_SHIPMENT)
    def cancel_shipment(self, cancel: s.CancelShipment) -> None:
        if self.cancel is None:
            self.cancel = cancel

    async def _step(self, step: str, activity, arg, max_attempts: int = 0) -> None:
        await run_step(self.alarms, step, activity, arg, self.ship_by, self.inp.timing, max_attempts)

    async def _tell_parent(self, failure: s.DispatchFailure) -> bool:
        """The child's half of the dispatch protocol (contract.py): tell the parent and wait for its answer."""
        parent = workflow.info().parent
        if parent is None:
            return False
        await workflow.get_external_workflow_handle(parent.workflow_id).signal(s.DISPATCH_FAILED, failure)
        return True

    async def _cancel(self, reason: str) -> s.ShipmentResult:
        status = await compensate(ShippingActivities.cancel_shipment,
                                  CancelInput(self.inp.order_id, self.inp.items, self.address, reason))
        if status == s.DISPATCHED:
            return s.ShipmentResult(self.inp.order_id, s.DISPATCHED, self.address)
        workflow.logger.info("shipment_cancelled", extra={"order_id": self.inp.order_id, "reason": reason})
        return s.ShipmentResult(self.inp.order_id, s.CANCELLED, self.address, reason)
