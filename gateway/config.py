"""Gateway settings, from the environment only."""

import os
from dataclasses import dataclass

from common.settings import TemporalSettings, database_url
from order_service import contract as orders
from shipping_service import contract as shipping

# What a 2-core machine finishes within the 15 s budget at 50 and 100 at a time (docs/reports/bench.md);
# a bigger cluster sets its own.
MAX_ORDERS_IN_FLIGHT = 30


@dataclass(frozen=True)
class Settings:
    temporal: TemporalSettings
    database_url: str
    listen: str
    order_task_queue: str
    shipping_task_queue: str
    log_level: str
    token: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    max_requests_per_second: float = 1000.0
    max_concurrent_rpcs: int = 100
    # StartOrder is refused (RESOURCE_EXHAUSTED) while this many orders run; 0: no limit (gateway/admission.py).
    max_orders_in_flight: int = 0

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            temporal=TemporalSettings.from_env(),
            database_url=database_url("GATEWAY_DATABASE_URL", "gateway_reader"),
            listen=os.environ.get("GATEWAY_LISTEN", "127.0.0.1:50051"),
            order_task_queue=os.environ.get("ORDER_TASK_QUEUE", orders.TASK_QUEUE),
            shipping_task_queue=os.environ.get("SHIPPING_TASK_QUEUE", shipping.TASK_QUEUE),
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            # With a token, every RPC but health needs `authorization: Bearer <token>`.
            token=os.environ.get("GATEWAY_TOKEN", ""),
            tls_cert=os.environ.get("GATEWAY_TLS_CERT", ""),
            tls_key=os.environ.get("GATEWAY_TLS_KEY", ""),
            max_requests_per_second=float(os.environ.get("GATEWAY_MAX_RPS", "1000")),
            max_concurrent_rpcs=int(os.environ.get("GATEWAY_MAX_CONCURRENT_RPCS", "100")),
            max_orders_in_flight=int(os.environ.get("GATEWAY_MAX_ORDERS_IN_FLIGHT", str(MAX_ORDERS_IN_FLIGHT))),
        )
