"""A short soak (lab/soak.py): a minute of orders through the gateway while every kind of fault strikes, with the
soak's own targets (every started order terminal, no consistency problem, nothing lost or duplicated, no double
charge, orders no outage touched within 15 s). The ten-minute run is a documented command
(docs/chaos.md)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.soak import FAULTS

pytestmark = pytest.mark.faults
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)
def test_a_minute_of_orders_through_every_kind_of_fault(tmp_path):
    prefix = tmp_path / "soak"
    out = prefix.with_suffix(".json")
    run = subprocess.run(
        [sys.executable, "-m", "lab.soak", "--minutes", "1", "--concurrency", "5", "--seed", "3",
         "--fault-every", "6,9", "--report", str(prefix)],
        cwd=ROOT, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    written = json.loads(out.read_text())
    report = written["figures"]
    print(json.dumps(written, indent=2))
    # The report says where its figures come from, and its page opens with the targets.
    assert written["command"].startswith("python -m lab.soak --minutes 1") and len(written["commit"]) >= 40
    page = prefix.with_suffix(".md").read_text()
    assert f"`{written['command']}`" in page and "## Targets" in page and "**missed**" not in page
    assert report["missed_targets"] == [], report["missed_targets"]
    assert run.returncode == 0
    assert sum(report["faults"].values()) >= 5 and set(report["faults"]) == set(FAULTS), report["faults"]
    assert report["started"] >= 10 and report["terminal"] == report["started"]
    # What clients saw: nothing but the codes a retry or a refusal explains, never INTERNAL or UNKNOWN.
    assert not [call for call in report["client_errors"] if call.endswith(("INTERNAL", "UNKNOWN"))], report
