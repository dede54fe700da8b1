import asyncio

from common import logs
from order_service import worker
from order_service.config import Settings

settings = Settings.from_env()
logs.setup("order_service", settings.log_level)
asyncio.run(worker.main(settings))
