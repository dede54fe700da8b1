import asyncio

from common import db, logs, telemetry, temporal
from gateway import server
from gateway.config import Settings
from gateway.repository import ReadRepository


async def main(settings: Settings) -> None:
    runtime = telemetry.runtime()
    client = await temporal.connect(settings.temporal, runtime)
    pool = await db.connect(settings.database_url)
    grpc_server, _ = await server.serve(client, ReadRepository(pool), settings, runtime.metric_meter)
    try:
        await temporal.until_terminated()
        await grpc_server.stop(grace=5)
    finally:
        await pool.close()


settings = Settings.from_env()
logs.setup("gateway", settings.log_level)
telemetry.setup_tracing("gateway")
try:
    asyncio.run(main(settings))
finally:
    telemetry.shutdown_tracing()
