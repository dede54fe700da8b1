"""The local stack's supervisor (./dev up) restarts a process that dies, as compose's restart policy would,
and stops everything it runs on SIGTERM (./dev down)."""

import json
import os
import signal
import subprocess
import sys
import time


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_process_is_started_again_and_sigterm_stops_all(tmp_path):
    sleeper = {"args": [sys.executable, "-c", "import time; time.sleep(600)"], "env": dict(os.environ)}
    plan = {name: {**sleeper, "log": str(tmp_path / f"{name}.log")} for name in ("first", "second")}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    state_file = tmp_path / "state.json"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "stack.supervise", str(tmp_path / "plan.json"), str(state_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        state = wait_for(
            lambda: (
                state_file.exists()
                and len(json.loads(state_file.read_text())) == 2
                and json.loads(state_file.read_text())
            )
        )
        killed = state["first"]["pid"]
        os.kill(killed, signal.SIGKILL)
        restarted = wait_for(lambda: (s := json.loads(state_file.read_text()))["first"]["restarts"] == 1 and s)
        assert restarted["first"]["pid"] != killed and alive(restarted["first"]["pid"])
        assert restarted["second"] == state["second"], "the other process was left alone"
    finally:
        supervisor.send_signal(signal.SIGTERM)
        out, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0
    assert not alive(restarted["first"]["pid"]) and not alive(restarted["second"]["pid"])
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[:3] == ["supervising", "process_exited", "process_restarted"] and events.count("process_stopped") == 2


def test_sighup_starts_what_the_plan_gained_and_stops_what_it_lost(tmp_path):
    """How ./dev deploy starts a new build's workers and, once the old build has drained, stops the old ones."""
    sleeper = {"args": [sys.executable, "-c", "import time; time.sleep(600)"], "env": dict(os.environ)}
    plan_file, state_file = tmp_path / "plan.json", tmp_path / "state.json"
    plan_file.write_text(json.dumps({"old": {**sleeper, "log": str(tmp_path / "old.log")}}))
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "stack.supervise", str(plan_file), str(state_file)], stdout=subprocess.PIPE, text=True
    )
    try:
        old = wait_for(lambda: state_file.exists() and json.loads(state_file.read_text()).get("old"))["pid"]
        plan_file.write_text(json.dumps({"new": {**sleeper, "log": str(tmp_path / "new.log")}}))
        supervisor.send_signal(signal.SIGHUP)
        state = wait_for(lambda: "old" not in (s := json.loads(state_file.read_text())) and s)
        assert set(state) == {"new"} and alive(state["new"]["pid"])
        wait_for(lambda: not alive(old))
    finally:
        supervisor.send_signal(signal.SIGTERM)
        out, _ = supervisor.communicate(timeout=30)
    assert not alive(state["new"]["pid"])
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events.count("process_exited") == 0, "a process stopped on purpose is not restarted"
    assert "process_added" in events
