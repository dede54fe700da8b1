"""Connecting to Temporal, with a wait for the server to come up."""

import asyncio
import logging

from temporalio.client import Client
from temporalio.service import RPCError

log = logging.getLogger(__name__)


async def connect(address: str, namespace: str, attempts: int = 60) -> Client:
    for attempt in range(1, attempts + 1):
        try:
            return await Client.connect(address, namespace=namespace)
        except (RuntimeError, RPCError) as err:
            if attempt == attempts:
                raise
            log.warning("temporal_unavailable", extra={"attempt": attempt, "error": str(err)})
            await asyncio.sleep(1)
    raise AssertionError("unreachable")
