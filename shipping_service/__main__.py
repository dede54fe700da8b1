from common import worker_runner
from shipping_service.config import Settings
from shipping_service.worker import worker_for

settings = Settings.from_env()
worker_runner.serve("shipping_service", settings, worker_for(settings))
