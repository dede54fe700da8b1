"""What must hold for any batch of orders once they have ended, whatever happened on the way."""

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

TERMINAL = {"COMPLETED", "CANCELLED", "REJECTED", "FAILED"}


async def problems(admin: asyncpg.Pool, client: Client, ended: dict[str, str]) -> list[str]:
    """`ended` maps order id → the terminal state the gateway reported. Returns every broken rule, worded.

    - every order terminal, its workflow closed normally (not timed out, terminated or failed);
    - the database agrees with the workflow; an order without a row ended before ReceiveOrder wrote it;
    - at most one charge per payment id and per order; every charge shipped or refunded;
    - a dispatched parcel only for a COMPLETED order; a shipment only for an order that exists;
    - no order without its events, no event without its order.
    """
    found = []
    ids = list(ended)
    orders = {
        r["order_id"]: r
        for r in await admin.fetch(
            "SELECT order_id, payment_id, state FROM orders.orders WHERE order_id = ANY($1)", ids
        )
    }
    payments = await admin.fetch(
        "SELECT order_id, payment_id, status FROM orders.payments WHERE order_id = ANY($1)", ids
    )
    shipments = {
        r["order_id"]: r["status"]
        for r in await admin.fetch("SELECT order_id, status FROM shipping.shipments WHERE order_id = ANY($1)", ids)
    }
    events = {
        r["order_id"]: r["n"]
        for r in await admin.fetch(
            "SELECT order_id, count(*) AS n FROM orders.events WHERE order_id = ANY($1) GROUP BY order_id", ids
        )
    }
    orphans = await admin.fetchval("""
        SELECT (SELECT count(*) FROM orders.events e LEFT JOIN orders.orders o USING (order_id)
                WHERE o.order_id IS NULL)
             + (SELECT count(*) FROM shipping.events e LEFT JOIN shipping.shipments s USING (order_id)
                WHERE s.order_id IS NULL)
             + (SELECT count(*) FROM shipping.shipments s LEFT JOIN orders.orders o USING (order_id)
                WHERE o.order_id IS NULL)""")
    if orphans:
        found.append(f"{orphans} events or shipments without their order")

    charged: dict[str, list[str]] = {}
    for p in payments:
        charged.setdefault(p["order_id"], []).append(p["status"])
    for order_id, state in ended.items():
        if state not in TERMINAL:
            found.append(f"{order_id}: not terminal ({state})")
            continue
        workflow = await _status(client, f"order-{order_id}")
        if workflow != WorkflowExecutionStatus.COMPLETED:
            found.append(f"{order_id}: workflow {workflow.name if workflow else 'missing'}")
        row = orders.get(order_id)
        if row is None:
            if state not in ("REJECTED", "FAILED"):
                found.append(f"{order_id}: {state} but no order row")
        else:
            if row["state"] != state:
                found.append(f"{order_id}: database says {row['state']}, workflow {state}")
            if not events.get(order_id):
                found.append(f"{order_id}: an order row without events")
        statuses = charged.get(order_id, [])
        if len(statuses) > 1:
            found.append(f"{order_id}: {len(statuses)} charges")
        shipment = shipments.get(order_id)
        if state == "COMPLETED":
            if statuses != ["charged"] or shipment != "dispatched":
                found.append(f"{order_id}: COMPLETED with payment {statuses} and shipment {shipment}")
        else:
            if statuses not in ([], ["refunded"]):
                found.append(f"{order_id}: {state} with payment {statuses}, neither shipped nor refunded")
            if shipment not in (None, "cancelled"):
                found.append(f"{order_id}: {state} with shipment {shipment}")
    return found


async def _status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
