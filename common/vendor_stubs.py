"""The brief's failure simulator and function stubs, as written.

`flaky_call()` must not be changed. Activities call these stubs and persist around them.
"""

import asyncio
import random
from typing import Any


async def flaky_call() -> None:
    """Either raise an error or sleep long enough to trigger an activity timeout."""
    rand_num = random.random()
    if rand_num < 0.33:
        raise RuntimeError("Forced failure for testing")

    if rand_num < 0.67:
        await asyncio.sleep(300)  # Expect the activity layer to time out before this completes


async def order_received(order_id: str) -> dict[str, Any]:
    await flaky_call()
    # DB write: the activity upserts the order row after this returns
    return {"order_id": order_id, "items": [{"sku": "ABC", "qty": 1}]}


async def order_validated(order: dict[str, Any]) -> bool:
    await flaky_call()
    # DB read/write: the activity records the validation outcome
    if not order.get("items"):
        raise ValueError("No items to validate")
    return True


async def payment_charged(order: dict[str, Any], payment_id: str, db: object) -> dict[str, Any]:
    """Charge payment after simulating an error/timeout first.
    Idempotency lives in the activity: it checks the payment record before calling this.
    """
    await flaky_call()
    # DB read/write: the activity inserts the payment row after this returns
    amount = sum(i.get("qty", 1) for i in order.get("items", []))
    return {"status": "charged", "amount": amount}


async def order_shipped(order: dict[str, Any]) -> str:
    await flaky_call()
    # DB write: the activity updates the order status to shipped
    return "Shipped"


async def package_prepared(order: dict[str, Any]) -> str:
    await flaky_call()
    # DB write: the activity marks the package prepared
    return "Package ready"


async def carrier_dispatched(order: dict[str, Any]) -> str:
    await flaky_call()
    # DB write: the activity records the carrier dispatch
    return "Dispatched"
