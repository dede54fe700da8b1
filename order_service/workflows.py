"""OrderWorkflow: receive → validate → manual review → charge → ShippingWorkflow child → mark shipped.

Deterministic: no I/O, time from workflow.now(). Every order ends COMPLETED, CANCELLED, REJECTED or
FAILED within its budget; a charged order that does not ship is refunded.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.types import MethodAsyncSingleParam

with workflow.unsafe.imports_passed_through():
    import order_service.contract as contract
    import shipping_service.contract as shipping
    from common import failures
    from common.step_runner import Deadline, Stopped, compensate, run_step, wait_until
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
    from order_service.shipment import ShipmentSteering

Arg = TypeVar("Arg")
Result = TypeVar("Result")


def _now() -> str:
    return workflow.now().isoformat()


class _Ended(Exception):
    """Stops the lifecycle with a terminal state; compensation follows from what already happened."""

    def __init__(self, state: contract.OrderState, reason: str):
        super().__init__(reason)
        self.state = state
        self.reason = reason


def _describe(err: BaseException) -> tuple[contract.OrderState, str]:
    """(terminal state, reason) for a step that failed for good (common.failures says which)."""
    return (contract.OrderState.REJECTED if failures.rejects(err) else contract.OrderState.FAILED), failures.reason(err)


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
        self.closing = self.deadline - timedelta(seconds=budget.closing_reserve_seconds)
        self.memo = contract.order_memo(inp, start)
        self.status = contract.status_from_memo(
            inp.order_id, self.memo, contract.OrderState.RECEIVED, contract.Step.RECEIVE, start.isoformat()
        )
        # The gateway writes the memo and the listed state as it starts the order; one started another way (the
        # Temporal CLI, a test) gets them in its first task.
        info = workflow.info()
        self.memo_written = contract.ORDER_MEMO_KEY in info.raw_memo
        self.listed = info.typed_search_attributes.get(contract.ORDER_STATE_ATTRIBUTE)
        self.cancel: contract.CancelRequest | None = None
        self.decision: contract.ReviewOutcome | None = None
        self.charge_started = False
        self.shipment = ShipmentSteering(inp.order_id, budget.dispatch_retries)

    @workflow.run
    async def run(self, inp: contract.OrderInput) -> contract.OrderResult:
        self._enter(contract.OrderState.RECEIVED, contract.Step.RECEIVE)
        if not self.memo_written:
            self._write_memo()
        try:
            await self._lifecycle()
            state, reason = contract.OrderState.COMPLETED, self.status.reason
        except _Ended as end:
            state, reason = end.state, end.reason
            await self._compensate(state, reason)
        self._enter(state, "", reason)
        self.status.ended_at = workflow.now().isoformat()
        if self.memo.decision != self.decision:  # a rejection: written with the end, in the same visibility write
            self._write_memo()
        workflow.metric_meter().create_counter("orders_ended", "orders by terminal state").add(1, {"state": state})
        await workflow.wait_condition(workflow.all_handlers_finished)
        return contract.OrderResult(
            inp.order_id, state, reason, self.status.payment, self.status.shipment_status, self.status
        )

    def _write_memo(self) -> None:
        self.memo.address, self.memo.decision = self.status.address, self.decision
        workflow.upsert_memo({contract.ORDER_MEMO_KEY: self.memo})
        self.memo_written = True

    async def _lifecycle(self) -> None:
        inp = self.inp
        await self._step(
            contract.Step.RECEIVE,
            contract.OrderState.RECEIVED,
            OrderActivities.receive_order,
            ReceiveInput(inp.order_id, inp.payment_id, inp.items, inp.address),
            self.review_closes,
        )
        await self._step(
            contract.Step.VALIDATE,
            contract.OrderState.VALIDATING,
            OrderActivities.validate_order,
            ValidateInput(inp.order_id, inp.items),
            self.review_closes,
        )
        await self._review()
        self.charge_started = True
        self.status.payment = await self._step(
            contract.Step.CHARGE,
            contract.OrderState.CHARGING,
            OrderActivities.charge_payment,
            ChargeInput(inp.order_id, inp.payment_id, inp.items),
            self.work_until,
        )
        self._stop_if_cancelled()
        await self._ship()
        try:
            await self._step(
                contract.Step.MARK_SHIPPED,
                contract.OrderState.SHIPPING,
                OrderActivities.mark_shipped,
                MarkShippedInput(inp.order_id, self.status.address),
                self.closing,
            )
        except _Ended as end:
            # The parcel is with the carrier and the charge stands; only the bookkeeping step is late.
            self.status.reason = f"shipped; {end.reason}"
            await self._finalize(contract.OrderState.COMPLETED, self.status.reason)

    async def _step(
        self,
        step: str,
        state: contract.OrderState,
        activity: MethodAsyncSingleParam[Any, Arg, Result],
        arg: Arg,
        until: datetime,
    ) -> Result:
        """One flaky step until `until`; a cancel stops it at once (the attempt in flight is waited for)."""
        stoppable = step != contract.Step.MARK_SHIPPED  # once dispatched, the order ships whatever came before
        if stoppable:
            self._stop_if_cancelled()
        self._enter(state, step)
        try:
            return await run_step(
                step,
                activity,
                arg,
                until,
                self.inp.budget.steps,
                stop=lambda: stoppable and self.cancel is not None,
                summary=f"{step} for order {self.inp.order_id}",
            )
        except Stopped:
            self._stop_if_cancelled()
            raise  # a stop comes only from a cancel
        except ActivityError as err:
            state, reason = _describe(err)
            workflow.logger.warning("step_failed", extra=self._log(error=reason))
            raise _Ended(state, f"{step}: {reason}") from None

    async def _review(self) -> None:
        self._enter(contract.OrderState.AWAITING_REVIEW, contract.Step.REVIEW)
        left = (self.review_closes - workflow.now()).total_seconds()
        workflow.logger.info("review_waiting", extra=self._log(fields={"window_seconds": round(left, 3)}))
        # Not cancelled once decided: it fires only in an order still running at the window's close. A cancel would
        # add an event to every order, and a CancelTimer in the task a non-determinism error fails (an unversioned
        # deploy) makes the server refuse that failure, so the execution hangs instead of failing.
        window = Deadline(self.review_closes)
        try:
            await wait_until(window, lambda: self.decision is not None or self.cancel is not None)
        except TimeoutError:
            workflow.logger.info("review_expired", extra=self._log())
            raise _Ended(contract.OrderState.REJECTED, "review window expired without approval") from None
        self._stop_if_cancelled()
        assert self.decision is not None  # decided, and a cancel has raised above
        decision = self.decision
        workflow.logger.info(
            "review_decided", extra=self._log(fields={"verdict": decision.verdict, "reviewer": decision.reviewer})
        )
        if decision.verdict == "reject":
            raise _Ended(contract.OrderState.REJECTED, f"rejected in review: {decision.reason or 'no reason given'}")
        self._write_memo()  # the decision, in the same workflow task as the listed state's change below

    async def _ship(self) -> None:
        inp = self.inp
        self._enter(contract.OrderState.SHIPPING, contract.Step.SHIPPING)
        result = await self.shipment.run(
            shipping.ShipmentInput(
                order_id=inp.order_id,
                items=inp.items,
                address=self.status.address,
                ship_by=self.work_until.isoformat(),
                timing=inp.budget.steps,
            ),
            inp.shipping_task_queue,
            f"Shipment of {inp.summary()}",
        )
        self.status.shipment_status = result.status
        self.status.shipment_address = result.address
        if result.status == shipping.ShipmentStatus.DISPATCHED:
            return
        if self.cancel is not None:
            raise _Ended(contract.OrderState.CANCELLED, self.cancel.reason or "cancelled by request")
        raise _Ended(contract.OrderState.FAILED, f"shipping: {result.reason}")

    async def _compensate(self, state: contract.OrderState, reason: str) -> None:
        workflow.logger.info("compensation_started", extra=self._log(reason=reason, fields={"outcome": state}))
        if self.charge_started:
            # The charge may have landed even if its result never came back: refund whatever is recorded.
            self._enter(self.status.state, contract.Step.REFUND)
            refunded = await compensate(OrderActivities.refund_payment, OrderRef(self.inp.order_id))
            if refunded is not None:
                self.status.payment = refunded
                workflow.logger.info("payment_refunded", extra=self._log(fields={"amount": refunded.amount}))
        await self._finalize(state, reason)

    async def _finalize(self, state: contract.OrderState, reason: str) -> None:
        self._enter(self.status.state, contract.Step.FINALIZE)
        received = ReceiveInput(self.inp.order_id, self.inp.payment_id, self.inp.items, self.inp.address)
        await compensate(OrderActivities.finalize_order, FinalizeInput(self.inp.order_id, state, reason, received))

    def _stop_if_cancelled(self) -> None:
        if self.cancel is not None:
            raise _Ended(contract.OrderState.CANCELLED, self.cancel.reason or "cancelled by request")

    def _enter(self, state: contract.OrderState, step: str, reason: str = "") -> None:
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
            workflow.logger.info("state_changed", extra=self._log(reason=reason or None))
        listed = contract.listed_state(state)
        if listed != self.listed:  # around review and at the end: each change rewrites the visibility record
            self.listed = listed
            workflow.upsert_search_attributes([contract.ORDER_STATE_ATTRIBUTE.value_set(listed)])

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
            decided=self.decision.verdict if self.decision else "",
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
            self.shipment.cancel(req.reason or "order cancelled")
            workflow.logger.info("cancel_requested", extra=self._log(reason=req.reason))

    def _accept_address(self, update: contract.AddressUpdate) -> None:
        self.status.address = update.address
        self.shipment.change_address(update.address)
        self._write_memo()
        workflow.logger.info("address_updated", extra=self._log())

    def _accept_decision(self, verdict: str, decision: contract.ReviewDecision) -> None:
        self.decision = self.status.decision = contract.ReviewOutcome(
            verdict, decision.reviewer, decision.reason, workflow.now().isoformat()
        )

    @workflow.update(name=contract.CANCEL_ORDER)
    async def cancel_update(self, req: contract.CancelRequest) -> contract.OrderStatus:
        """Returns the status once the order has ended: CANCELLED, or refused if dispatch won the race. (Every
        update answers with the order's status, so the caller needs no describe to show it.)"""
        self._accept_cancel(req)
        await workflow.wait_condition(lambda: self.status.state in contract.TERMINAL_STATES)
        if self.status.state != contract.OrderState.CANCELLED:
            dispatched = self.status.state == contract.OrderState.COMPLETED
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
        self.shipment.dispatch_failed(failure)

    @workflow.query(name=contract.STATUS_QUERY)
    def status_query(self) -> contract.OrderStatus:
        return self.status
