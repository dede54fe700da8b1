"""The gateway's one read of Postgres, the attempt log, through the read-only gateway_reader role; it never writes."""

from datetime import datetime
from typing import Any

import asyncpg

from common import db

ATTEMPTS = """
SELECT 'orders' AS service, step, attempt, outcome, message, duration_ms, ts
FROM orders.step_attempts WHERE order_id = $1
UNION ALL
SELECT 'shipping' AS service, step, attempt, outcome, message, duration_ms, ts
FROM shipping.step_attempts WHERE order_id = $1
ORDER BY ts
"""


# One row of the attempt log: service, step, attempt, outcome, message, duration_ms, ts.
AttemptRow = dict[str, Any]


class ReadRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def order_end(self, order_id: str) -> tuple[str, str, datetime] | None:
        """The order row's state, reason and last change, when it is in an end state (its own or the sweep's)."""
        async with db.connection(self.pool) as conn:
            row = await conn.fetchrow(
                "SELECT state, reason, updated_at FROM orders.orders WHERE order_id = $1 "
                "AND state IN ('COMPLETED', 'CANCELLED', 'REJECTED', 'FAILED')",
                order_id,
            )
        return None if row is None else (row["state"], row["reason"], row["updated_at"])

    async def ended(self, order_ids: list[str]) -> dict[str, tuple[str, str]]:
        """order_end for several orders at once: {order_id: (state, reason)}."""
        if not order_ids:
            return {}
        async with db.connection(self.pool) as conn:
            rows = await conn.fetch(
                "SELECT order_id, state, reason FROM orders.orders WHERE order_id = ANY($1) "
                "AND state IN ('COMPLETED', 'CANCELLED', 'REJECTED', 'FAILED')",
                order_ids,
            )
        return {r["order_id"]: (r["state"], r["reason"]) for r in rows}

    async def attempts(self, order_id: str) -> list[AttemptRow]:
        async with db.connection(self.pool) as conn:
            return [dict(r) for r in await conn.fetch(ATTEMPTS, order_id)]
