"""What an operator sees: one trace per order over OTLP, JSON log events, Prometheus metrics."""

import io
import json
import logging
import re
import urllib.request
from collections import Counter

import pytest

from common import __version__
from common.logs import JsonFormatter
from orderlife.gateway.v1 import gateway_pb2 as pb
from tests.integration.conftest import (
    approve_in_time,
    new_order_id,
    start_request,
    wait_for,
    wait_review,
    wait_terminal,
)

pytestmark = pytest.mark.integration


async def run_order(stack, order_id: str) -> pb.Order:
    await stack.gateway.StartOrder(start_request(order_id))
    if (await wait_review(stack, order_id)).state == pb.ORDER_STATE_AWAITING_REVIEW:
        await approve_in_time(stack, order_id, "ops")
    return await wait_terminal(stack, order_id)


async def test_one_trace_holds_gateway_workflows_attempts_and_sql(stack):
    # The real flaky_call(): run orders until one ships (so the child is in the trace) after at least
    # one retry (all six steps succeed at once about once in 750 orders).
    for _ in range(5):
        order = await run_order(stack, new_order_id("trace"))
        if order.state == pb.ORDER_STATE_COMPLETED and any(s.attempts > 1 for s in order.steps):
            break
    assert order.state == pb.ORDER_STATE_COMPLETED
    assert len(order.trace_id) == 32
    stack.tracer_provider.force_flush()
    spans = stack.otlp.trace(order.trace_id)
    names = Counter(s.name for s in spans)

    roots = [s for s in spans if not s.parent_span_id]
    assert len(roots) == 1, f"one root expected, got {[r.name for r in roots]}; spans {names}"
    root = roots[0]
    assert root.name == "/orderlife.gateway.v1.OrderGatewayService/StartOrder"
    ids = {s.span_id for s in spans}
    orphans = [s.name for s in spans if s.parent_span_id and s.parent_span_id not in ids]
    assert orphans == [], f"every span's parent is in the trace; spans {names}"
    assert names["RunWorkflow:OrderWorkflow"] >= 1 and names["RunWorkflow:ShippingWorkflow"] >= 1
    attempts = {n: k for n, k in names.items() if n.startswith("RunActivity:")}
    assert set(attempts) >= {
        f"RunActivity:{s}"
        for s in ("ReceiveOrder", "ValidateOrder", "ChargePayment", "PreparePackage", "DispatchCarrier", "MarkShipped")
    }
    assert max(attempts.values()) > 1, f"some step needed more than one attempt: {order.steps}"
    for step in order.steps:
        if step.name.startswith(("Receive", "Validate", "Charge", "Prepare", "Dispatch", "Mark")):
            assert attempts[f"RunActivity:{step.name}"] == step.attempts, (step.name, attempts, list(order.steps))
    failed = [s for s in spans if s.name.startswith("RunActivity:") and s.status.code == 2]
    assert len(failed) == sum(attempts.values()) - len(attempts), "each failed or timed-out attempt is an error span"
    sql = [s for s in spans if any(a.key == "db.system" and a.value.string_value == "postgresql" for a in s.attributes)]
    assert sql, "SQL statements appear under their activity attempts"
    assert all(resource.get("service.version") == __version__ for resource in stack.otlp.resources)


async def test_calls_about_an_order_link_to_its_trace(stack):
    order_id = new_order_id("link")
    stack.flaky.script(order_id)
    started = await stack.gateway.StartOrder(start_request(order_id))
    await wait_review(stack, order_id)
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id))
    await wait_terminal(stack, order_id)
    stack.tracer_provider.force_flush()
    trace_id = started.order.trace_id
    linked = Counter(
        s.name.rsplit("/", 1)[-1] for s in stack.otlp.spans if any(link.trace_id.hex() == trace_id for link in s.links)
    )
    assert linked["ApproveOrder"] == 1
    assert linked["GetOrder"] >= 1, "status calls (wait_for polls GetOrder) link to the order"
    assert linked["StartOrder"] == 0, "the start is the trace itself"


