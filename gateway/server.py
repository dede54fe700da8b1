"""The gRPC gateway: start, steer and inspect orders. Talks to Temporal; reads the attempt log from Postgres."""

import asyncio
import base64
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

import grpc
from google.rpc import status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
    WorkflowUpdateStage,
)
from temporalio.common import MetricMeter, SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from common import telemetry
from common.step_runner import WORKFLOW_TASK_TIMEOUT
from gateway import errors, mapping, security
from gateway.admission import Admission
from gateway.config import Settings
from gateway.mapping import Running
from gateway.repository import AttemptRow, OrderFacts, ReadRepository
from order_service import contract as orders
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# A backstop far past the 15 s budget: the workflow ends itself well before.
EXECUTION_TIMEOUT = timedelta(seconds=60)
RPC_TIMEOUT = timedelta(seconds=5)
# Cancel waits for the order to end (refund included), which the budget bounds.
CANCEL_TIMEOUT = timedelta(seconds=20)
# Whole-request deadlines: a call answers by then even when Temporal or Postgres does not (UNAVAILABLE),
# or sooner when the caller's own deadline is shorter.
REQUEST_DEADLINE_SECONDS = 5.0
DEADLINES_SECONDS = {
    "CancelOrder": CANCEL_TIMEOUT.total_seconds() + 2,
    "WaitOrder": EXECUTION_TIMEOUT.total_seconds() + 5,
}
WATCH_INTERVAL_SECONDS = 0.2
# How often the review queue looks for orders that started or stopped waiting (one visibility query).
REVIEW_POLL_SECONDS = 0.2
MAX_REQUEST_BYTES = 1 << 20
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["OrderGatewayService"].full_name

Context = grpc.aio.ServicerContext[Any, Any]
Request = TypeVar("Request")
Response = TypeVar("Response")


def _rpc(
    method: Callable[["OrderGateway", Request, Context], Awaitable[Response]],
) -> Callable[["OrderGateway", Request, Context], Coroutine[Any, Any, Response]]:
    """Maps failures to status codes and counts every call by method and code."""

    @functools.wraps(method)
    async def wrapper(self: "OrderGateway", request: Request, context: Context) -> Response:
        with self._call(method.__name__, request) as call:
            self._check_ready()
            async with asyncio.timeout(_deadline(method.__name__, context)):
                return await method(self, request, context)
        assert call.status is not None  # the block returned unless _call caught (and recorded) a failure
        await context.abort_with_status(errors.as_grpc(call.status))

    return wrapper


def _rpc_stream(
    method: Callable[["OrderGateway", Request, Context], AsyncIterator[Response]],
) -> Callable[["OrderGateway", Request, Context], AsyncIterator[Response]]:
    """The same for a server-streaming method (an async generator, as the tracing interceptor expects)."""

    @functools.wraps(method)
    async def wrapper(self: "OrderGateway", request: Request, context: Context) -> AsyncIterator[Response]:
        with self._call(method.__name__, request) as call:
            self._check_ready()
            async for response in method(self, request, context):
                yield response
        if call.status is not None:
            await context.abort_with_status(errors.as_grpc(call.status))

    return wrapper


def _deadline(method: str, context: Context) -> float:
    """Seconds this request may take: the method's own bound or, if shorter, the caller's deadline."""
    own = DEADLINES_SECONDS.get(method, REQUEST_DEADLINE_SECONDS)
    remaining = context.time_remaining()
    return own if remaining is None else max(0.0, min(own, remaining - 0.05))


class _Call:
    code = grpc.StatusCode.OK
    message = ""
    status: status_pb2.Status | None = None


@dataclass(frozen=True)
class _Backends:
    """What the gateway talks to once Temporal and Postgres answer (OrderGateway.ready)."""

    client: Client
    reader: ReadRepository
    reviews: "ReviewQueue"
    admission: Admission


