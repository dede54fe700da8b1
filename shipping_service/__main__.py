import asyncio

from common import logs
from shipping_service import worker
from shipping_service.config import Settings

settings = Settings.from_env()
logs.setup("shipping_service", settings.log_level)
asyncio.run(worker.main(settings))
