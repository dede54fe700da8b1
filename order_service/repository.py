"""All SQL of the `orders` schema. Every write is safe to repeat: activities are retried."""

import json
from dataclasses import asdict
from enum import StrEnum

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from common import db
from common.attempts import logged_write
from order_service.contract import TERMINAL_STATES, Address, Item, OrderState, Payment, PaymentStatus

SCHEMA = "orders"


class PaymentConflict(Exception):
    """A payment id already used for another order or amount."""


class Event(StrEnum):
    """The business events an order's own steps write (its end writes one named after its end state)."""

    RECEIVED = "received"
    VALIDATED = "validated"
    CHARGED = "charged"
    REFUNDED = "refunded"
    SHIPPED = "shipped"


class OrderConflict(Exception):
    """An order id or payment id already taken by a different order."""


class OrdersRepository:
    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool

    async def receive(self, order_id: str, payment_id: str, items: list[Item], address: Address) -> None:
        # One statement: the row and its event are written together, or neither (as everywhere below).
        sql, args = logged_write(
            SCHEMA,
            """
                WITH inserted AS (
                    INSERT INTO orders.orders (order_id, payment_id, items, address, state)
                    VALUES ($1, $2, $3, $4, $6)
                    ON CONFLICT DO NOTHING
                    RETURNING order_id
                ), event AS (
                    INSERT INTO orders.events (order_id, type, payload)
                    SELECT order_id, $7, $5::jsonb FROM inserted
                    ON CONFLICT (order_id, type) DO NOTHING
                ){attempt}
                SELECT count(*) FROM inserted
            """,
            order_id,
            payment_id,
            json.dumps([asdict(i) for i in items]),
            json.dumps(asdict(address)),
            json.dumps({"payment_id": payment_id}),
            OrderState.RECEIVED,
            Event.RECEIVED,
        )
        async with db.connection(self.pool) as conn:
            inserted = await conn.fetchval(sql, *args)
            if not inserted:
                # A repeat (this order is already there) or a conflict. Read in a statement of its own, which sees
                # a row another transaction committed after the insert's snapshot.
                row = await conn.fetchrow(
                    "SELECT order_id, payment_id FROM orders.orders WHERE order_id = $1 OR payment_id = $2",
                    order_id,
                    payment_id,
                )
                if row is None or row["order_id"] != order_id or row["payment_id"] != payment_id:
                    raise OrderConflict(f"payment_id {payment_id!r} is already used by another order")

    async def set_state(self, order_id: str, state: OrderState, event: str, reason: str = "") -> None:
        """Record a state; an order that never got its row (ReceiveOrder failed) has nothing to update."""
        sql, args = logged_write(
            SCHEMA,
            """
                WITH updated AS (
                    UPDATE orders.orders SET state = $2, reason = $3, updated_at = now()
                    WHERE order_id = $1 RETURNING order_id
                ), event AS (
                    INSERT INTO orders.events (order_id, type, payload)
                    SELECT order_id, $4::text, $5::jsonb FROM updated
                    ON CONFLICT (order_id, type) DO NOTHING
                ){attempt}
                SELECT
            """,
            order_id,
            state,
            reason,
            event,
            json.dumps({"reason": reason}),
        )
        async with db.connection(self.pool) as conn:
            await conn.execute(sql, *args)

    async def finalize(
        self, order_id: str, state: OrderState, reason: str, received: tuple[str, list[Item], Address] | None
    ) -> None:
        """Record the end state. An order that ended before ReceiveOrder wrote its row (cancelled at once, or
        ReceiveOrder out of budget) gets its row now, in its end state, unless another order holds its payment id
        (the conflict that ended it)."""
        async with db.connection(self.pool) as conn, conn.transaction():
            found = await conn.fetchval(
                "UPDATE orders.orders SET state = $2, reason = $3, updated_at = now() WHERE order_id = $1 "
                "RETURNING order_id",
                order_id,
                state,
                reason,
            )
            if not found and received is not None:
                payment_id, items, address = received
                found = await conn.fetchval(
                    """
                    INSERT INTO orders.orders (order_id, payment_id, items, address, state, reason)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT DO NOTHING
                    RETURNING order_id
                    """,
                    order_id,
                    payment_id,
                    json.dumps([asdict(i) for i in items]),
                    json.dumps(asdict(address)),
                    state,
                    reason,
                )
            if found:
                await self._event(conn, order_id, state.lower(), {"reason": reason})

    async def find_payment(self, payment_id: str) -> asyncpg.Record | None:
        async with db.connection(self.pool) as conn:
            return await conn.fetchrow("SELECT * FROM orders.payments WHERE payment_id = $1", payment_id)

    async def record_charge(self, payment_id: str, order_id: str, amount: int) -> Payment:
        """Insert the charge once; a repeat returns the first row; a different order or amount is refused."""
        sql, args = logged_write(
            SCHEMA,
            """
                WITH inserted AS (
                    INSERT INTO orders.payments (payment_id, order_id, amount, status)
                    VALUES ($1, $2, $3, $4)
                    ON CONFLICT DO NOTHING
                    RETURNING payment_id, order_id, amount, status
                ), payment AS (
                    SELECT * FROM inserted
                    UNION ALL
                    SELECT payment_id, order_id, amount, status FROM orders.payments WHERE payment_id = $1
                ), matching AS (
                    SELECT * FROM payment WHERE order_id = $2 AND amount = $3
                ), moved_on AS (
                    UPDATE orders.orders SET state = $5, updated_at = now()
                    WHERE order_id = $2 AND EXISTS (SELECT FROM matching)
                ), event AS (
                    INSERT INTO orders.events (order_id, type, payload)
                    SELECT order_id, $6, jsonb_build_object('payment_id', payment_id, 'amount', amount)
                    FROM matching
                    ON CONFLICT (order_id, type) DO NOTHING
                ){attempt}
                SELECT * FROM payment
            """,
            payment_id,
            order_id,
            amount,
            PaymentStatus.CHARGED,
            OrderState.SHIPPING,
            Event.CHARGED,
        )
        async with db.connection(self.pool) as conn:
            # The row just inserted, or the one already there (receive() holds every order to its payment id). The
            # order moves on, and its event is written, only when that row is this order's charge of this amount.
            row = await conn.fetchrow(sql, *args)
            if row is None:
                # Inserted by another transaction after this statement's snapshot: read it in a statement of its own.
                row = await conn.fetchrow(
                    "SELECT payment_id, order_id, amount, status FROM orders.payments WHERE payment_id = $1", payment_id
                )
        assert row is not None  # inserted, or there already
        check_payment(row, order_id, amount)
        return Payment(row["payment_id"], row["amount"], PaymentStatus(row["status"]))

    async def refund(self, order_id: str) -> Payment | None:
        """Mark the order's charge refunded; None when nothing was charged. Repeats change nothing."""
        async with db.connection(self.pool) as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                UPDATE orders.payments SET status = $2, refunded_at = coalesce(refunded_at, now())
                WHERE order_id = $1
                RETURNING *
                """,
                order_id,
                PaymentStatus.REFUNDED,
            )
            if row is None:
                return None
            await self._event(
                conn, order_id, Event.REFUNDED, {"payment_id": row["payment_id"], "amount": row["amount"]}
            )
        return Payment(row["payment_id"], row["amount"], PaymentStatus(row["status"]))

    async def mark_shipped(self, order_id: str, address: Address) -> None:
        sql, args = logged_write(
            SCHEMA,
            """
                WITH updated AS (
                    UPDATE orders.orders SET state = $3, address = $2, reason = '', updated_at = now()
                    WHERE order_id = $1 RETURNING order_id
                ), event AS (
                    INSERT INTO orders.events (order_id, type, payload)
                    SELECT order_id, $4, '{}'::jsonb FROM updated
                    ON CONFLICT (order_id, type) DO NOTHING
                ){attempt}
                SELECT
            """,
            order_id,
            json.dumps(asdict(address)),
            OrderState.COMPLETED,
            Event.SHIPPED,
        )
        async with db.connection(self.pool) as conn:
            await conn.execute(sql, *args)

    async def unsettled(self, older_than_seconds: float, limit: int, among: list[str]) -> list[asyncpg.Record]:
        """Orders not in an end state that are among the given ones or started longer ago than any order may run: the
        sweep's candidates."""
        async with db.connection(self.pool) as conn:
            return await conn.fetch(
                """
                SELECT o.order_id, o.items, o.address, p.status AS payment_status
                FROM orders.orders o LEFT JOIN orders.payments p USING (order_id)
                WHERE o.state <> ALL($4)
                  AND (o.order_id = ANY($3) OR o.created_at < now() - make_interval(secs => $1))
                ORDER BY o.created_at LIMIT $2
                """,
                older_than_seconds,
                limit,
                among,
                list(TERMINAL_STATES),
            )

    @staticmethod
    async def _event(conn: PoolConnectionProxy, order_id: str, kind: str, payload: dict[str, object]) -> None:
        await conn.execute(
            """
            INSERT INTO orders.events (order_id, type, payload) VALUES ($1, $2, $3)
            ON CONFLICT (order_id, type) DO NOTHING
            """,
            order_id,
            kind,
            json.dumps(payload),
        )


def check_payment(row: asyncpg.Record | None, order_id: str, amount: int | None) -> None:
    if row is None:
        return
    if row["order_id"] != order_id:
        raise PaymentConflict(f"payment_id {row['payment_id']!r} was already used for order {row['order_id']!r}")
    if amount is not None and row["amount"] != amount:
        raise PaymentConflict(f"payment_id {row['payment_id']!r} was already charged {row['amount']}, not {amount}")
