"""Load shedding: StartOrder is refused (RESOURCE_EXHAUSTED, try again in a second) while as many orders run as the
system can finish within their budget, instead of starting orders that would end late.

The count is Temporal's, for the whole namespace (a visibility count query), so any number of gateways share one
limit. It is taken while starts come in, at most every REFRESH_SECONDS: an idle gateway asks nothing. A count older
than STALE_SECONDS (the first start after a quiet spell) is taken again before the start is decided. Visibility lags
the starts by a moment, so the starts this gateway made in the last VISIBILITY_LAG_SECONDS are added on top: the
limit errs on the side of refusing.
"""

import asyncio
import logging
import time
from collections import deque

from temporalio.client import Client
from temporalio.service import RPCError

from order_service import contract as orders

log = logging.getLogger(__name__)

REFRESH_SECONDS = 0.2
STALE_SECONDS = 1.0
VISIBILITY_LAG_SECONDS = 0.5
# An order this gateway admitted is let through again for this long (a client retrying a start that was not
# answered gets its order, not a refusal); no execution outlives it.
REMEMBER_SECONDS = 60.0
RUNNING_ORDERS = f"WorkflowType='{orders.WORKFLOW}' AND ExecutionStatus='Running'"


class Overloaded(Exception):
    """As many orders are running as the system finishes within their budget."""


class Admission:
    def __init__(self, client: Client, limit: int):
        self.client, self.limit = client, limit
        self.running = 0
        self.counted_at = float("-inf")
        self.counting: asyncio.Task[None] | None = None
        self.starts: deque[float] = deque()
        self.admitted: dict[str, float] = {}

    async def admit(self, order_id: str) -> None:
        """Counts a start, or raises Overloaded (a limit of 0 admits everything). An order admitted before is let
        through, so its retried start finds it."""
        if not self.limit or order_id in self.admitted:
            return
        age = time.monotonic() - self.counted_at
        if age > REFRESH_SECONDS and (self.counting is None or self.counting.done()):
            self.counting = asyncio.create_task(self._count())
        if age > STALE_SECONDS and self.counting is not None:
            await asyncio.shield(self.counting)
        now = time.monotonic()
        while self.admitted and next(iter(self.admitted.values())) < now - REMEMBER_SECONDS:
            del self.admitted[next(iter(self.admitted))]
        while self.starts and self.starts[0] < min(now, self.counted_at) - VISIBILITY_LAG_SECONDS:
            self.starts.popleft()
        if self.running + len(self.starts) >= self.limit:
            raise Overloaded(
                f"{self.running} orders are running, as many as finish within their budget here "
                f"(GATEWAY_MAX_ORDERS_IN_FLIGHT={self.limit}); try again shortly"
            )
        self.starts.append(now)
        self.admitted[order_id] = now

    async def _count(self) -> None:
        """One count of the running orders; if Temporal does not answer, the last count stands."""
        started = time.monotonic()
        try:
            self.running = (await self.client.count_workflows(RUNNING_ORDERS)).count
            self.counted_at = started
        except RPCError as err:
            log.warning("running_orders_not_counted", extra={"error": str(err)})
