"""All SQL of the `shipping` schema. Every write is safe to repeat: activities are retried."""

import json
from dataclasses import asdict

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from common import db
from common.attempts import logged_write
from shipping_service.contract import Address, Item, ShipmentStatus

SCHEMA = "shipping"


class ShipmentCancelled(Exception):
    """Dispatch was asked for a shipment that has been cancelled."""


class ShippingRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def prepared(self, order_id: str, items: list[Item], address: Address) -> None:
        # One statement: the row and its event are written together, or neither.
        sql, args = logged_write(
            SCHEMA,
            """
                WITH shipment AS (
                    INSERT INTO shipping.shipments (order_id, status, items, address)
                    VALUES ($1, $4, $2, $3)
                    ON CONFLICT (order_id) DO NOTHING
                ), event AS (
                    INSERT INTO shipping.events (order_id, type, payload) VALUES ($1, $4, '{}')
                    ON CONFLICT (order_id, type) DO NOTHING
                ){attempt}
                SELECT
            """,
            order_id,
            json.dumps([asdict(i) for i in items]),
            json.dumps(asdict(address)),
            ShipmentStatus.PREPARED,
        )
        async with db.connection(self.pool) as conn:
            await conn.execute(sql, *args)

    async def dispatched(self, order_id: str, address: Address, dispatch_round: int, carrier_message: str) -> None:
        sql, args = logged_write(
            SCHEMA,
            """
                WITH updated AS (
                    UPDATE shipping.shipments
                    SET status = $6, address = $2, dispatch_rounds = $3, carrier_message = $4,
                        updated_at = now()
                    WHERE order_id = $1 AND status IN ($6, $7)
                    RETURNING order_id
                ), event AS (
                    INSERT INTO shipping.events (order_id, type, payload)
                    SELECT order_id, $6, $5::jsonb FROM updated
                    ON CONFLICT (order_id, type) DO NOTHING
                ){attempt}
                SELECT count(*) FROM updated
            """,
            order_id,
            json.dumps(asdict(address)),
            dispatch_round,
            carrier_message,
            json.dumps({"address": asdict(address), "round": dispatch_round}),
            ShipmentStatus.DISPATCHED,
            ShipmentStatus.PREPARED,
        )
        async with db.connection(self.pool) as conn:
            found = await conn.fetchval(sql, *args)
        if not found:
            raise ShipmentCancelled(f"shipment for order {order_id!r} is cancelled or was never prepared")

    async def cancel(self, order_id: str, items: list[Item], address: Address, reason: str) -> ShipmentStatus:
        """Cancel unless already dispatched; returns the shipment's status afterwards."""
        async with db.connection(self.pool) as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO shipping.shipments (order_id, status, items, address)
                VALUES ($1, $4, $2, $3)
                ON CONFLICT (order_id) DO UPDATE SET status = $4, updated_at = now()
                WHERE shipments.status <> $5
                """,
                order_id,
                json.dumps([asdict(i) for i in items]),
                json.dumps(asdict(address)),
                ShipmentStatus.CANCELLED,
                ShipmentStatus.DISPATCHED,
            )
            status = ShipmentStatus(
                await conn.fetchval("SELECT status FROM shipping.shipments WHERE order_id = $1", order_id)
            )
            if status == ShipmentStatus.CANCELLED:
                await self._event(conn, order_id, status, {"reason": reason})
            return status

    @staticmethod
    async def _event(conn: PoolConnectionProxy, order_id: str, kind: str, payload: dict[str, object]) -> None:
        await conn.execute(
            """
            INSERT INTO shipping.events (order_id, type, payload) VALUES ($1, $2, $3)
            ON CONFLICT (order_id, type) DO NOTHING
            """,
            order_id,
            kind,
            json.dumps(payload),
        )
