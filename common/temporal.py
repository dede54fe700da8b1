"""Connecting to Temporal: traced (context flows gateway → workflow → activities), payloads sealed when
PAYLOAD_KEY is set (common/codec.py), and patient at start. Running a worker until it is told to stop."""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta

from grpc_health.v1 import health_pb2
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError
from temporalio.worker import Worker

from common import codec, health, telemetry, versioning
from common.settings import TemporalSettings

log = logging.getLogger(__name__)

# A workflow task waits this long for the worker that cached its workflow before any worker of the build takes it
# (replaying the history). The SDK's 10 s would spend most of an order's 15 s budget waiting for a crashed worker.
STICKY_TIMEOUT = timedelta(seconds=1)
# On SIGTERM a worker stops polling and lets running attempts (each under a second) finish.
GRACEFUL_SHUTDOWN = timedelta(seconds=5)


async def connect(settings: TemporalSettings, runtime: Runtime | None = None, attempts: int | None = None) -> Client:
    """A client, once Temporal answers: a service started before Temporal waits for it (with backoff, without
    end unless `attempts` is given) instead of exiting."""
    converter = codec.data_converter()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await Client.connect(
                **settings.connect_config(),
                plugins=telemetry.plugins(),
                runtime=runtime,
                data_converter=converter,
            )
        except (RuntimeError, RPCError) as err:
            if attempts is not None and attempt >= attempts:
                raise
            log.warning("temporal_unavailable", extra={"attempt": attempt, "error": str(err)})
            await asyncio.sleep(health.backoff(attempt))


async def run_worker(
    build: Callable[[], Awaitable[Worker]], health_listen: str = "", version: versioning.Versioning | None = None
) -> None:
    """Builds the worker (connecting to what it needs, however long that takes) and runs it until SIGTERM or
    SIGINT, then shuts it down cleanly. A versioned worker makes its build current if its deployment has none yet
    (a fresh stack); otherwise only a deploy does. grpc.health.v1 on health_listen (if set) answers from the start:
    NOT_SERVING while the worker waits for Temporal or Postgres, SERVING while it polls, NOT_SERVING again
    once shutdown has begun."""
    health_server = health_status = None
    if health_listen:
        health_server, health_status = await health.serve(health_listen)
    try:
        worker = await build()
        async with worker:
            if health_status is not None:
                await health_status.set("", health_pb2.HealthCheckResponse.SERVING)
            fields = {"task_queue": worker.task_queue}
            first_build: asyncio.Task[None] | None = None
            if version is not None and version.enabled:
                fields.update(deployment=version.deployment_name, build_id=version.build_id)
                first_build = asyncio.create_task(_first_build_current(worker, version))
            log.info("worker_started", extra={"fields": fields})
            await until_terminated()
            if first_build is not None:
                first_build.cancel()
            if health_status is not None:
                await health_status.enter_graceful_shutdown()
        log.info("worker_stopped", extra={"fields": {"task_queue": worker.task_queue}})
    finally:
        if health_server is not None:
            await health_server.stop(None)


async def _first_build_current(worker: Worker, version: versioning.Versioning) -> None:
    try:
        await versioning.make_current_if_unset(worker.client, version, worker.task_queue)
    except Exception as err:  # the worker runs on: a deploy can still make its build current
        log.error("deployment_current_not_set", extra={"error": f"{type(err).__name__}: {err}"})


async def until_terminated() -> None:
    """Returns on SIGTERM or SIGINT, so the caller can shut down cleanly (deploys send SIGTERM)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutdown_requested")
