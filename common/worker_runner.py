"""The process every worker runs: JSON logs and tracing under the service's name, the Temporal client and the
service's Postgres pool (each waited for, however long that takes), the worker the service builds on them,
grpc.health.v1, and a clean stop on SIGTERM (common.temporal.run_worker). A service brings only its settings and how
it builds its worker."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from common import db, logs, telemetry, temporal
from common.settings import TemporalSettings
from common.versioning import Versioning

# How a service builds its worker once the client and its pool are connected.
Build = Callable[[Client, asyncpg.Pool], Awaitable[Worker]]


class WorkerSettings(Protocol):
    """What every worker's settings hold (each service's config.Settings)."""

    @property
    def temporal(self) -> TemporalSettings: ...
    @property
    def database_url(self) -> str: ...
    @property
    def log_level(self) -> str: ...
    @property
    def health_listen(self) -> str: ...
    @property
    def versioning(self) -> Versioning | None: ...


def serve(service: str, settings: WorkerSettings, build: Build) -> None:
    """The worker process's main: runs until SIGTERM or SIGINT."""
    logs.setup(service, settings.log_level)
    telemetry.setup_tracing(service)
    try:
        asyncio.run(run(settings, build))
    finally:
        telemetry.shutdown_tracing()


async def run(settings: WorkerSettings, build: Build) -> None:
    pools: list[asyncpg.Pool] = []

    async def connected() -> Worker:
        client = await temporal.connect(settings.temporal, telemetry.runtime())
        pools.append(await db.connect(settings.database_url))
        return await build(client, pools[0])

    try:
        await temporal.run_worker(connected, settings.health_listen, settings.versioning)
    finally:
        for pool in pools:
            await pool.close()
