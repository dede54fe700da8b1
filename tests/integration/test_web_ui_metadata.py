"""What the Temporal Web UI shows of an order: each order and shipment's static summary, each activity's summary,
and the workflow's current details (the built-in metadata query), all sealed by the codec and read back here as the
codec server reads them for the Web UI."""

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata

from orderlife.gateway.v1 import gateway_pb2 as pb
from tests.integration.conftest import new_order_id, start_request, wait_review, wait_terminal

pytestmark = pytest.mark.integration


async def test_an_order_carries_its_summary_activity_summaries_and_current_details(stack):
    order_id = new_order_id("ui")
    stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(order_id))
    await wait_review(stack, order_id)
    order = stack.client.get_workflow_handle(f"order-{order_id}")
    metadata = await order.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details.startswith("**AWAITING_REVIEW**, step **ManualReview**"), metadata
    assert "of the budget left" in metadata.current_details

    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="ui"))
    await wait_terminal(stack, order_id)
    summary = f"Order {order_id}: 1 x ABC, 2 x XYZ; amount 3"
    assert await (await order.describe()).static_summary() == summary
    shipment = await stack.client.get_workflow_handle(f"shipment-{order_id}").describe()
    assert await shipment.static_summary() == f"Shipment of {summary}"

    converter = stack.client.data_converter
    summaries = []
    for handle in (order, stack.client.get_workflow_handle(f"shipment-{order_id}")):
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                [text] = await converter.decode([event.user_metadata.summary], [str])
                summaries.append(text)
    assert f"ChargePayment for order {order_id}" in summaries
    assert f"DispatchCarrier for order {order_id}" in summaries
