"""The order worker: OrderWorkflow and its activities on the order task queue."""

import logging

from grpc_health.v1 import health_pb2
from temporalio.client import Client
from temporalio.worker import Worker

from common import db, health, telemetry, temporal
from order_service.activities import OrderActivities
from order_service.config import Settings
from order_service.repository import OrdersRepository
from order_service.workflows import OrderWorkflow

log = logging.getLogger(__name__)


def build(client: Client, activities: OrderActivities, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[OrderWorkflow], activities=activities.all(),
                  sticky_queue_schedule_to_start_timeout=temporal.STICKY_TIMEOUT,
                  graceful_shutdown_timeout=temporal.GRACEFUL_SHUTDOWN)


async def main(settings: Settings) -> None:
    client = await temporal.connect(settings.temporal, telemetry.runtime())
    pool = await db.connect(settings.database_url)
    worker = build(client, OrderActivities(OrdersRepository(pool)), settings.task_queue)
    health_server = None
    try:
        async with worker:
            if settings.health_listen:
                health_server, health_status = await health.serve(settings.health_listen)
                await health_status.set("", health_pb2.HealthCheckResponse.SERVING)
            log.info("worker_started", extra={"fields": {"task_queue": settings.task_queue}})
            await temporal.until_terminated()
            if health_server is not None:
                await health_status.enter_graceful_shutdown()
    finally:
        if health_server is not None:
            await health_server.stop(None)
        await pool.close()
    log.info("worker_stopped", extra={"fields": {"task_queue": settings.task_queue}})
