"""Worker versioning: which build a worker is (its deployment version), and the Temporal calls a deploy makes
(who polls a build, make a build current, how many pinned workflows a build still runs).

Each service's worker is one Worker Deployment (`order-service`, `shipping-service`); a build of it is a
Deployment Version, named by its build id. OrderWorkflow and ShippingWorkflow are PINNED: an execution finishes on
the build it started on, and new executions start on the deployment's current build (the workers set PINNED as
their default behavior: Versioning.worker_config). A deploy therefore never needs
a patch in workflow code (docs/deploys.md).

Worker Versioning (WorkerDeploymentConfig, VersioningBehavior, the worker-deployment RPCs) is marked experimental in
the Temporal Python SDK 1.35 and the server; its API may change in a minor release.
"""

import asyncio
import hashlib
import logging
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.deployment.v1 import message_pb2 as deployment_pb
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from common import __version__

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
ORDER_DEPLOYMENT = "order-service"
SHIPPING_DEPLOYMENT = "shipping-service"
# What the server's routing config calls "no current build".
UNVERSIONED = "__unversioned__"
IDENTITY = "orderlife-deploy"


@dataclass(frozen=True)
class Versioning:
    """A worker's place in its deployment; enabled=False runs it unversioned (WORKER_VERSIONING=off), as before."""

    deployment_name: str
    build_id: str
    enabled: bool = True

    @classmethod
    def from_env(cls, default_deployment: str, environ: Mapping[str, str] | None = None) -> "Versioning":
        environ = os.environ if environ is None else environ
        mode = environ.get("WORKER_VERSIONING", "on")
        if mode not in ("on", "off"):
            raise SystemExit(f"WORKER_VERSIONING is {mode!r}; must be on or off")
        # A test stack names its own deployments so it does not share routing with another stack on the server.
        name = environ.get("WORKER_DEPLOYMENT_PREFIX", "") + default_deployment
        return cls(name, build_id(environ), mode == "on")

    @property
    def version(self) -> WorkerDeploymentVersion:
        return WorkerDeploymentVersion(deployment_name=self.deployment_name, build_id=self.build_id)

    def worker_config(self) -> WorkerDeploymentConfig | None:
        """The Worker's deployment_config (experimental in the SDK), or None when unversioned. Every workflow the
        worker runs is PINNED: set here rather than on each @workflow.defn, because the server refuses a versioning
        behavior from an unversioned worker (WORKER_VERSIONING=off, the unit tests' test server)."""
        if not self.enabled:
            return None
        return WorkerDeploymentConfig(
            version=self.version, use_worker_versioning=True, default_versioning_behavior=VersioningBehavior.PINNED
        )


def build_id(environ: Mapping[str, str] | None = None) -> str:
    """WORKER_BUILD_ID if set, else the package version and the git commit (plus a digest of uncommitted changes,
    so edited code is another build), else the package version alone (an image built without .git sets
    WORKER_BUILD_ID)."""
    environ = os.environ if environ is None else environ
    if environ.get("WORKER_BUILD_ID"):
        return environ["WORKER_BUILD_ID"]
    commit = _git("rev-parse", "--short=10", "HEAD")
    if not commit:
        return __version__
    changes = _git("diff", "HEAD", "--", "*.py")
    suffix = f"-dirty{hashlib.sha256(changes.encode()).hexdigest()[:8]}" if changes else ""
    return f"{__version__}-{commit}{suffix}"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


async def describe(client: Client, deployment_name: str) -> wsv.DescribeWorkerDeploymentResponse | None:
    """The deployment, or None if the server has never seen a worker of it poll."""
    try:
        return await client.workflow_service.describe_worker_deployment(
            wsv.DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment_name)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def current_build(described: wsv.DescribeWorkerDeploymentResponse | None) -> str | None:
    """The current build id, or None when there is none (a fresh deployment routes to unversioned workers)."""
    if described is None:
        return None
    routing = described.worker_deployment_info.routing_config
    if routing.HasField("current_deployment_version"):
        return routing.current_deployment_version.build_id or None
    return None


