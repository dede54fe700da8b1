"""The order worker: OrderWorkflow, the sweep (order_service/sweep.py) and their activities on the order task queue."""

from temporalio.client import Client
from temporalio.worker import Worker

from common import db, telemetry, temporal
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


async def main(settings: Settings, workflow: type = OrderWorkflow) -> None:
    pools = []

    async def connected() -> Worker:
        client = await temporal.connect(settings.temporal, telemetry.runtime())
        pools.append(await db.connect(settings.database_url))
        if settings.sweep:
            await ensure_schedule(client, settings.task_queue, settings.shipping_task_queue)
        return build(
            client, OrderActivities(OrdersRepository(pools[0])), settings.task_queue, settings.versioning, workflow
        )

    try:
        await temporal.run_worker(connected, settings.health_listen, settings.versioning)
    finally:
        for pool in pools:
            await pool.close()
