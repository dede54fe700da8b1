"""The shipping worker: ShippingWorkflow and its activities on the shipping task queue."""

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from common import temporal, worker_runner
from common.versioning import Versioning
from shipping_service.activities import ShippingActivities
from shipping_service.config import Settings
from shipping_service.repository import ShippingRepository
from shipping_service.workflows import ShippingWorkflow


def build(
    client: Client,
    activities: ShippingActivities,
    task_queue: str,
    versioning: Versioning | None = None,
    workflow: type = ShippingWorkflow,
) -> Worker:
    """The worker; with versioning, one build of the service's Worker Deployment (experimental in the SDK: see
    common/versioning.py). `workflow` is for tests that run a changed build of the workflow."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[workflow],
        deployment_config=versioning.worker_config() if versioning else None,
        activities=activities.all(),
        sticky_queue_schedule_to_start_timeout=temporal.STICKY_TIMEOUT,
        graceful_shutdown_timeout=temporal.GRACEFUL_SHUTDOWN,
    )


def worker_for(settings: Settings) -> worker_runner.Build:
    """How common.worker_runner builds this service's worker."""

    async def build_on(client: Client, pool: asyncpg.Pool) -> Worker:
        return build(client, ShippingActivities(ShippingRepository(pool)), settings.task_queue, settings.versioning)

    return build_on
