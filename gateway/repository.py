"""The gateway's reads of Postgres, through the read-only gateway_reader role; it never writes. What a read of an order
takes from here is what Temporal would otherwise have to keep for it: the attempt log, the payment, the shipment
and the order's end."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from common import db
from order_service import contract as orders

ATTEMPTS = """
SELECT 'orders' AS service, step, attempt, outcome, message, duration_ms, ts
FROM orders.step_attempts WHERE order_id = $1
UNION ALL
SELECT 'shipping' AS service, step, attempt, outcome, message, duration_ms, ts
FROM shipping.step_attempts WHERE order_id = $1
ORDER BY ts
"""


END_STATES = list(orders.TERMINAL_STATES)
FACTS = """
SELECT o.state, o.reason, o.updated_at, p.payment_id, p.amount, p.status AS payment_status,
       s.status AS shipment_status, s.address AS shipment_address
FROM (SELECT $1::text AS order_id) AS wanted
LEFT JOIN orders.orders o USING (order_id)
LEFT JOIN orders.payments p USING (order_id)
LEFT JOIN shipping.shipments s USING (order_id)
"""

# One row of the attempt log: service, step, attempt, outcome, message, duration_ms, ts.
AttemptRow = dict[str, Any]


@dataclass
class OrderFacts:
    """What the services' tables say of an order: its end (state, reason, when) once written, its payment
    (payment_id, amount, status) and its shipment (status, the address the carrier has)."""

    end: tuple[str, str, datetime] | None = None
    payment: tuple[str, int, str] | None = None
    shipment_status: str = ""
    shipment_address: dict[str, str] | None = None


class ReadRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def order(self, order_id: str) -> tuple[OrderFacts, list[AttemptRow]]:
        """An order's facts and its attempt log, on one connection."""
        async with db.connection(self.pool) as conn:
            row = await conn.fetchrow(FACTS, order_id)
            attempts = [dict(r) for r in await conn.fetch(ATTEMPTS, order_id)]
        facts = OrderFacts()
        if row is not None:
            if row["state"] in END_STATES:
                facts.end = (row["state"], row["reason"], row["updated_at"])
            if row["payment_id"] is not None:
                facts.payment = (row["payment_id"], row["amount"], row["payment_status"])
            facts.shipment_status = row["shipment_status"] or ""
            if row["shipment_address"] is not None:
                facts.shipment_address = json.loads(row["shipment_address"])
        return facts, attempts

    async def ended(self, order_ids: list[str]) -> dict[str, tuple[str, str]]:
        """The end state and reason of each order whose row holds one: {order_id: (state, reason)}."""
        if not order_ids:
            return {}
        async with db.connection(self.pool) as conn:
            rows = await conn.fetch(
                "SELECT order_id, state, reason FROM orders.orders WHERE order_id = ANY($1) AND state = ANY($2)",
                order_ids,
                END_STATES,
            )
        return {r["order_id"]: (r["state"], r["reason"]) for r in rows}

    async def attempts(self, order_id: str) -> list[AttemptRow]:
        async with db.connection(self.pool) as conn:
            return [dict(r) for r in await conn.fetch(ATTEMPTS, order_id)]
