"""OrderWorkflow: receive → validate → manual review → charge → ShippingWorkflow child → mark shipped.

Deterministic: no I/O, time from workflow.now(). Every order ends COMPLETED, CANCELLED, REJECTED or
FAILED within its budget; a charged order that does not ship is refunded.
"""

import asyncio
import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    import order_service.contract as contract
    import shipping_service.contract as shipping
    from common import failures
    from common.step_runner import WORKFLOW_TASK_TIMEOUT, Alarms, OutOfBudget, Stopped, compensate, run_step, wait_until
    from order_service import rules
    from order_service.activities import (
        ChargeInput,
        FinalizeInput,
        MarkShippedInput,
        OrderActivities,
        OrderRef,
        ReceiveInput,
        ValidateInput,
    )

Arg = TypeVar("Arg")
Result = TypeVar("Result")
ShipmentHandle = workflow.ChildWorkflowHandle[Any, shipping.ShipmentResult]


def _now() -> str:
    return workflow.now().isoformat()


class _Ended(Exception):
    """Stops the lifecycle with a terminal state; compensation follows from what already happened."""

    def __init__(self, state: str, reason: str):
        super().__init__(reason)
        self.state = state
        self.reason = reason


def _describe(err: BaseException) -> tuple[str, str]:
    """(terminal state, reason) for a step that failed for good (common.failures says which)."""
    return (contract.REJECTED if failures.rejects(err) else contract.FAILED), failures.reason(err)


