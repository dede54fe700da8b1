"""The benchmark script works: a tiny run from start to report. Its figures are not checked here (a shared
machine is too noisy for timed assertions); `python -m lab.bench` with real sizes gives those."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 2


@pytest.mark.timeout(300)
def test_bench_runs_orders_and_baselines_and_writes_its_report(tmp_path):
    prefix = tmp_path / "bench"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "lab.bench", "--orders", str(ORDERS), "--concurrency", "2", "--rounds", "3"),
            *("--status", "--report", str(prefix)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "== concurrency 2, 2 orders, round 1 (project first) ==" in run.stdout
    assert "== concurrency 2, 2 orders, round 2 (baseline first) ==" in run.stdout
    assert "== concurrency 2, 2 orders, round 3 (status_baseline first) ==" in run.stdout
    assert "== concurrency 2: 3 rounds ==" in run.stdout

    written = json.loads(prefix.with_suffix(".json").read_text())
    command = f"python -m lab.bench --orders {ORDERS} --concurrency 2 --rounds 3 --status --report {prefix}"
    assert written["command"] == command
    assert written["machine"]["cpus"] and len(written["commit"]) >= 40
    page = prefix.with_suffix(".md").read_text()
    assert f"`{written['command']}`" in page and "## 2 at a time, 3 round(s)" in page
    # Where each side's CPU goes, by part: the project's own parts (gateway, Postgres) are the baselines' zero.
    by_part = page.split("CPU seconds an order by part")[1].split("\n\n")[1].splitlines()
    assert by_part[0] == "| side | Temporal server | workers | gateway | Postgres | benchmark client | in all |"
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in by_part[2:]}
    assert set(rows) == {"project", "baseline", "status_baseline"}
    assert float(rows["project"][2]) > 0 and float(rows["baseline"][2]) == 0 == float(rows["baseline"][3])
    report = written["figures"]
    first, second, third = report["runs"]
    assert (first["first"], second["first"], third["first"]) == ("project", "baseline", "status_baseline")
    (medians,) = report["medians"]
    ratio_names = {"throughput", "completed_throughput", "p50", "p99", "cpu_per_order"}
    for key in ("ratio_to_baseline", "status_baseline_to_baseline", "ratio_to_status_baseline"):
        assert set(first[key]) == set(second[key]) == set(third[key]) == ratio_names
        assert len(medians["per_round"][key]) == 3
        assert medians["rounds"] == 3 and set(medians[key]) == set(medians[f"pooled_{key}"]) == ratio_names
    only = second
    for side in ("project", "baseline", "status_baseline"):
        figures = only[side]
        assert figures["orders"] == ORDERS
        assert sum(figures["states"].values()) == ORDERS
        assert set(figures["end_to_end_seconds"]) == {"p50", "p90", "p99", "max"}
        assert 0 < figures["workflow_seconds"]["max"] <= figures["end_to_end_seconds"]["max"]
        assert figures["cpu_seconds_per_order"]["temporal"] > 0
        # Both sides run the brief's seven steps, the shipping two in a child workflow.
        assert figures["history_events_per_order"] > 30
        server = figures["temporal_server_per_order"]
        assert server["rpc calls"] > 0 and server["persistence calls"] > 0
        assert server.get("rpc StartWorkflowExecution", 0) + server.get("rpc SignalWithStartWorkflowExecution", 0) == 1
    # The status baseline keeps the design's status in Temporal, and its reviewer approves each order by update once
    # a visibility list shows it waiting in review: no order runs out its review window.
    plain, shown = only["baseline"], only["status_baseline"]
    assert shown["history_events_per_order"] > plain["history_events_per_order"]
    upserts = "task VisibilityTaskUpsertExecution"
    assert shown["temporal_server_per_order"][upserts] > plain["temporal_server_per_order"].get(upserts, 0)
    assert shown["temporal_server_per_order"].get("rpc ListWorkflowExecutions", 0) > 0
    assert shown["temporal_server_per_order"].get("rpc UpdateWorkflowExecution", 0) >= 1
    assert "REJECTED" not in shown["states"]
    # What an order cost Temporal, counted from the histories: the plain baseline's shape is fixed by the brief (a
    # start, four activities, a signal, a child started (two) with its two activities: ten structural actions, no
    # timer, no visibility write), so the counting is checked against it; the others are counted alike.
    bare_costs = plain["temporal_costs_per_order"]
    assert (bare_costs["structural_actions"], bare_costs["timers"], bare_costs["visibility_writes"]) == (10, 0, 0)
    assert bare_costs["events"] == plain["history_events_per_order"]
    assert bare_costs["actions"] == bare_costs["structural_actions"] + bare_costs["activity_retries"]
    for side in ("project", "status_baseline"):
        costs = only[side]["temporal_costs_per_order"]
        assert costs["visibility_writes"] > 0 and costs["actions: update"] >= 1 and costs["workflow_tasks"] > 0
    assert "What an order costs Temporal" in page
    project = only["project"]
    assert set(project["mean_attempts_per_step"]) >= {"ReceiveOrder", "ValidateOrder"}
    assert set(project["status_call_ms"]) == {"GetOrder", "describe"}
    assert set(report["peak_memory_mb"]) == {
        "temporal",
        "order_service",
        "shipping_service",
        "gateway",
        "baseline_worker",
        "postgres",
        "bench_client",
    }
    assert all(mb > 0 for mb in report["peak_memory_mb"].values())
    assert report["floor_seconds"]["p50"] > 0


@pytest.mark.timeout(200)
def test_costs_prices_each_operation_on_the_dev_server():
    run = subprocess.run(
        [sys.executable, "-m", "lab.costs", "--workflows", "4", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    priced = {
        line.split("ms", 1)[1].strip(): float(line.split()[0]) for line in run.stdout.splitlines() if " ms " in line
    }
    assert set(priced) == {
        "signal (and the workflow task it wakes)",
        "signal + memo write",
        "signal + search-attribute upsert",
        "signal + upsert and memo write together",
        "signal + timer started",
        "update (and its workflow task)",
        "describe",
        "visibility count",
    }
    assert all(ms >= 0 for ms in priced.values())
    # Each operation was done on each probe, once a round: what was priced happened. (The figures themselves are
    # CPU time on a shared box, checked by no test.)
    assert (
        "done per workflow: 6 signals, 2 memo writes, 2 search-attribute upserts, 1 timers started, 1 updates"
        in run.stdout
    ), run.stdout
