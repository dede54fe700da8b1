"""Load shedding: StartOrder is refused (RESOURCE_EXHAUSTED with a retry hint) while as many orders run as the
system can finish within their budget, instead of starting orders that would end late.

The count is Temporal's, for the whole namespace (a visibility count query), so any number of gateways share one
limit. It is taken while starts come in, at most every REFRESH_SECONDS: an idle gateway asks nothing. A count older
than STALE_SECONDS (the first start after a quiet spell) is taken again before the start is decided. Visibility lags
the starts by a moment, so the starts this gateway made in the last VISIBILITY_LAG_SECONDS are added on top: the
limit errs on the side of refusing.

The hint is a place in line. Refused orders wait in the order of their first refusal, and each is told to come back
when, at the rate this gateway has admitted orders lately, the orders ahead of it and itself should have been let
in: the first in line soon, the last later (at most MAX_RETRY_SECONDS). The line only shapes the hints: a freed
place goes to whoever asks first, so among clients that follow their hints, and per gateway (each keeps its own
line), orders are let in roughly first come, first served, and a refused client asks a few times, not once a
second for as long as the overload lasts.
"""

import asyncio
import logging
import math
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
# The retry hint: from what the rate of admissions over the last RATE_WINDOW_SECONDS says, within these bounds.
RATE_WINDOW_SECONDS = 5.0
MIN_RETRY_SECONDS = 0.2
MAX_RETRY_SECONDS = 5.0
DEFAULT_RETRY_SECONDS = 1.0  # no order admitted lately, so no rate to go by
# A refused order that has not asked again for this long has given up, and leaves the line.
GAVE_UP_SECONDS = 2 * MAX_RETRY_SECONDS
MAX_WAITING = 10_000
RUNNING_ORDERS = f"WorkflowType='{orders.WORKFLOW}' AND ExecutionStatus='Running'"


class Overloaded(Exception):
    """As many orders are running as the system finishes within their budget; try again in `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    def __init__(self, client: Client, limit: int):
        self.client, self.limit = client, limit
        self.running = 0
        self.counted_at = float("-inf")
        self.counting: asyncio.Task[None] | None = None
        self.starts: deque[float] = deque()
        self.admitted: dict[str, float] = {}
        # Refused orders in line, in the order of their first refusal: order id -> when it last asked.
        self.waiting: dict[str, float] = {}
        self.pruned_at = float("-inf")

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
            retry_after = self._place_in_line(order_id, now)
            raise Overloaded(
                f"{self.running} orders are running, as many as finish within their budget here "
                f"(GATEWAY_MAX_ORDERS_IN_FLIGHT={self.limit}); try again in {retry_after:.1f}s",
                retry_after,
            )
        self.waiting.pop(order_id, None)
        self.starts.append(now)
        self.admitted[order_id] = now

    def _place_in_line(self, order_id: str, now: float) -> float:
        """Seconds until a refused order's turn: its place in line over the recent rate of admissions."""
        if now - self.pruned_at > 1.0:
            self.waiting = {k: asked for k, asked in self.waiting.items() if asked >= now - GAVE_UP_SECONDS}
            self.pruned_at = now
        if order_id in self.waiting or len(self.waiting) < MAX_WAITING:
            self.waiting[order_id] = now  # a key already there keeps its place
        lately = 0
        for admitted_at in reversed(self.admitted.values()):
            if admitted_at < now - RATE_WINDOW_SECONDS:
                break
            lately += 1
        if not lately:
            return DEFAULT_RETRY_SECONDS
        # Those further back than this are all told the longest wait: no need to count them.
        longest = math.ceil(MAX_RETRY_SECONDS * lately / RATE_WINDOW_SECONDS)
        place = 1
        for other in self.waiting:
            if other == order_id or place >= longest:
                break
            place += 1
        return round(min(max(place * RATE_WINDOW_SECONDS / lately, MIN_RETRY_SECONDS), MAX_RETRY_SECONDS), 3)

    async def _count(self) -> None:
        """One count of the running orders; if Temporal does not answer, the last count stands."""
        started = time.monotonic()
        try:
            self.running = (await self.client.count_workflows(RUNNING_ORDERS)).count
            self.counted_at = started
        except RPCError as err:
            log.warning("running_orders_not_counted", extra={"error": str(err)})
