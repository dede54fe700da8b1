"""The shipping worker: ShippingWorkflow and its activities on the shipping task queue."""

from temporalio.client import Client
from temporalio.worker import Worker

from common import db, telemetry, temporal
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


async def main(settings: Settings) -> None:
    pools = []

    async def connected() -> Worker:
        client = await temporal.connect(settings.temporal, telemetry.runtime())
        pools.append(await db.connect(settings.database_url))
        return build(client, ShippingActivities(ShippingRepository(pools[0])), settings.task_queue, settings.versioning)

    try:
        await temporal.run_worker(connected, settings.health_listen, settings.versioning)
    finally:
        for pool in pools:
            await pool.close()
