"""Order service settings, from the environment only."""

import os
from dataclasses import dataclass

import shipping_service.contract as shipping
from common.settings import TemporalSettings, database_url
from common.versioning import ORDER_DEPLOYMENT, Versioning
from order_service import contract


@dataclass(frozen=True)
class Settings:
    temporal: TemporalSettings
    database_url: str
    task_queue: str
    log_level: str
    shipping_task_queue: str = shipping.TASK_QUEUE
    sweep: bool = True
    health_listen: str = ""
    versioning: Versioning | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            temporal=TemporalSettings.from_env(),
            database_url=database_url("ORDER_DATABASE_URL", "order_service"),
            task_queue=os.environ.get("ORDER_TASK_QUEUE", contract.TASK_QUEUE),
            # Where the sweep cancels a shipment (order_service/sweep.py).
            shipping_task_queue=os.environ.get("SHIPPING_TASK_QUEUE", shipping.TASK_QUEUE),
            # ORDER_SWEEP=off: the worker does not create the sweep's schedule (the benchmark leaves it out).
            sweep=os.environ.get("ORDER_SWEEP", "on") != "off",
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            # grpc.health.v1 (SERVING while the worker polls) on this address, if set.
            health_listen=os.environ.get("HEALTH_LISTEN", ""),
            # The build this worker is: WORKER_BUILD_ID, WORKER_VERSIONING=off, WORKER_DEPLOYMENT_PREFIX.
            versioning=Versioning.from_env(ORDER_DEPLOYMENT),
        )
