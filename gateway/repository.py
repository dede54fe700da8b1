"""The gateway's one read of Postgres, the attempt log, through the read-only gateway_reader role; it never writes."""

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

    async def attempts(self, order_id: str) -> list[AttemptRow]:
        async with db.connection(self.pool) as conn:
            return [dict(r) for r in await conn.fetch(ATTEMPTS, order_id)]