# Pinned by its worker (common/versioning.py): an execution finishes on the build it started on, so a deploy never
# needs a patch here (docs/deploys.md). A non-determinism error fails the execution instead of retrying its task
# until the 60 s backstop: the order's budget is gone by then, and the sweep (order_service/sweep.py) settles it.
@workflow.defn(name=contract.WORKFLOW, failure_exception_types=[workflow.NondeterminismError])
class OrderWorkflow:
    @workflow.init
    def __init__(self, inp: contract.OrderInput) -> None:
        self.inp = inp
        budget = inp.budget
        start = workflow.info().workflow_start_time
        self.deadline = start + timedelta(seconds=budget.total_seconds)
        self.review_closes = start + timedelta(seconds=budget.review_closes_at_seconds)
        self.work_until = self.deadline - timedelta(seconds=budget.compensation_reserve_seconds)
        # The last moment another dispatch round is worth ordering, and the last for MarkShipped.
        self.retry_cutoff = self.work_until - timedelta(seconds=1.0)
        self.closing = self.deadline - timedelta(seconds=budget.closing_reserve_seconds)
        self.status = contract.initial_status(inp, start)
        # What the memo holds: the gateway puts the initial status there as it starts the order (its own clock's
        # times until the first step ends); an order started another way has none, and gets it in its first task.
        self.published = copy.deepcopy(self.status) if contract.STATUS_MEMO_KEY in workflow.info().raw_memo else None
        self.ending = False
        self.cancel: contract.CancelRequest | None = None
        self.decision: tuple[str, contract.ReviewDecision] | None = None
        self.charge_started = False
        self.address_version = 0
        self.dispatch_failures: list[contract.DispatchFailure] = []

    @workflow.run
    async def run(self, inp: contract.OrderInput) -> contract.OrderResult:
        self.alarms = Alarms(self.review_closes, self.retry_cutoff, self.work_until, self.closing)
        if workflow.info().typed_search_attributes.get(contract.ORDER_STATE_ATTRIBUTE) != self.status.state:
            # The gateway sets it as it starts the order; an order started another way gets it here.
            workflow.upsert_search_attributes([contract.ORDER_STATE_ATTRIBUTE.value_set(self.status.state)])
        asyncio.ensure_future(self._publish_status())
        try:
            await self._lifecycle()
            state, reason = contract.COMPLETED, self.status.reason
        except _Ended as end:
            state, reason = end.state, end.reason
            await self._compensate(state, reason)
        self.ending = True  # from here the final status is written once, below
        self._enter(state, "", reason)
        self.status.ended_at = _now()
        for step in self.status.steps:  # a step the end overtook (review, when cancelled in review)
            if step.status == "running":
                step.status, step.ended_at = (
                    ("cancelled" if state == contract.CANCELLED else "failed"),
                    self.status.ended_at,
                )
        workflow.metric_meter().create_counter("orders_ended", "orders by terminal state").add(1, {"state": state})
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.upsert_memo({contract.STATUS_MEMO_KEY: self.status})
        return contract.OrderResult(
            inp.order_id, state, reason, self.status.payment, self.status.shipment_status, self.status
        )

    async def _publish_status(self) -> None:
        """Copies the status into the memo whenever it changed, at most about once a workflow task: the
        gateway reads it with a describe, which the server answers without a worker round trip."""
        while True:
            await workflow.wait_condition(lambda: self.ending or self.status != self.published)
            if self.ending:
                return
            self.published = copy.deepcopy(self.status)
            workflow.upsert_memo({contract.STATUS_MEMO_KEY: self.published})

    async def _lifecycle(self) -> None:
        inp = self.inp
        await self._step(
            contract.RECEIVE,
            contract.RECEIVED,
            OrderActivities.receive_order,
            ReceiveInput(inp.order_id, inp.payment_id, inp.items, inp.address),
            self.review_closes,
        )
        await self._step(
            contract.VALIDATE,
            contract.VALIDATING,
            OrderActivities.validate_order,
            ValidateInput(inp.order_id, inp.items),
            self.review_closes,
        )
        await self._review()
        self.charge_started = True
        self.status.payment = await self._step(
            contract.CHARGE,
            contract.CHARGING,
            OrderActivities.charge_payment,
            ChargeInput(inp.order_id, inp.payment_id, inp.items),
            self.work_until,
        )
        self._stop_if_cancelled()
        await self._ship()
        try:
            await self._step(
                contract.MARK_SHIPPED,
                contract.SHIPPING_STATE,
                OrderActivities.mark_shipped,
                MarkShippedInput(inp.order_id, self.status.address),
                self.closing,
            )
        except _Ended as end:
            # The parcel is with the carrier and the charge stands; only the bookkeeping step is late.
            self.status.reason = f"shipped; {end.reason}"
            await self._finalize(contract.COMPLETED, self.status.reason)

    async def _step(
        self,
        step: str,
        state: str,
        activity: MethodAsyncSingleParam[Any, Arg, Result],
        arg: Arg,
        until: datetime,
    ) -> Result:
        """One flaky step until `until`; a cancel stops it at once (the attempt in flight is waited for)."""
        stoppable = step != contract.MARK_SHIPPED  # once dispatched, the order ships whatever came before
        if stoppable:
            self._stop_if_cancelled()
        self._enter(state, step)
        progress = self._step_row(step)
        try:
            result = await run_step(
                self.alarms,
                step,
                activity,
                arg,
                until,
                self.inp.budget.steps,
                stop=lambda: stoppable and self.cancel is not None,
                summary=f"{step} for order {self.inp.order_id}",
            )
        except Stopped:
            progress.status, progress.ended_at = "cancelled", _now()
            self._stop_if_cancelled()
        except (ActivityError, OutOfBudget) as err:
            state, reason = _describe(err)
            progress.status, progress.error, progress.ended_at = "failed", reason, _now()
            workflow.logger.warning("step_failed", extra=self._log(error=reason))
            raise _Ended(state, f"{step}: {reason}") from None
        progress.status, progress.ended_at = "ok", _now()
        return result

    def _step_row(self, step: str) -> contract.StepProgress:
        """The status's row for a step starting now; the first step's row is there from the start."""
        if self.status.steps and self.status.steps[-1].step == step and self.status.steps[-1].status == "running":
            return self.status.steps[-1]
        row = contract.StepProgress(step, "running", started_at=_now())
        self.status.steps.append(row)
        return row

    async def _review(self) -> None:
        self._enter(contract.AWAITING_REVIEW, contract.REVIEW)
        progress = contract.StepProgress(contract.REVIEW, "running", started_at=_now())
        self.status.steps.append(progress)
        left = (self.review_closes - workflow.now()).total_seconds()
        workflow.logger.info("review_waiting", extra=self._log(fields={"window_seconds": round(left, 3)}))

        def decided() -> bool:
            return self.decision is not None or self.cancel is not None

        try:
            await wait_until(self.alarms, decided, self.review_closes)
        except TimeoutError:
            progress.status, progress.error, progress.ended_at = "failed", "review window expired", _now()
            workflow.logger.info("review_expired", extra=self._log())
            raise _Ended(contract.REJECTED, "review window expired without approval") from None
        progress.ended_at = _now()
        if self.cancel is not None:
            progress.status = "cancelled"
            self._stop_if_cancelled()
        assert self.decision is not None  # decided(), and a cancel has raised above
        verdict, decision = self.decision
        workflow.logger.info(
            "review_decided", extra=self._log(fields={"verdict": verdict, "reviewer": decision.reviewer})
        )
        if verdict == "reject":
            progress.status, progress.error = "failed", decision.reason
            raise _Ended(contract.REJECTED, f"rejected in review: {decision.reason or 'no reason given'}")
        progress.status = "ok"

    async def _ship(self) -> None:
        """Run the child and steer it: forward address changes and cancellation, decide on dispatch retries."""
        inp = self.inp
        self._enter(contract.SHIPPING_STATE, contract.SHIPPING_STEP)
        progress = contract.StepProgress(contract.SHIPPING_STEP, "running", started_at=_now())
        self.status.steps.append(progress)
        address_in_input = self.address_version
        child = await workflow.start_child_workflow(
            shipping.WORKFLOW,
            shipping.ShipmentInput(
                order_id=inp.order_id,
                items=inp.items,
                address=self.status.address,
                ship_by=self.work_until.isoformat(),
                timing=inp.budget.steps,
            ),
            id=shipping.workflow_id(inp.order_id),
            task_queue=inp.shipping_task_queue,
            task_timeout=WORKFLOW_TASK_TIMEOUT,
            static_summary=f"Shipment of {inp.summary()}",
            result_type=shipping.ShipmentResult,
        )
        result_task = asyncio.ensure_future(child)
        # An address that came while the child was being started is forwarded below.
        sent_address = address_in_input
        sent_cancel, answered = False, 0
        while True:
            # The condition is called only within this iteration's wait: it sees this iteration's values.
            await workflow.wait_condition(
                lambda: (
                    result_task.done()
                    or self.address_version != sent_address  # noqa: B023
                    or (self.cancel is not None and not sent_cancel)  # noqa: B023
                    or len(self.dispatch_failures) > answered  # noqa: B023
                )
            )
            if result_task.done():
                break
            if self.address_version != sent_address:
                sent_address = self.address_version
                await self._signal_child(child, shipping.UPDATE_ADDRESS, shipping.AddressUpdate(self.status.address))
            if self.cancel is not None and not sent_cancel:
                sent_cancel = True
                await self._signal_child(
                    child, shipping.CANCEL_SHIPMENT, shipping.CancelShipment(self.cancel.reason or "order cancelled")
                )
            while len(self.dispatch_failures) > answered:
                failure = self.dispatch_failures[answered]
                answered += 1
                await self._answer_dispatch_failure(child, failure, sent_cancel)
        result: shipping.ShipmentResult = result_task.result()
        self.status.shipment_status = result.status
        self.status.shipment_address = result.address
        progress.ended_at = _now()
        if result.status == shipping.DISPATCHED:
            progress.status = "ok"
            return
        progress.status, progress.error = ("cancelled" if self.cancel else "failed"), result.reason
        if self.cancel is not None:
            raise _Ended(contract.CANCELLED, self.cancel.reason or "cancelled by request")
        raise _Ended(contract.FAILED, f"shipping: {result.reason}")

    async def _answer_dispatch_failure(
        self, child: ShipmentHandle, failure: shipping.DispatchFailure, cancelling: bool
    ) -> None:
        """The parent's half of the dispatch protocol (shipping_service/contract.py): another round while
        rounds and time are left, else cancel the shipment (the order then fails and is refunded)."""
        if cancelling:
            return
        if failure.round <= self.inp.budget.dispatch_retries and not self.alarms.passed(self.retry_cutoff):
            workflow.logger.info("dispatch_retry_ordered", extra=self._log(fields={"round": failure.round + 1}))
            await self._signal_child(child, shipping.RETRY_DISPATCH, shipping.RetryDispatch(failure.round + 1))
        else:
            reason = f"dispatch failed {failure.round} time(s): {failure.reason}"
            workflow.logger.warning("dispatch_given_up", extra=self._log(error=reason))
            await self._signal_child(child, shipping.CANCEL_SHIPMENT, shipping.CancelShipment(reason))

    async def _signal_child(self, child: ShipmentHandle, name: str, arg: object) -> None:
        try:
            await child.signal(name, arg)
        except FailureError as err:
            # The child closed between the check and the signal; its result decides what comes next.
            workflow.logger.warning("child_signal_not_delivered", extra=self._log(error=f"{name}: {err}"))

    async def _compensate(self, state: str, reason: str) -> None:
        workflow.logger.info("compensation_started", extra=self._log(reason=reason, fields={"outcome": state}))
        if self.charge_started:
            # The charge may have landed even if its result never came back: refund whatever is recorded.
            self._enter(self.status.state, contract.REFUND)
            refunded = await compensate(OrderActivities.refund_payment, OrderRef(self.inp.order_id))
            if refunded is not None:
                self.status.payment = refunded
                workflow.logger.info("payment_refunded", extra=self._log(fields={"amount": refunded.amount}))
        await self._finalize(state, reason)

    async def _finalize(self, state: str, reason: str) -> None:
        self._enter(self.status.state, contract.FINALIZE)
        received = ReceiveInput(self.inp.order_id, self.inp.payment_id, self.inp.items, self.inp.address)
        await compensate(OrderActivities.finalize_order, FinalizeInput(self.inp.order_id, state, reason, received))

    def _stop_if_cancelled(self) -> None:
        if self.cancel is not None:
            raise _Ended(contract.CANCELLED, self.cancel.reason or "cancelled by request")

    def _enter(self, state: str, step: str, reason: str = "") -> None:
        changed = state != self.status.state
        self.status.state, self.status.step = state, step
        if reason:
            self.status.reason = reason
        # The Web UI shows this (Temporal's built-in metadata query); the step's attempts are its pending activity's.
        left = (self.deadline - workflow.now()).total_seconds()
        workflow.set_current_details(
            f"**{state}**"
            + (f", step **{step}**" if step else "")
            + (f": {self.status.reason}" if reason else "")
            + (f" ({left:.1f}s of the budget left)" if state not in contract.TERMINAL_STATES else "")
        )
        if changed:
            workflow.upsert_search_attributes([contract.ORDER_STATE_ATTRIBUTE.value_set(state)])
            workflow.logger.info("state_changed", extra=self._log(reason=reason or None))

    def _log(self, **extra: object) -> dict[str, object]:
        return {"order_id": self.inp.order_id, "state": self.status.state, "step": self.status.step, **extra}

    # The rules are order_service.rules; these give them what the order knows.

    def _cancel_refusal(self) -> rules.Refusal:
        return rules.cancel_refusal(self.status.state, self.status.shipment_status)

    def _address_refusal(self, address: contract.Address) -> rules.Refusal:
        return rules.address_refusal(self.status.state, self.status.shipment_status, self.cancel is not None, address)

    def _review_refusal(self) -> rules.Refusal:
        # By the clock, not by the review alarm: a decision that arrives in the same workflow task as the alarm is
        # refused whichever of the two the SDK hands the workflow first (an accepted update is recorded after the
        # commands the workflow gave before it ran). Only updates decide, so the clock is read in validators alone.
        return rules.review_refusal(
            self.status.state,
            window_closed=workflow.now() >= self.review_closes,
            decided=self.decision[0] if self.decision else "",
            cancelling=self.cancel is not None,
        )

    @staticmethod
    def _refuse(refusal: rules.Refusal) -> None:
        """Refuses an update: the caller sees the message, and the reason as the error's detail."""
        if refusal:
            reason, message = refusal
            raise ApplicationError(message, reason, type="FailedPrecondition", non_retryable=True)

    def _accept_cancel(self, req: contract.CancelRequest) -> None:
        if self.cancel is None:
            self.cancel = req
            workflow.logger.info("cancel_requested", extra=self._log(reason=req.reason))

    def _accept_address(self, update: contract.AddressUpdate) -> None:
        self.status.address = update.address
        self.address_version += 1
        workflow.logger.info("address_updated", extra=self._log())

    def _accept_decision(self, verdict: str, decision: contract.ReviewDecision) -> None:
        self.decision = (verdict, decision)

    @workflow.update(name=contract.CANCEL_ORDER)
    async def cancel_update(self, req: contract.CancelRequest) -> contract.OrderStatus:
        """Returns the status once the order has ended: CANCELLED, or refused if dispatch won the race. (Every
        update answers with the order's status, so the caller needs no describe to show it.)"""
        self._accept_cancel(req)
        await workflow.wait_condition(lambda: self.status.state in contract.TERMINAL_STATES)
        if self.status.state != contract.CANCELLED:
            dispatched = self.status.state == contract.COMPLETED
            why = self.status.reason or ("the parcel was dispatched first" if dispatched else "")
            self._refuse(
                (
                    contract.CANCEL_TOO_LATE,
                    f"order ended {self.status.state} before the cancellation took effect"
                    + (f": {why}" if why else ""),
                )
            )
        return self.status

    @cancel_update.validator
    def _validate_cancel(self, req: contract.CancelRequest) -> None:
        self._refuse(self._cancel_refusal())

    @workflow.update(name=contract.UPDATE_ADDRESS)
    def address_update(self, update: contract.AddressUpdate) -> contract.OrderStatus:
        self._accept_address(update)
        return self.status

    @address_update.validator
    def _validate_address(self, update: contract.AddressUpdate) -> None:
        self._refuse(self._address_refusal(update.address))

    @workflow.update(name=contract.APPROVE_ORDER)
    def approve_update(self, decision: contract.ReviewDecision) -> contract.OrderStatus:
        self._accept_decision("approve", decision)
        return self.status

    @approve_update.validator
    def _validate_approve(self, decision: contract.ReviewDecision) -> None:
        self._refuse(self._review_refusal())

    @workflow.update(name=contract.REJECT_ORDER)
    def reject_update(self, decision: contract.ReviewDecision) -> contract.OrderStatus:
        self._accept_decision("reject", decision)
        return self.status

    @reject_update.validator
    def _validate_reject(self, decision: contract.ReviewDecision) -> None:
        self._refuse(self._review_refusal())

    @workflow.signal(name=contract.CANCEL_ORDER)
    def cancel_signal(self, req: contract.CancelRequest) -> None:
        self._signal(self._cancel_refusal(), lambda: self._accept_cancel(req))

    @workflow.signal(name=contract.UPDATE_ADDRESS)
    def address_signal(self, update: contract.AddressUpdate) -> None:
        self._signal(self._address_refusal(update.address), lambda: self._accept_address(update))

    def _signal(self, refusal: rules.Refusal, accept: Callable[[], None]) -> None:
        if refusal:
            workflow.logger.warning(
                "signal_refused", extra=self._log(reason=refusal[1], fields={"refusal": refusal[0]})
            )
        else:
            accept()

    @workflow.signal(name=shipping.DISPATCH_FAILED)
    def dispatch_failed(self, failure: shipping.DispatchFailure) -> None:
        workflow.logger.warning(
            "dispatch_failed", extra=self._log(error=failure.reason, fields={"round": failure.round})
        )
        self.dispatch_failures.append(failure)
        self.status.dispatch_failures.append(f"round {failure.round}: {failure.reason}")

    @workflow.query(name=contract.STATUS_QUERY)
    def status_query(self) -> contract.OrderStatus:
        return self.status
