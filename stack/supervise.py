"""Keeps the local stack's processes running, as compose's `restart: on-failure` would: `./dev up` starts this
detached, and it starts each process of the plan, starts again any that exits (after 1 s, then 2, 4, up to
10 s if it keeps dying), and on SIGTERM (`./dev down`) stops them all, last started first.

    python -m stack.supervise PLAN.json STATE.json

PLAN.json: {name: {"args": [...], "env": {...}, "log": path, "cwd": dir, "stdout": true}}, in start order
(with "stdout": false only stderr goes to the log).
STATE.json: written on every (re)start: {name: {"pid": ..., "restarts": ...}}, for `./dev down` and people.
Each (re)start is logged as a JSON line on stdout.

On SIGHUP it reads PLAN.json again: it starts each process new to the plan and stops (SIGTERM, no restart) each
process gone from it. `./dev deploy` (stack/deploy.py) starts a new build's workers and stops the old ones this way.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NotRequired, TypedDict

POLL_SECONDS = 0.2
MAX_DELAY_SECONDS = 10.0
# A process that stayed up this long is restarted after 1 s again when it next exits.
STEADY_SECONDS = 30.0


class ProcessSpec(TypedDict):
    """One process of PLAN.json; "worker" names which service's workers it runs (stack/deploy.py replaces them)."""

    args: list[str]
    env: dict[str, str]
    log: str
    cwd: NotRequired[str]
    stdout: NotRequired[bool]
    worker: NotRequired[str]


def log(event: str, **fields: object) -> None:
    print(
        json.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": "info",
                "service": "supervisor",
                "event": event,
                **fields,
            }
        ),
        flush=True,
    )


class Supervisor:
    def __init__(self, plan: dict[str, ProcessSpec], state_file: Path, plan_file: Path | None = None):
        self.plan, self.state_file, self.plan_file = plan, state_file, plan_file
        self.reload_asked = False
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts = {name: 0 for name in plan}
        self.streak = {name: 0 for name in plan}  # restarts since the process last stayed up a while
        self.started: dict[str, float] = {}
        self.due: dict[str, float] = {}
        self.stopping = False

    def start(self, name: str) -> None:
        spec = self.plan[name]
        with open(spec["log"], "ab") as out:
            stdout = out if spec.get("stdout", True) else subprocess.DEVNULL
            self.procs[name] = subprocess.Popen(
                spec["args"], stdout=stdout, stderr=out, env=spec["env"], cwd=spec.get("cwd")
            )
        self.started[name] = time.monotonic()
        self.save()

    def reload(self) -> None:
        """Starts the processes new to the plan file; stops, for good, those no longer in it."""
        self.reload_asked = False
        if self.plan_file is None:
            return
        plan = json.loads(self.plan_file.read_text())
        for name in [n for n in self.procs if n not in plan]:
            self.stop_one(name)
            del self.procs[name]
            self.due.pop(name, None)
        for name in [n for n in plan if n not in self.plan]:
            self.restarts[name], self.streak[name] = 0, 0
            self.plan[name] = plan[name]
            self.start(name)
            log("process_added", process=name, pid=self.procs[name].pid)
        self.plan = plan
        self.save()

    def stop_one(self, name: str) -> None:
        proc = self.procs[name]
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log("process_stopped", process=name)

    def save(self) -> None:
        state = {name: {"pid": proc.pid, "restarts": self.restarts[name]} for name, proc in self.procs.items()}
        # Written whole, then renamed into place: a reader never sees a half-written file.
        partial = self.state_file.with_name(self.state_file.name + ".partial")
        partial.write_text(json.dumps(state))
        partial.replace(self.state_file)

    def run(self) -> None:
        for name in self.plan:
            self.start(name)
        log("supervising", processes={name: p.pid for name, p in self.procs.items()})
        while not self.stopping:
            if self.reload_asked:
                self.reload()
            now = time.monotonic()
            for name, proc in self.procs.items():
                if proc.poll() is None or self.stopping:
                    continue
                if name not in self.due:
                    if now - self.started[name] > STEADY_SECONDS:
                        self.streak[name] = 0
                    delay = min(2.0 ** self.streak[name], MAX_DELAY_SECONDS)
                    self.streak[name] += 1
                    self.due[name] = now + delay
                    log("process_exited", process=name, exit_code=proc.returncode, restart_in_seconds=delay)
                elif now >= self.due[name]:
                    del self.due[name]
                    self.restarts[name] += 1
                    self.start(name)
                    log("process_restarted", process=name, pid=self.procs[name].pid, restarts=self.restarts[name])
            time.sleep(POLL_SECONDS)
        for name in reversed(list(self.procs)):
            self.stop_one(name)

    def stop(self, *_: object) -> None:
        self.stopping = True

    def ask_reload(self, *_: object) -> None:
        self.reload_asked = True


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    plan_file = Path(sys.argv[1])
    supervisor = Supervisor(json.loads(plan_file.read_text()), Path(sys.argv[2]), plan_file)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGHUP, supervisor.ask_reload)
    supervisor.run()
    os._exit(0)


if __name__ == "__main__":
    main()
