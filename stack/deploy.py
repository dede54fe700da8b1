"""A rolling deploy of both workers on the local stack (`./dev deploy`, after `./dev up`), each stage reported with
its time:

  start    the new build's workers start beside the old ones (the supervisor reads its plan again on SIGHUP)
  poll     until the server has seen each new worker poll its task queue
  current  the new build becomes current in each deployment, shipping first so that new orders' shipments start on
           it too; a build no worker polls for is refused (common/versioning.py)
  drain    until no workflow runs pinned to an old build (each finishes where it started: docs/deploys.md)
  stop     the old workers leave the plan and the supervisor stops them (SIGTERM: they finish what they hold)

The new build is WORKER_BUILD_ID if set, else the package version and git commit of the code on disk now. Worker
Versioning is experimental in the Temporal SDK and server.
"""

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from common import versioning
from order_service import contract as orders
from shipping_service import contract as shipping
from stack.supervise import ProcessSpec

# Each worker service: its deployment, and the variable naming its task queue with the default. Shipping first.
WORKERS = {
    "shipping_service": (versioning.SHIPPING_DEPLOYMENT, "SHIPPING_TASK_QUEUE", shipping.TASK_QUEUE),
    "order_service": (versioning.ORDER_DEPLOYMENT, "ORDER_TASK_QUEUE", orders.TASK_QUEUE),
}
POLL_TIMEOUT_SECONDS = 60.0
# An order's workflow lives at most its 60 s execution timeout.
DRAIN_TIMEOUT_SECONDS = 120.0


class DeployError(Exception):
    """The deploy stopped; the old build still runs and stays current unless the message says otherwise."""


@dataclass
class Deploy:
    """One rolling deploy of the stack whose supervisor runs plan_file. `worker_args` replaces a service's command
    for the new build (a test deploys a changed OrderWorkflow this way)."""

    client: Client
    plan_file: Path
    supervisor_pid: int
    build: str
    worker_args: dict[str, list[str]] = field(default_factory=dict)
    report: Callable[[str], None] = print
    started: float = field(default_factory=time.monotonic)
    stages: dict[str, float] = field(default_factory=dict)

    async def run(self) -> dict[str, float]:
        """Runs every stage; returns each stage's seconds."""
        plan: dict[str, ProcessSpec] = json.loads(self.plan_file.read_text())
        old = {name: spec for name, spec in plan.items() if spec.get("worker")}
        old_builds = {spec["env"].get("WORKER_BUILD_ID", "") for spec in old.values()}
        if not old:
            raise DeployError("the plan has no workers to replace (is this a stack ./dev up started?)")
        if self.build in old_builds:
            raise DeployError(f"build {self.build} already runs; commit a change or set WORKER_BUILD_ID")
        prefix = next(iter(old.values()))["env"].get("WORKER_DEPLOYMENT_PREFIX", "")
        self.versions = {
            service: versioning.Versioning(prefix + deployment, self.build)
            for service, (deployment, _, _) in WORKERS.items()
        }
        self.queues = {
            service: next(s["env"].get(var, default) for s in old.values() if s["worker"] == service)
            for service, (_, var, default) in WORKERS.items()
        }
        self._log(f"deploying build {self.build} over {', '.join(sorted(old_builds))}")

        new = {self._new_name(name): self._new_spec(spec) for name, spec in old.items()}
        self._write_plan({**plan, **new})
        self._stage("start", f"{len(new)} workers: {', '.join(new)}")

        await self._until(POLL_TIMEOUT_SECONDS, self._all_poll, "the new workers did not poll")
        self._stage("poll", "the new workers poll every task queue the old ones do")

        for service in WORKERS:
            await versioning.set_current(self.client, self.versions[service], self.queues[service])
        self._stage("current", ", ".join(v.deployment_name for v in self.versions.values()))

        olds = [
            versioning.Versioning(self.versions[service].deployment_name, build)
            for service in WORKERS
            for build in old_builds
        ]
        last_seen: list[int] = []

        async def drained() -> bool:
            counts = [await versioning.running_pinned(self.client, v) for v in olds]
            if counts != last_seen:
                self._log(f"  still running on the old build: {sum(counts)}")
                last_seen[:] = counts
            return not any(counts)

        await self._until(DRAIN_TIMEOUT_SECONDS, drained, "the old build did not drain; its workers keep running")
        self._stage("drain", "no workflow runs pinned to the old build")

        pids = self._pids(old)
        self._write_plan(
            {name: spec for name, spec in json.loads(self.plan_file.read_text()).items() if name not in old}
        )
        await self._until(30, lambda: self._all_gone(pids), "the old workers did not stop")
        self._stage("stop", f"{len(old)} old workers stopped")
        self._log(f"build {self.build} is current; deploy took {time.monotonic() - self.started:.1f}s")
        return self.stages

    def _new_name(self, name: str) -> str:
        return f"{name.split('@')[0]}@{self.build}"

    def _new_spec(self, spec: ProcessSpec) -> ProcessSpec:
        env = {**spec["env"], "WORKER_BUILD_ID": self.build}
        for var in ("METRICS_LISTEN", "HEALTH_LISTEN"):
            if env.get(var):
                env[var] = other_slot(env[var])
        log = Path(spec["log"])
        return {
            **spec,
            "args": self.worker_args.get(spec["worker"], spec["args"]),
            "env": env,
            "log": str(log.with_name(f"{log.stem.split('@')[0]}@{self.build}.log")),
        }

    def _write_plan(self, plan: dict[str, ProcessSpec]) -> None:
        partial = self.plan_file.with_name(self.plan_file.name + ".partial")
        partial.write_text(json.dumps(plan))
        partial.chmod(0o600)  # it holds PAYLOAD_KEY
        partial.replace(self.plan_file)
        os.kill(self.supervisor_pid, signal.SIGHUP)

    async def _all_poll(self) -> bool:
        for service, version in self.versions.items():
            if not await versioning.ready_to_replace(self.client, version, self.queues[service]):
                return False
        return True

    def _pids(self, names: dict[str, ProcessSpec]) -> list[int]:
        state = json.loads((self.plan_file.parent / "supervised.json").read_text())
        return [state[name]["pid"] for name in names if name in state]

    @staticmethod
    async def _all_gone(pids: list[int]) -> bool:
        for pid in pids:
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                pass
        return True

    async def _until(self, timeout: float, check: Callable[[], Awaitable[bool]], failure: str) -> None:
        await until(timeout, check, failure)

    def _stage(self, name: str, detail: str) -> None:
        now = time.monotonic() - self.started
        took = now - sum(self.stages.values())
        self.stages[name] = took
        self._log(f"{name:<8} {took:6.2f}s  (at {now:6.2f}s)  {detail}")

    def _log(self, line: str) -> None:
        self.report(line)


