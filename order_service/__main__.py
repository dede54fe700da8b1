import asyncio

from common import logs, telemetry
from order_service import worker
from order_service.config import Settings

settings = Settings.from_env()
logs.setup("order_service", settings.log_level)
telemetry.setup_tracing("order_service")
try:
    asyncio.run(worker.main(settings))
finally:
    telemetry.shutdown_tracing()
