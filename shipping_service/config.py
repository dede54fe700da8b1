"""Shipping service settings, from the environment only."""

import os
from dataclasses import dataclass

from common.settings import TemporalSettings, database_url
from common.versioning import SHIPPING_DEPLOYMENT, Versioning
from shipping_service import contract


@dataclass(frozen=True)
class Settings:
    temporal: TemporalSettings
    database_url: str
    task_queue: str
    log_level: str
    health_listen: str = ""
    versioning: Versioning | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            temporal=TemporalSettings.from_env(),
            database_url=database_url("SHIPPING_DATABASE_URL", "shipping_service"),
            task_queue=os.environ.get("SHIPPING_TASK_QUEUE", contract.TASK_QUEUE),
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            # grpc.health.v1 (SERVING while the worker polls) on this address, if set.
            health_listen=os.environ.get("HEALTH_LISTEN", ""),
            # The build this worker is: WORKER_BUILD_ID, WORKER_VERSIONING=off, WORKER_DEPLOYMENT_PREFIX.
            versioning=Versioning.from_env(SHIPPING_DEPLOYMENT),
        )
