"""The gateway's reads, through the read-only gateway_reader role; it never writes."""

import asyncpg

ATTEMPTS = """
SELECT 'orders' AS service, step, attempt, outcome, message, duration_ms, ts FROM orders.step_attempts WHERE order_id = $1
UNION ALL
SELECT 'shipping' AS service, step, attempt, outcome, message, duration_ms, ts FROM shipping.step_attempts WHERE order_id = $1
ORDER BY ts
"""


class ReadRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def attempts(self, order_id: str) -> list[dict]:
        return [dict(r) for r in await self.pool.fetch(ATTEMPTS, order_id)]

    async def list_orders(self, states: tuple[str, ...] | None, limit: int) -> list[asyncpg.Record]:
        """The newest orders whose row is in one of `states` (all orders when None)."""
        return await self.pool.fetch(
            """
            SELECT order_id, state, reason, updated_at FROM orders.orders
            WHERE $1::text[] IS NULL OR state = ANY($1)
            ORDER BY created_at DESC, order_id LIMIT $2
            """,
            None if states is None else list(states),
            limit,
        )
