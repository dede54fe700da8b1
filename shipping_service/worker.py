"""The shipping worker: ShippingWorkflow and its activities on the shipping task queue."""

from temporalio.client import Client
from temporalio.worker import Worker

from common import db, telemetry, temporal
from shipping_service.activities import ShippingActivities
from shipping_service.config import Settings
from shipping_service.repository import ShippingRepository
from shipping_service.workflows import ShippingWorkflow


def build(client: Client, activities: ShippingActivities, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[ShippingWorkflow],
        activities=activities.all(),
        sticky_queue_schedule_to_start_timeout=temporal.STICKY_TIMEOUT,
        graceful_shutdown_timeout=temporal.GRACEFUL_SHUTDOWN,
    )


async def main(settings: Settings) -> None:
    pools = []

    async def connected() -> Worker:
        client = await temporal.connect(settings.temporal, telemetry.runtime())
        pools.append(await db.connect(settings.database_url))
        return build(client, ShippingActivities(ShippingRepository(pools[0])), settings.task_queue)

    try:
        await temporal.run_worker(connected, settings.health_listen)
    finally:
        for pool in pools:
            await pool.close()
