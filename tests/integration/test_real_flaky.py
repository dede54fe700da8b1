"""A batch of orders on the real, unseeded flaky_call(): every one ends in time, and the rows agree."""

import asyncio
from collections import Counter

import pytest

from orderlife.gateway.v1 import gateway_pb2 as pb
from tests.integration.conftest import approve_in_time, new_order_id, start_request, wait_review, wait_terminal
from tests.support import consistency

pytestmark = pytest.mark.integration
BATCH = 20


async def run_one(stack, order_id: str) -> pb.Order:
    await stack.gateway.StartOrder(start_request(order_id))
    seen = await wait_review(stack, order_id)
    if seen.state == pb.ORDER_STATE_AWAITING_REVIEW and not await approve_in_time(stack, order_id, "batch"):
        ended = await wait_terminal(stack, order_id, timeout=30)
        assert ended.state == pb.ORDER_STATE_REJECTED and "review window expired" in ended.reason, ended
        return ended
    return await wait_terminal(stack, order_id, timeout=30)


async def test_batch_with_real_flaky_call_ends_in_time_and_consistent(stack):
    ids = [new_order_id("real") for _ in range(BATCH)]
    orders = await asyncio.gather(*(run_one(stack, i) for i in ids))

    took = {o.order_id: (o.ended_at.ToDatetime() - o.started_at.ToDatetime()).total_seconds() for o in orders}
    print("\nstates:", Counter(pb.OrderState.Name(o.state) for o in orders), "max seconds:", max(took.values()))
    assert all(seconds <= 15 for seconds in took.values()), took
    attempts = sum(s.attempts for o in orders for s in o.steps)
    assert attempts > BATCH * 6, "the real flaky_call() should have forced retries"

    ended = {o.order_id: pb.OrderState.Name(o.state).removeprefix("ORDER_STATE_") for o in orders}
    assert await consistency.problems(stack.admin, stack.client, ended) == []
