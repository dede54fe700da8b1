import asyncio

from common import db, logs, temporal
from gateway import server
from gateway.config import Settings
from gateway.repository import ReadRepository


async def main(settings: Settings) -> None:
    client = await temporal.connect(settings.temporal.address, settings.temporal.namespace)
    pool = await db.connect(settings.database_url)
    grpc_server, _ = await server.serve(client, ReadRepository(pool), settings)
    try:
        await grpc_server.wait_for_termination()
    finally:
        await pool.close()


settings = Settings.from_env()
logs.setup("gateway", settings.log_level)
asyncio.run(main(settings))
