import asyncio

from common import logs, telemetry
from shipping_service import worker
from shipping_service.config import Settings

settings = Settings.from_env()
logs.setup("shipping_service", settings.log_level)
telemetry.setup_tracing("shipping_service")
try:
    asyncio.run(worker.main(settings))
finally:
    telemetry.shutdown_tracing()