async def test_log_events_tell_the_story_as_json_lines(stack):
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        shipped, cancelled = new_order_id("logs"), new_order_id("logs")
        stack.flaky.script(
            shipped, ReceiveOrder=["fail", "ok"], ValidateOrder=["hang", "ok"], DispatchCarrier=["fail"] * 6 + ["ok"]
        )
        stack.flaky.script(cancelled, PreparePackage=["hang"] * 5 + ["ok"])
        assert (await run_order(stack, shipped)).state == pb.ORDER_STATE_COMPLETED
        await stack.gateway.StartOrder(start_request(cancelled))
        await wait_review(stack, cancelled)
        await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=cancelled))
        await wait_for(stack, cancelled, lambda o: o.state == pb.ORDER_STATE_SHIPPING)
        await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=cancelled, reason="customer called"))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]  # every line parses

    def events(order_id):
        return [
            (line["event"], line.get("step"), line.get("attempt")) for line in lines if line.get("order_id") == order_id
        ]

    story = events(shipped)
    assert ("attempt_failed", "ReceiveOrder", 1) in story
    assert ("attempt_timed_out", "ValidateOrder", 1) in story
    names = [e[0] for e in story]
    for event in (
        "state_changed",
        "review_waiting",
        "review_decided",
        "dispatch_failed",
        "dispatch_retry_ordered",
        "shipment_dispatched",
    ):
        assert event in names, event
    states = [line["state"] for line in lines if line.get("order_id") == shipped and line["event"] == "state_changed"]
    assert states == ["VALIDATING", "AWAITING_REVIEW", "CHARGING", "SHIPPING", "COMPLETED"]
    names = [e[0] for e in events(cancelled)]
    for event in ("cancel_requested", "shipment_cancelled", "compensation_started", "payment_refunded"):
        assert event in names, event
    attempt_lines = [line for line in lines if line["event"].startswith("attempt_")]
    assert all(line.get("workflow_id") and line.get("run_id") and line.get("trace_id") for line in attempt_lines)


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus series' samples whose labels include `labels` (0 when there is none yet)."""
    total = 0.0
    for series, value in re.findall(rf"^{name}{{([^}}]*)}} (\S+)$", text, re.M):
        if all(f'{key}="{wanted}"' in series.split(",") for key, wanted in labels.items()):
            total += float(value)
    return total


async def test_metrics_count_attempts_orders_and_requests(stack):
    order_id = new_order_id("metrics")
    stack.flaky.script(order_id, ChargePayment=["fail", "ok"])
    counted = {
        "failed charges": ("step_attempts_total", {"step": "ChargePayment", "outcome": "error"}),
        "completed orders": ("orders_ended_total", {"state": "COMPLETED"}),
        "starts": ("gateway_requests_total", {"method": "StartOrder", "code": "OK"}),
    }
    before_text = urllib.request.urlopen(stack.metrics_url, timeout=5).read().decode()
    before = {what: sample(before_text, name, **labels) for what, (name, labels) in counted.items()}
    await run_order(stack, order_id)
    text = urllib.request.urlopen(stack.metrics_url, timeout=5).read().decode()
    # This order's failed charge, its end and its start were each counted. (At least once: an order another test
    # left running may end meanwhile.)
    after = {what: sample(text, name, **labels) for what, (name, labels) in counted.items()}
    assert all(after[what] >= before[what] + 1 for what in counted), (before, after)
    # Prometheus naming: counters end in _total, durations are in seconds; every series names the release.
    assert "gateway_request_seconds_bucket" in text
    latency_bounds = re.findall(r'temporal_activity_execution_latency_bucket{[^}]*le="([0-9.]+)"', text)
    assert latency_bounds and min(map(float, latency_bounds)) < 0.1, "the SDK reports durations in seconds"
    assert f'service_version="{__version__}"' in text
