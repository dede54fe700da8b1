import asyncio

from common import db, logs, telemetry, temporal
from gateway import server
from gateway.config import Settings
from gateway.repository import ReadRepository


async def main(settings: Settings) -> None:
    """Listens at once (health NOT_SERVING, calls UNAVAILABLE) and serves once Temporal and Postgres answer,
    however long they take to come up."""
    runtime = telemetry.runtime()
    grpc_server, _, gateway = await server.listen(settings, runtime.metric_meter)
    pools = []

    async def connect() -> None:
        client = await temporal.connect(settings.temporal, runtime)
        pools.append(await db.connect(settings.database_url))
        await gateway.ready(client, ReadRepository(pools[0]))

    connecting = asyncio.create_task(connect())
    try:
        await temporal.until_terminated()
        connecting.cancel()
        await grpc_server.stop(grace=5)
    finally:
        for pool in pools:
            await pool.close()


settings = Settings.from_env()
logs.setup("gateway", settings.log_level)
telemetry.setup_tracing("gateway")
try:
    asyncio.run(main(settings))
finally:
    telemetry.shutdown_tracing()