async def pollers(client: Client, version: Versioning, task_queue: str) -> int:
    """How many workers of this build the server has seen poll the task queue for workflow tasks."""
    described = await client.workflow_service.describe_task_queue(
        wsv.DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return sum(
        1
        for p in described.pollers
        if p.deployment_options.deployment_name == version.deployment_name
        and p.deployment_options.build_id == version.build_id
    )


class NoPollers(Exception):
    """A build no worker polls for cannot be made current: its orders would wait for a worker that is not there."""


async def set_current(client: Client, version: Versioning, task_queue: str, only_if_unset: bool = False) -> bool:
    """Makes the build current in its deployment (refusing a build with no pollers on task_queue). With only_if_unset,
    only when the deployment has no current build yet (a fresh stack). True if this call changed the routing."""
    if not await pollers(client, version, task_queue):
        raise NoPollers(f"no worker of {version.deployment_name} build {version.build_id} polls {task_queue}")
    while True:
        described = await describe(client, version.deployment_name)
        current = current_build(described)
        if current == version.build_id or (only_if_unset and current is not None):
            return False
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                wsv.SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=version.deployment_name,
                    build_id=version.build_id,
                    conflict_token=described.conflict_token if described else b"",
                    identity=IDENTITY,
                )
            )
        except RPCError as err:
            # Another worker of the deployment changed the routing since the describe, or the server asks for fewer
            # calls to the deployment: look again.
            if err.status in (
                RPCStatusCode.FAILED_PRECONDITION,
                RPCStatusCode.ABORTED,
                RPCStatusCode.RESOURCE_EXHAUSTED,
            ):
                await asyncio.sleep(0.5)
                continue
            raise
        log.info(
            "deployment_current_set",
            extra={"fields": {"deployment": version.deployment_name, "build_id": version.build_id, "was": current}},
        )
        return True


async def make_current_if_unset(client: Client, version: Versioning, task_queue: str, timeout: float = 60) -> bool:
    """A worker's first act on a fresh stack: once the server has seen it poll, its build becomes current if the
    deployment has none. A later build is made current only by a deploy. Returns whether it set it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await set_current(client, version, task_queue, only_if_unset=True)
        except (NoPollers, RPCError) as err:
            # The server registers a version at its first poll: wait for it.
            if time.monotonic() > deadline:
                raise
            log.debug("deployment_not_ready", extra={"error": str(err)})
            await asyncio.sleep(1)


async def task_queues(client: Client, version: Versioning) -> set[tuple[str, int]]:
    """The (task queue, type) pairs the server has seen this build poll; empty for a build it has never seen."""
    try:
        described = await client.workflow_service.describe_worker_deployment_version(
            wsv.DescribeWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version=deployment_pb.WorkerDeploymentVersion(
                    deployment_name=version.deployment_name, build_id=version.build_id
                ),
            )
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return set()
        raise
    return {(q.name, q.type) for q in described.worker_deployment_version_info.task_queue_infos}


async def ready_to_replace(client: Client, new: Versioning, task_queue: str) -> bool:
    """Whether the new build polls task_queue and every task queue the current build polls (the server refuses to
    make current a build that would leave one of them unversioned)."""
    if not await pollers(client, new, task_queue):
        return False
    current = current_build(await describe(client, new.deployment_name))
    if current is None or current == new.build_id:
        return True
    needed = await task_queues(client, Versioning(new.deployment_name, current))
    return needed <= await task_queues(client, new)


async def running_pinned(client: Client, version: Versioning) -> int:
    """How many workflows still run pinned to this build (a build is drained at 0)."""
    query = (
        f"TemporalWorkerDeploymentVersion = '{version.deployment_name}:{version.build_id}' "
        "AND ExecutionStatus = 'Running'"
    )
    return (await client.count_workflows(query)).count
