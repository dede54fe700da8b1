"""Committed histories of the main paths, replayed against today's workflow code.

A change that makes the workflows decide differently on these histories fails here. Before a release,
change the workflow and re-record: RECORD_HISTORIES=1 ./dev test tests/unit (main paths),
RECORD_HISTORIES=1 ./dev test tests/faults (fault_*.json). No patches: running executions stay pinned to the
build they started on, and a change reaches orders through a rolling deploy (docs/deploys.md).
"""

from pathlib import Path

import pytest
from opentelemetry import trace
from temporalio.client import WorkflowHistory
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider, create_tracer_provider
from temporalio.worker import Replayer

from common import codec, telemetry
from order_service.workflows import OrderWorkflow
from shipping_service.workflows import ShippingWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
# Sealed histories were recorded under this test-only key; histories from before sealing pass through.
KEY = bytes(range(32))


MAIN_PATHS = {
    "completed_with_retries",
    "review_expired",
    "review_rejected",
    "cancel_in_review",
    "cancel_during_charge",
    "cancel_during_shipping",
    "dispatch_retried",
    "address_updated_in_shipping",
}


def test_histories_cover_the_main_paths_and_the_fault_runs():
    names = {p.stem for p in HISTORIES}
    assert MAIN_PATHS <= names
    assert any(name.startswith("fault_") for name in names)


@pytest.fixture(scope="module")
def tracing():
    """The tracing plugin as workers run it with tracing on; it needs a replay-safe global provider (the exporting
    one when this process has one, e.g. after the integration tests; else one exporting nowhere)."""
    telemetry.setup_tracing("replay")
    if not isinstance(trace.get_tracer_provider(), ReplaySafeTracerProvider):
        trace.set_tracer_provider(create_tracer_provider())
    return telemetry.plugin()


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path, tracing):
    history = WorkflowHistory.from_json(f"order-{path.stem}", path.read_text())
    replayer = Replayer(
        workflows=[OrderWorkflow, ShippingWorkflow], data_converter=codec.data_converter(KEY), plugins=[tracing]
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
