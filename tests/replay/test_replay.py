"""Committed histories of the main paths, replayed against today's workflow code.

A change that makes the workflows decide differently on an old history fails here: put it behind
workflow.patched() and keep the old histories (pre_<patch>_*.json). Re-record the main paths with
RECORD_HISTORIES=1 ./dev test tests/unit, the fault paths (fault_*.json) with
RECORD_HISTORIES=1 ./dev test tests/faults.
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from common import codec
from order_service.workflows import OrderWorkflow
from shipping_service.workflows import ShippingWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
# Sealed histories were recorded under this test-only key; histories from before sealing pass through.
KEY = bytes(range(32))


MAIN_PATHS = {"completed_with_retries", "review_expired", "review_rejected", "cancel_during_shipping",
              "dispatch_retried", "address_updated_in_shipping"}


def test_histories_cover_the_main_paths_before_and_after_each_patch():
    names = {p.stem for p in HISTORIES}
    assert MAIN_PATHS <= names
    # Workflows started before deadlines became timers (workflow.patched("deadline-alarms")) still replay.
    assert {f"pre_deadline_alarms_{name}" for name in MAIN_PATHS} <= names
    # ... and before an address arriving while the shipment starts was forwarded ("address-while-child-starts").
    assert {f"pre_address_while_child_starts_{name}" for name in MAIN_PATHS} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path):
    history = WorkflowHistory.from_json(f"order-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[OrderWorkflow, ShippingWorkflow], data_converter=codec.data_converter(KEY))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
