"""The JSON log lines (common/logs.py): a workflow task the SDK failed is an ERROR naming its order."""

import json
import logging

from common.logs import JsonFormatter


def test_a_failed_workflow_task_is_logged_at_error_with_its_order_id():
    try:
        raise RuntimeError("a bug in the review step")
    except RuntimeError as err:
        record = logging.LogRecord(
            "temporalio.worker._workflow_instance",
            logging.WARNING,
            __file__,
            1,
            "Failed activation on workflow OrderWorkflow with ID order-o-1 and run ID r-1",
            (),
            (RuntimeError, err, err.__traceback__),
        )
    record.__dict__["__temporal_error_identifier"] = "WorkflowTaskFailure"
    record.temporal_workflow = {"workflow_id": "order-o-1", "run_id": "r-1"}
    line = json.loads(JsonFormatter("order_service").format(record))
    assert line["level"] == "error" and line["event"] == "workflow_task_failed"
    assert line["order_id"] == "o-1" and line["error"] == "RuntimeError: a bug in the review step"
    assert "Traceback" in line["exception"]
