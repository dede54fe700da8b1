"""What the workflow sandbox runs again for every workflow run, and what it shares with the worker."""

import sys

import pytest
from temporalio.worker.workflow_sandbox import SandboxRestrictions

# The importer the sandboxed runner uses for each run; public API has no way to look inside a run.
from temporalio.worker.workflow_sandbox._importer import Importer
from temporalio.worker.workflow_sandbox._restrictions import RestrictionContext

import order_service.workflows  # noqa: F401  (the worker has imported them before any run)
import shipping_service.workflows  # noqa: F401


@pytest.mark.parametrize(
    "module, shared",
    [
        ("order_service.workflows", {"contract": "order_service.contract", "shipping": "shipping_service.contract"}),
        ("shipping_service.workflows", {"contract": "shipping_service.contract"}),
    ],
)
def test_a_workflow_run_shares_the_contract_modules_with_the_worker(module, shared):
    # Each run imports its workflow module afresh; the contracts are passed through, not run again
    # (`from order_service import contract` inside its own package used to re-run it: about 5 ms of CPU a run).
    importer = Importer(SandboxRestrictions.default, RestrictionContext(), workflow_module_name=module)
    scope: dict[str, object] = {"importer": importer}
    exec(f"with importer.applied():\n    import {module} as run_module\n", scope)
    assert scope["run_module"] is not sys.modules[module]
    for name, contract in shared.items():
        assert getattr(scope["run_module"], name) is sys.modules[contract]
