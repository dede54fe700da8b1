"""Connecting to Temporal: traced (context flows gateway → workflow → activities), payloads sealed when
PAYLOAD_KEY is set (common/codec.py), and patient at start."""

import asyncio
import logging

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from common import codec

log = logging.getLogger(__name__)


async def connect(address: str, namespace: str, runtime: Runtime | None = None, attempts: int = 60) -> Client:
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(
                address, namespace=namespace, interceptors=[TracingInterceptor()], runtime=runtime,
                data_converter=codec.data_converter(),
            )
        except (RuntimeError, RPCError) as err:
            if attempt == attempts:
                raise
            log.warning("temporal_unavailable", extra={"attempt": attempt, "error": str(err)})
            await asyncio.sleep(1)
    raise AssertionError("unreachable")
