"""Connecting to Temporal: traced (context flows gateway → workflow → activities), payloads sealed when
PAYLOAD_KEY is set (common/codec.py), and patient at start. Running a worker until it is told to stop."""

import asyncio
import logging
import signal
from datetime import timedelta

from grpc_health.v1 import health_pb2
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Worker

from common import codec, health
from common.settings import TemporalSettings

log = logging.getLogger(__name__)

# A workflow task waits this long for the worker that cached its workflow before any worker takes it.
# The SDK's 10 s would spend most of an order's 15 s budget waiting for a crashed worker.
STICKY_TIMEOUT = timedelta(seconds=3)
# On SIGTERM a worker stops polling and lets running attempts (each under a second) finish.
GRACEFUL_SHUTDOWN = timedelta(seconds=5)


async def connect(settings: TemporalSettings, runtime: Runtime | None = None, attempts: int = 60) -> Client:
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(
                settings.address, namespace=settings.namespace, api_key=settings.api_key or None,
                tls=settings.tls_config(), interceptors=[TracingInterceptor()], runtime=runtime,
                data_converter=codec.data_converter(),
            )
        except (RuntimeError, RPCError) as err:
            if attempt == attempts:
                raise
            log.warning("temporal_unavailable", extra={"attempt": attempt, "error": str(err)})
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def run_worker(worker: Worker, health_listen: str = "") -> None:
    """Runs a worker until SIGTERM or SIGINT, then shuts it down cleanly. Meanwhile grpc.health.v1 on
    health_listen (if set) answers SERVING, and NOT_SERVING once shutdown has begun."""
    health_server = None
    try:
        async with worker:
            if health_listen:
                health_server, health_status = await health.serve(health_listen)
                await health_status.set("", health_pb2.HealthCheckResponse.SERVING)
            log.info("worker_started", extra={"fields": {"task_queue": worker.task_queue}})
            await until_terminated()
            if health_server is not None:
                await health_status.enter_graceful_shutdown()
    finally:
        if health_server is not None:
            await health_server.stop(None)
    log.info("worker_stopped", extra={"fields": {"task_queue": worker.task_queue}})


async def until_terminated() -> None:
    """Returns on SIGTERM or SIGINT, so the caller can shut down cleanly (deploys send SIGTERM)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutdown_requested")