class OrderGateway(pb_grpc.OrderGatewayServiceServicer):
    def __init__(self, settings: Settings, meter: MetricMeter = MetricMeter.noop):
        """Listens before Temporal and Postgres are reached (UNAVAILABLE, health NOT_SERVING); see ready()."""
        self.backends: _Backends | None = None
        self.settings = settings
        self.requests = meter.create_counter("gateway_requests", "gateway RPCs by method and status code")
        self.latency = meter.create_histogram_float("gateway_request_seconds", "gateway RPC latency", "s")
        self.health = health.aio.HealthServicer()

    async def ready(self, client: Client, reader: ReadRepository) -> None:
        self.backends = _Backends(
            client, reader, ReviewQueue(client), Admission(client, self.settings.max_orders_in_flight)
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gateway_ready")

    def _check_ready(self) -> _Backends:
        if self.backends is None:
            raise errors.Unavailable("the gateway is starting: Temporal or Postgres not reached yet; try again")
        return self.backends

    @contextlib.contextmanager
    def _call(self, method: str, request: object) -> Iterator[_Call]:
        """Records one RPC; an exception inside becomes the call's status code (and is swallowed)."""
        call, started = _Call(), time.monotonic()
        try:
            yield call
        except Exception as err:
            call.status = errors.status(err, getattr(request, "order_id", ""))
            call.code, call.message = errors.code_of(call.status), call.status.message
            unexpected = call.code == grpc.StatusCode.INTERNAL
            log.log(
                logging.ERROR if unexpected else logging.WARNING,
                "request_failed",
                # A refusal's message says it all; formatting its traceback cost more than the refusal itself.
                exc_info=err if unexpected else None,
                extra={
                    "order_id": getattr(request, "order_id", None),
                    "error": call.message,
                    "fields": {"method": method, "code": call.code.name},
                },
            )
        finally:
            labels = {"method": method, "code": call.code.name}
            self.requests.add(1, labels)
            self.latency.record(time.monotonic() - started, labels)

    def _handle(self, order_id: str) -> WorkflowHandle[Any, Any]:
        return self._check_ready().client.get_workflow_handle(
            orders.workflow_id(mapping.check_id("order_id", order_id))
        )

    async def _order(self, order_id: str) -> pb.Order:
        """The order as Temporal and Postgres have it now, with no worker asked: a describe (and the shipment's while
        it ships) beside one Postgres read; for an ended order, its result."""
        handle = self._handle(order_id)
        backends = self._check_ready()
        (description, running), (facts, attempts) = await asyncio.gather(
            self._describe(handle), backends.reader.order(order_id)
        )
        if description.status == WorkflowExecutionStatus.COMPLETED:
            # An ended order reads as it ended: its result (Temporal keeps it), as WaitOrder answers.
            final = await self._final_status(handle, wait=False)
            if final is not None:
                _link_to_order_trace(final.trace_id, final.span_id)
                return mapping.order_message(final, attempts, handle.id)
        status = await self._status(handle, description, running, facts, attempts)
        _link_to_order_trace(status.trace_id, status.span_id)
        return mapping.order_message(status, attempts, handle.id, running)

    async def _final_status(self, handle: WorkflowHandle[Any, Any], wait: bool) -> orders.OrderStatus | None:
        """The status the order ended with, from its close event's result (`wait`: once it has ended): None for an
        order that has not ended, or that ended without one (terminated, timed out, failed)."""
        events = handle.fetch_history_events(
            wait_new_event=wait, event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        )
        async for event in events:
            if event.HasField("workflow_execution_completed_event_attributes"):
                payloads = event.workflow_execution_completed_event_attributes.result.payloads
                [result] = await self._check_ready().client.data_converter.decode(payloads, [orders.OrderResult])
                if result.status is not None:
                    # Ended when the workflow closed, as a describe tells it (the workflow knows only when it chose to).
                    status: orders.OrderStatus = result.status
                    status.ended_at = event.event_time.ToDatetime(UTC).isoformat()
                    return status
            break
        return None

    async def _as_message(self, status: orders.OrderStatus, order_id: str) -> pb.Order:
        """The order as `status` has it, with the attempt log read now."""
        attempts = await self._check_ready().reader.attempts(order_id)
        _link_to_order_trace(status.trace_id, status.span_id)
        return mapping.order_message(status, attempts, orders.workflow_id(order_id))

    async def _describe(self, handle: WorkflowHandle[Any, Any]) -> tuple[WorkflowExecutionDescription, list[Running]]:
        """The order's describe, and what runs now: its pending activity, or its shipment and the shipment's."""
        description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        raw = description.raw_description
        running = [_running(a) for a in raw.pending_activities]
        for child in raw.pending_children:
            running.append(Running(orders.Step.SHIPPING))
            try:
                shipment = self._check_ready().client.get_workflow_handle(child.workflow_id)
                running += [
                    _running(a)
                    for a in (await shipment.describe(rpc_timeout=RPC_TIMEOUT)).raw_description.pending_activities
                ]
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
        return description, running

    async def _status(
        self,
        handle: WorkflowHandle[Any, Any],
        description: WorkflowExecutionDescription,
        running: list[Running],
        facts: OrderFacts,
        attempts: list[AttemptRow],
    ) -> orders.OrderStatus:
        """The order's status from what the gateway wrote at its start and the workflow rewrote since (the memo), its
        listed state and what runs now (the describe), and its payment, shipment and end (Postgres). An order
        started some other way (the temporal CLI, a test) has no memo until its first workflow task has run: then
        the workflow is asked (a query). A workflow that ended without its final write (timed out, terminated,
        failed) shows the end the sweep wrote, or that it awaits the sweep; one whose workflow task keeps failing
        shows that it is stuck, and why."""
        memo = await description.memo_value(orders.ORDER_MEMO_KEY, None, type_hint=orders.OrderMemo)
        if memo is None:
            if description.status != WorkflowExecutionStatus.RUNNING:
                raise errors.Unavailable(f"workflow {handle.id} ended {description.status} before its first task")
            status: orders.OrderStatus = await handle.query(
                orders.STATUS_QUERY, result_type=orders.OrderStatus, rpc_timeout=RPC_TIMEOUT
            )
            return status
        listed = description.typed_search_attributes.get(orders.ORDER_STATE_ATTRIBUTE) or ""
        state, step = mapping.live_state(listed, running, attempts)
        order_id = handle.id.removeprefix(orders.workflow_id(""))
        status = orders.status_from_memo(order_id, memo, state, step, description.start_time.isoformat())
        mapping.add_facts(status, facts)
        if description.status == WorkflowExecutionStatus.RUNNING:
            failed_tasks = description.raw_description.pending_workflow_task.attempt - 1
            if failed_tasks > 0 and status.state not in orders.TERMINAL_STATES:
                status.reason = f"stuck: its workflow task failed {failed_tasks} time(s): " + (
                    await _last_task_failure(self._check_ready().client, handle.id)
                )
        elif description.status in mapping.ENDED_WITHOUT_FINAL_WRITE:
            mapping.settled(status, description.status, facts.end)
        else:
            status.step, status.reason = "", facts.end[1] if facts.end else ""
            status.ended_at = description.close_time.isoformat() if description.close_time else ""
        return status

    async def _update(self, order_id: str, name: str, arg: object, wait: timedelta = RPC_TIMEOUT) -> pb.Order:
        """Sends the update straight to the order and returns the order as the update left it (every update
        answers with the status, so no describe follows). Its validator accepts or refuses it within RPC_TIMEOUT
        (the client's retries can outlast rpc_timeout while Temporal is unreachable); then the handler's result is
        awaited for up to `wait` (a cancel's result comes once the order has wound down)."""
        handle = self._handle(order_id)
        try:
            async with asyncio.timeout(RPC_TIMEOUT.total_seconds()):
                update = await handle.start_update(
                    name,
                    arg,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                    result_type=orders.OrderStatus,
                    rpc_timeout=RPC_TIMEOUT,
                )
            status: orders.OrderStatus = await update.result(rpc_timeout=wait)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            await self._refuse_missing(handle, order_id)
        return await self._as_message(status, order_id)

    async def _refuse_missing(self, handle: WorkflowHandle[Any, Any], order_id: str) -> NoReturn:
        """Why an update found no running order: none with that id (NOT_FOUND from the describe), it has ended,
        or it cannot take updates yet."""
        if (await handle.describe(rpc_timeout=RPC_TIMEOUT)).close_time is not None:
            order = await self._order(order_id)
            raise errors.Refused(
                orders.ORDER_ENDED, f"order {order_id!r} already ended {mapping.PROTO_TO_STATE[order.state]}"
            )
        raise errors.Unavailable(f"order {order_id!r} cannot take the request yet; try again")

    @_rpc
    async def StartOrder(self, request: pb.StartOrderRequest, context: Context) -> pb.StartOrderResponse:
        inp = mapping.order_input(request)
        inp.shipping_task_queue = self.settings.shipping_task_queue
        fingerprint = mapping.fingerprint(inp)
        trace_id, span_id = telemetry.trace_ids()
        inp.trace_id, inp.span_id = trace_id, span_id
        # The memo, and the listed state in the OrderState search attribute, from the start (free: part of the start):
        # a read before the workflow's first task needs no query, and the workflow need not write them again.
        started = datetime.now(UTC)
        memo = orders.order_memo(inp, started)
        status = orders.status_from_memo(
            inp.order_id, memo, orders.OrderState.RECEIVED, orders.Step.RECEIVE, started.isoformat()
        )
        backends = self._check_ready()
        await backends.admission.admit(inp.order_id)
        try:
            await backends.client.start_workflow(
                orders.WORKFLOW,
                inp,
                id=orders.workflow_id(inp.order_id),
                task_queue=self.settings.order_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                execution_timeout=EXECUTION_TIMEOUT,
                task_timeout=WORKFLOW_TASK_TIMEOUT,
                static_summary=inp.summary(),
                static_details=f"payment `{inp.payment_id}`, ship to {inp.address.city} {inp.address.country}",
                memo={"request": fingerprint, orders.ORDER_MEMO_KEY: memo},
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(orders.ORDER_STATE_ATTRIBUTE, orders.listed_state(status.state))]
                ),
                rpc_timeout=RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            existing = await self._started_already(inp.order_id, fingerprint)
            assert existing is not None  # Temporal has just said it exists
            return existing
        log.info("order_started", extra={"order_id": inp.order_id, "workflow_id": orders.workflow_id(inp.order_id)})
        return pb.StartOrderResponse(order=mapping.order_message(status, [], orders.workflow_id(inp.order_id)))

    async def _started_already(self, order_id: str, fingerprint: str) -> pb.StartOrderResponse | None:
        """The order started by the same request, or None if there is none; ALREADY_EXISTS if another request
        started it."""
        try:
            description = await self._handle(order_id).describe(rpc_timeout=RPC_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if await description.memo_value("request", None) != fingerprint:
            raise errors.AlreadyExists(f"order {order_id!r} already exists with a different request")
        return pb.StartOrderResponse(order=await self._order(order_id), already_existed=True)

    @_rpc
    async def ApproveOrder(self, request: pb.ApproveOrderRequest, context: Context) -> pb.ApproveOrderResponse:
        order = await self._update(request.order_id, orders.APPROVE_ORDER, mapping.review_decision(request))
        log.info("order_approved", extra={"order_id": request.order_id})
        return pb.ApproveOrderResponse(order=order)

    @_rpc
    async def RejectOrder(self, request: pb.RejectOrderRequest, context: Context) -> pb.RejectOrderResponse:
        order = await self._update(request.order_id, orders.REJECT_ORDER, mapping.review_decision(request))
        log.info("order_rejected", extra={"order_id": request.order_id})
        return pb.RejectOrderResponse(order=order)

    @_rpc
    async def CancelOrder(self, request: pb.CancelOrderRequest, context: Context) -> pb.CancelOrderResponse:
        order = await self._update(
            request.order_id, orders.CANCEL_ORDER, mapping.cancel_request(request), CANCEL_TIMEOUT
        )
        log.info("order_cancelled", extra={"order_id": request.order_id})
        return pb.CancelOrderResponse(order=order)

    @_rpc
    async def UpdateAddress(self, request: pb.UpdateAddressRequest, context: Context) -> pb.UpdateAddressResponse:
        order = await self._update(request.order_id, orders.UPDATE_ADDRESS, mapping.address_update(request))
        log.info("address_updated", extra={"order_id": request.order_id})
        return pb.UpdateAddressResponse(order=order)

    @_rpc
    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.GetOrderResponse:
        return pb.GetOrderResponse(order=await self._order(request.order_id))

    @_rpc_stream
    async def WatchOrder(self, request: pb.WatchOrderRequest, context: Context) -> AsyncIterator[pb.WatchOrderResponse]:
        last = None
        while True:
            async with asyncio.timeout(REQUEST_DEADLINE_SECONDS):
                order = await self._order(request.order_id)
            if order != last:
                yield pb.WatchOrderResponse(order=order)
                last = order
            if order.state in mapping.ENDED:
                return
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    @_rpc
    async def WaitOrder(self, request: pb.WaitOrderRequest, context: Context) -> pb.WaitOrderResponse:
        """One long poll for the workflow's close event (Temporal answers it when the order ends). The order's result
        carries its final status; a close without one (terminated, timed out) is read with a describe."""
        final = await self._final_status(self._handle(request.order_id), wait=True)
        if final is not None:
            return pb.WaitOrderResponse(order=await self._as_message(final, request.order_id))
        return pb.WaitOrderResponse(order=await self._order(request.order_id))

    @_rpc
    async def ListOrders(self, request: pb.ListOrdersRequest, context: Context) -> pb.ListOrdersResponse:
        """One visibility query on the OrderState search attribute, newest first, a page at a time."""
        if not 0 <= request.page_size <= 100:
            raise mapping.InvalidArgument([("page_size", f"is {request.page_size}; must be 0 to 100")])
        state = mapping.listed_state(request.state)
        try:
            token = base64.urlsafe_b64decode(request.page_token) if request.page_token else None
        except ValueError:
            raise mapping.InvalidArgument([("page_token", "is not a token this service gave")]) from None
        query = mapping.visibility_query(state)
        page = self._check_ready().client.list_workflows(
            query, page_size=request.page_size or 20, next_page_token=token, rpc_timeout=RPC_TIMEOUT
        )
        await page.fetch_next_page()
        executions = page.current_page or []
        ended = await self._check_ready().reader.ended(
            [e.id.removeprefix(orders.workflow_id("")) for e in executions if e.close_time is not None]
        )
        return pb.ListOrdersResponse(
            orders=[mapping.order_summary(e, ended.get(e.id.removeprefix(orders.workflow_id("")))) for e in executions],
            next_page_token=base64.urlsafe_b64encode(page.next_page_token).decode() if page.next_page_token else "",
        )

    @_rpc_stream
    async def WatchReviews(
        self, request: pb.WatchReviewsRequest, context: Context
    ) -> AsyncIterator[pb.WatchReviewsResponse]:
        async for waiting in self._check_ready().reviews.subscribe():
            yield pb.WatchReviewsResponse(waiting=waiting)


class ReviewQueue:
    """The orders awaiting review, for every review desk at once: one visibility query per interval, whoever
    is watching, and each desk is sent the whole queue when it changes."""

    def __init__(self, client: Client):
        self.client = client
        self.current: list[pb.Order] | None = None
        # Each waiting order as last decoded, by workflow id, with the sealed memo it came from: a memo that has not
        # changed since the last poll is not decrypted and decoded again.
        self.decoded: dict[str, tuple[bytes, pb.Order]] = {}
        self.changed = asyncio.Condition()
        self.watchers = 0
        self.poller: asyncio.Task[None] | None = None

    async def subscribe(self) -> AsyncIterator[list[pb.Order]]:
        self.watchers += 1
        if self.poller is None or self.poller.done():
            self.poller = asyncio.create_task(self._poll())
        try:
            sent: list[pb.Order] | None = None
            while True:
                async with self.changed:
                    # Called only within this wait, so it compares with this iteration's `sent`.
                    await self.changed.wait_for(lambda: self.current is not None and self.current != sent)  # noqa: B023
                    sent = self.current
                assert sent is not None  # what the wait waited for
                yield sent
        finally:
            self.watchers -= 1

    async def _poll(self) -> None:
        while self.watchers > 0:
            try:
                waiting = await self._waiting()
            except (RPCError, TimeoutError) as err:
                log.warning("review_queue_unavailable", extra={"error": str(err)})
            else:
                async with self.changed:
                    if waiting != self.current:
                        self.current = waiting
                        self.changed.notify_all()
            await asyncio.sleep(REVIEW_POLL_SECONDS)
        self.current = None

    async def _waiting(self) -> list[pb.Order]:
        query = mapping.visibility_query(orders.OrderState.AWAITING_REVIEW) + " AND ExecutionStatus='Running'"
        decoded: dict[str, tuple[bytes, pb.Order]] = {}
        async for execution in self.client.list_workflows(query, page_size=100, rpc_timeout=RPC_TIMEOUT):
            fields = execution.raw_info.memo.fields
            sealed = fields[orders.ORDER_MEMO_KEY].data if orders.ORDER_MEMO_KEY in fields else b""
            known = self.decoded.get(execution.id)
            if known is not None and known[0] == sealed:
                decoded[execution.id] = known
                continue
            memo = await execution.memo_value(orders.ORDER_MEMO_KEY, None, type_hint=orders.OrderMemo)
            if memo is not None:
                order_id = execution.id.removeprefix(orders.workflow_id(""))
                status = orders.status_from_memo(
                    order_id,
                    memo,
                    orders.OrderState.AWAITING_REVIEW,
                    orders.Step.REVIEW,
                    execution.start_time.isoformat(),
                )
                decoded[execution.id] = (sealed, mapping.order_message(status, [], execution.id))
        self.decoded = decoded
        return sorted((order for _, order in decoded.values()), key=lambda o: o.review_deadline.ToDatetime())


def _running(activity: PendingActivityInfo) -> Running:
    since = activity.last_started_time if activity.HasField("last_started_time") else activity.scheduled_time
    return Running(
        activity.activity_type.name,
        activity.attempt,
        activity.last_failure.message,
        since.ToDatetime(UTC) if since.seconds else None,
    )


async def _last_task_failure(client: Client, workflow_id: str) -> str:
    """Why the workflow's last task failed: the newest WorkflowTaskFailed event, read from the history's end."""
    response = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id),
            maximum_page_size=25,
        ),
        timeout=RPC_TIMEOUT,
    )
    for event in response.history.events:
        if event.HasField("workflow_task_failed_event_attributes"):
            failed = event.workflow_task_failed_event_attributes
            cause = WorkflowTaskFailedCause.Name(failed.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
            error = await client.data_converter.decode_failure(failed.failure)  # sealed by the codec
            kind = error.type if isinstance(error, ApplicationError) and error.type else type(error).__name__
            return f"{cause}: {kind}: {error}"
    return "cause not in the newest events"


def _link_to_order_trace(trace_id: str, span_id: str) -> None:
    """Every call about an order reads its status, so every such call's span links to the order's trace."""
    if trace_id and span_id and telemetry.trace_ids()[0] not in ("", trace_id):
        order_span = trace.SpanContext(
            int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
        )
        trace.get_current_span().add_link(order_span, {"link.kind": "order"})


async def listen(
    settings: Settings, meter: MetricMeter = MetricMeter.noop
) -> tuple[grpc.aio.Server, int, OrderGateway]:
    """Starts the gateway with health (NOT_SERVING until ready()) and reflection on; returns the running server,
    its port and the gateway, to be made ready once Temporal and Postgres answer."""
    interceptors: list[grpc.aio.ServerInterceptor] = [security.Guard(settings.token, settings.max_requests_per_second)]
    if telemetry.tracing_enabled():
        # A span per call only when spans go somewhere. opentelemetry-instrumentation-grpc leaves it unannotated.
        interceptors.insert(0, aio_server_interceptor())  # type: ignore[no-untyped-call]
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    gateway = OrderGateway(settings, meter)
    pb_grpc.add_OrderGatewayServiceServicer_to_server(gateway, server)
    health_pb2_grpc.add_HealthServicer_to_server(gateway.health, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    credentials = security.server_credentials(settings.tls_cert, settings.tls_key)
    if credentials is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, credentials)
    await server.start()
    for name in ("", SERVICE_NAME):
        await gateway.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    log.info(
        "gateway_listening",
        extra={
            "fields": {
                "address": settings.listen,
                "port": port,
                "tls": credentials is not None,
                "token": bool(settings.token),
            }
        },
    )
    return server, port, gateway


async def serve(
    client: Client, reader: ReadRepository, settings: Settings, meter: MetricMeter = MetricMeter.noop
) -> tuple[grpc.aio.Server, int]:
    """listen() and ready() at once, for a caller that has its clients already (the tests)."""
    server, port, gateway = await listen(settings, meter)
    await gateway.ready(client, reader)
    return server, port
