"""The order worker: OrderWorkflow, the sweep (order_service/sweep.py) and their activities on the order task queue."""

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from common import temporal, worker_runner
from common.versioning import Versioning
from order_service.activities import OrderActivities
from order_service.config import Settings
from order_service.repository import OrdersRepository
from order_service.sweep import SweepActivities, SweepWorkflow, ensure_schedule
from order_service.workflows import OrderWorkflow


def build(
    client: Client,
    activities: OrderActivities,
    task_queue: str,
    versioning: Versioning | None = None,
    workflow: type = OrderWorkflow,
) -> Worker:
    """The worker; with versioning, one build of the service's Worker Deployment (experimental in the SDK: see
    common/versioning.py). `workflow` is for tests that run a changed build of the workflow."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[workflow, SweepWorkflow],
        deployment_config=versioning.worker_config() if versioning else None,
        activities=[*activities.all(), *SweepActivities(activities.repo, client).all()],
        sticky_queue_schedule_to_start_timeout=temporal.STICKY_TIMEOUT,
        graceful_shutdown_timeout=temporal.GRACEFUL_SHUTDOWN,
    )


def worker_for(settings: Settings, workflow: type = OrderWorkflow) -> worker_runner.Build:
    """How common.worker_runner builds this service's worker: the sweep's schedule first, unless it is off."""

    async def build_on(client: Client, pool: asyncpg.Pool) -> Worker:
        if settings.sweep:
            await ensure_schedule(client, settings.task_queue, settings.shipping_task_queue)
        activities = OrderActivities(OrdersRepository(pool))
        return build(client, activities, settings.task_queue, settings.versioning, workflow)

    return build_on
