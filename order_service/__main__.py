from common import worker_runner
from order_service.config import Settings
from order_service.worker import worker_for

settings = Settings.from_env()
worker_runner.serve("order_service", settings, worker_for(settings))
