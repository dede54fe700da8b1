"""The order worker: OrderWorkflow and its activities on the order task queue."""

from temporalio.client import Client
from temporalio.worker import Worker

from common import db, telemetry, temporal
from order_service.activities import OrderActivities
from order_service.config import Settings
from order_service.repository import OrdersRepository
from order_service.workflows import OrderWorkflow


def build(client: Client, activities: OrderActivities, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderWorkflow],
        activities=activities.all(),
        sticky_queue_schedule_to_start_timeout=temporal.STICKY_TIMEOUT,
        graceful_shutdown_timeout=temporal.GRACEFUL_SHUTDOWN,
    )


async def main(settings: Settings) -> None:
    pools = []

    async def connected() -> Worker:
        client = await temporal.connect(settings.temporal, telemetry.runtime())
        pools.append(await db.connect(settings.database_url))
        return build(client, OrderActivities(OrdersRepository(pools[0])), settings.task_queue)

    try:
        await temporal.run_worker(connected, settings.health_listen)
    finally:
        for pool in pools:
            await pool.close()
