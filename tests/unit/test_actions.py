"""Counting an order's cost from its history: events, workflow tasks, timers, visibility writes and billable
actions by Temporal Cloud's rules (lab/actions.py)."""

from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    MarkerRecordedEventAttributes,
    UpsertWorkflowSearchAttributesEventAttributes,
)

from lab import actions

E = EventType


def history(*kinds, **attributes) -> list[HistoryEvent]:
    """Events of the given kinds, numbered from 1; attributes[str(n)] sets the n-th event's attributes."""
    events = []
    for n, kind in enumerate(kinds, start=1):
        event = HistoryEvent(event_id=n, event_type=kind)
        for name, value in attributes.get(str(n), {}).items():
            getattr(event, name).CopyFrom(value)
        events.append(event)
    return events


def upsert(*names: str) -> UpsertWorkflowSearchAttributesEventAttributes:
    return UpsertWorkflowSearchAttributesEventAttributes(
        search_attributes=SearchAttributes(indexed_fields={name: Payload(data=b'"x"') for name in names})
    )


def local_activity() -> MarkerRecordedEventAttributes:
    return MarkerRecordedEventAttributes(marker_name="core_local_activity")


def test_each_kind_is_counted_by_the_published_rules():
    events = history(
        E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,  # 1: start
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,  # 4
        E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        E.EVENT_TYPE_TIMER_STARTED,  # a timer
        E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,  # 7: an upsert
        E.EVENT_TYPE_ACTIVITY_TASK_STARTED,  # 8: its third attempt: one activity, two retries
        E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,  # a signal
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,  # 13
        E.EVENT_TYPE_MARKER_RECORDED,  # 14, 15: two local activities in one task: one action
        E.EVENT_TYPE_MARKER_RECORDED,
        E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,  # a memo write: no action, a visibility write
        E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,  # 17: TemporalChangeVersion only: exempt
        E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,  # the parent's half of a child start
        E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,  # an update
        E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        **{
            "7": {"upsert_workflow_search_attributes_event_attributes": upsert("OrderState")},
            "8": {"activity_task_started_event_attributes": ActivityTaskStartedEventAttributes(attempt=3)},
            "14": {"marker_recorded_event_attributes": local_activity()},
            "15": {"marker_recorded_event_attributes": local_activity()},
            "17": {"upsert_workflow_search_attributes_event_attributes": upsert("TemporalChangeVersion")},
        },
    )
    costs = actions.count(events)
    assert (costs.events, costs.workflow_tasks, costs.timers) == (20, 2, 1)
    # The upsert at 7 is one workflow task's rewrite; the memo write and the upsert at 16-17 are another's.
    assert (costs.search_attribute_upserts, costs.memo_writes, costs.visibility_writes) == (2, 1, 2)
    assert costs.by_kind == {
        "workflow start": 1,
        "activity": 1,
        "timer": 1,
        "search-attribute upsert": 1,
        "signal": 1,
        "child workflow start": 1,
        "update": 1,
        "local activities (per workflow task)": 1,
    }
    assert (costs.structural_actions, costs.activity_retries, costs.actions) == (8, 2, 10)


def test_an_order_is_the_sum_of_its_histories_and_the_figures_are_means():
    parent = actions.count(history(E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, E.EVENT_TYPE_TIMER_STARTED))
    child = actions.count(history(E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED))
    order = actions.Costs()
    order.add(parent)
    order.add(child)
    means = actions.per_order([order, actions.count(history(E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED))])
    assert means["events"] == 2.0 and means["timers"] == 0.5 and means["structural_actions"] == 2.0
    assert means["actions: workflow start"] == 1.5