async def make_plan_current(client: Client, plan: dict[str, ProcessSpec], timeout: float = POLL_TIMEOUT_SECONDS) -> str:
    """Makes the build of the plan's workers current in each deployment once it polls (./dev up, on a stack that may
    keep an older build current); returns the build id."""
    build = ""
    for spec in plan.values():
        if spec.get("worker"):
            build = spec["env"]["WORKER_BUILD_ID"]
            deployment, queue_var, default_queue = WORKERS[spec["worker"]]
            prefix = spec["env"].get("WORKER_DEPLOYMENT_PREFIX", "")
            version = versioning.Versioning(prefix + deployment, build)
            queue = spec["env"].get(queue_var, default_queue)
            await until(
                timeout,
                lambda: versioning.ready_to_replace(client, version, queue),  # noqa: B023
                f"no worker of {deployment} build {build} polled {queue}",
            )
            await versioning.set_current(client, version, queue)
    return build


async def until(timeout: float, check: Callable[[], Awaitable[bool]], failure: str) -> None:
    """Asks check() every half second until it holds; the server's rate limit on a deployment's calls only slows it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except RPCError as err:
            if err.status != RPCStatusCode.RESOURCE_EXHAUSTED:
                raise
            await asyncio.sleep(1)
        if time.monotonic() > deadline:
            raise DeployError(f"{failure} within {timeout:.0f}s")
        await asyncio.sleep(0.5)


def other_slot(address: str) -> str:
    """The new build's port beside the old one's (9101 ↔ 9111), so both builds' workers can listen at once."""
    host, port = address.rsplit(":", 1)
    number = int(port)
    return f"{host}:{number + 10 if (number // 10) % 2 == 0 else number - 10}"
