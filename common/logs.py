"""JSON lines on stdout, one object per event, from every process."""

import json
import logging
import sys
from datetime import UTC, datetime
from types import TracebackType

from opentelemetry import trace
from temporalio import activity, workflow

_FIELDS = ("order_id", "workflow_id", "run_id", "step", "attempt", "error", "state", "reason")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "__temporal_error_identifier", None) == "WorkflowTaskFailure":
            return self.format(_task_failure(record))
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "event": record.getMessage(),
            "logger": record.name,
        }
        wf = getattr(record, "temporal_workflow", None)
        if wf:
            line.update(workflow_id=wf.get("workflow_id"), run_id=wf.get("run_id"))
        act = getattr(record, "temporal_activity", None)
        if act:
            line.update(
                workflow_id=act.get("workflow_id"),
                run_id=act.get("workflow_run_id"),
                step=act.get("activity_type"),
                attempt=act.get("attempt"),
            )
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if "order_id" not in line and line.get("workflow_id"):  # the SDK's own lines about an order's workflow
            line["order_id"] = str(line["workflow_id"]).split("-", 1)[-1]
        for name, value in getattr(record, "fields", {}).items():
            line[name] = value
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        if record.exc_info and record.levelno >= logging.ERROR:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _task_failure(record: logging.LogRecord) -> logging.LogRecord:
    """The SDK's WARNING about a failed workflow task, as an ERROR: the task is retried until the workflow's code is
    fixed or its execution times out, so the order is stuck (the gateway's status says so too). The order id comes
    from the workflow id below."""
    err = record.exc_info[1] if record.exc_info else None
    task_failed = logging.makeLogRecord(
        {**record.__dict__, "msg": "workflow_task_failed", "args": (), "levelno": logging.ERROR, "levelname": "ERROR"}
    )
    task_failed.__dict__.pop("__temporal_error_identifier", None)
    task_failed.error = f"{type(err).__name__}: {err}" if err else record.getMessage()
    return task_failed


def setup(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    keep_event_names()
    sys.excepthook = _log_crash


def _log_crash(kind: type[BaseException], err: BaseException, tb: TracebackType | None) -> None:
    """A process that dies of an exception says so in a JSON line too, not in a bare traceback."""
    logging.getLogger("crash").critical(
        "process_crashed", exc_info=(kind, err, tb), extra={"error": f"{kind.__name__}: {err}"}
    )


def keep_event_names() -> None:
    """The Temporal loggers put their context in `extra`; keep the message to the event name."""
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
