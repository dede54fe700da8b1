"""What an order costs Temporal, counted from its histories (the order's and its shipment's), in units that do not
depend on the machine: history events, workflow tasks, timers, visibility writes, and billable actions.

Billable actions follow Temporal Cloud's published rules (docs.temporal.io/cloud/actions), as far as a history shows
them:
- a workflow start: 1; a child workflow start: 2 (the parent's StartChildWorkflowExecutionInitiated here, and the
  child's own WorkflowExecutionStarted, counted with the child's history);
- an activity: 1 when it starts, and 1 for each retry (its last ActivityTaskStarted event carries the attempt);
- local activities: 1 for each workflow task that ran any;
- a timer started, a signal received, an update accepted: 1 each;
- a search-attribute upsert: 1 (TemporalChangeVersion alone is exempt; attributes set at start are free).
Not in a history, so not counted here: queries, rejected updates, describes and visibility lists (the first two are
billed; the last two are not actions). "Structural" actions are all but activity retries: what the design asks of
Temporal whatever the vendors do.

Visibility writes are the rewrites of an order's visibility record between its start and its close (both of which
every workflow pays): the server rewrites the record once for a workflow task whose commands upsert search
attributes or change the memo, however many of them it holds.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

LOCAL_ACTIVITY_MARKER = "core_local_activity"
CHANGE_VERSION = "TemporalChangeVersion"


@dataclass
class Costs:
    events: int = 0
    workflow_tasks: int = 0
    timers: int = 0
    search_attribute_upserts: int = 0
    memo_writes: int = 0
    visibility_writes: int = 0
    structural_actions: int = 0
    activity_retries: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def actions(self) -> int:
        return self.structural_actions + self.activity_retries

    def add(self, other: "Costs") -> None:
        for name, value in asdict(other).items():
            if isinstance(value, int):
                setattr(self, name, getattr(self, name) + value)
        for kind, n in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + n

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "actions": self.actions}


def count(events: Iterable[HistoryEvent]) -> Costs:
    """The costs of one workflow's history."""
    costs = Costs()

    def action(kind: str, n: int = 1) -> None:
        costs.structural_actions += n
        costs.by_kind[kind] = costs.by_kind.get(kind, 0) + n

    tasks_with_local_activities: set[int] = set()
    tasks_rewriting_visibility: set[int] = set()
    last_task_completed = 0
    for event in events:
        costs.events += 1
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            costs.workflow_tasks += 1
            last_task_completed = event.event_id
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            action("workflow start")
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            action("child workflow start")
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            action("activity")
            costs.activity_retries += max(event.activity_task_started_event_attributes.attempt - 1, 0)
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            if event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER:
                tasks_with_local_activities.add(last_task_completed)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            costs.timers += 1
            action("timer")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            action("signal")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            action("update")
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            upserted = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            costs.search_attribute_upserts += 1
            tasks_rewriting_visibility.add(last_task_completed)
            if set(upserted) != {CHANGE_VERSION}:
                action("search-attribute upsert")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            costs.memo_writes += 1
            tasks_rewriting_visibility.add(last_task_completed)
    costs.visibility_writes = len(tasks_rewriting_visibility)
    if tasks_with_local_activities:
        action("local activities (per workflow task)", len(tasks_with_local_activities))
    return costs


def per_order(orders: list[Costs]) -> dict[str, float]:
    """The mean of each figure over the orders (each the sum of an order's histories)."""
    n = max(len(orders), 1)
    total = Costs()
    for costs in orders:
        total.add(costs)
    figures = total.as_dict()
    means = {name: round(value / n, 2) for name, value in figures.items() if isinstance(value, int)}
    means.update({f"actions: {kind}": round(v / n, 2) for kind, v in sorted(total.by_kind.items())})
    means["actions: activity retries"] = round(total.activity_retries / n, 2)
    return means
