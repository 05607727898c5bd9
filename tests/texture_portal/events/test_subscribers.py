"""In-process subscribers: one app reacts to another's events through the core, in the same transaction."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import transaction

from tests.factories import WorkspaceFactory
from texture_portal.events import subscribers
from texture_portal.events.services import UnknownEventType, event_emit, event_emit_many, events_emit_many

pytestmark = pytest.mark.django_db


@pytest.fixture
def isolated(monkeypatch):
    monkeypatch.setattr(subscribers, "_subscribers", subscribers.defaultdict(list))


def test_a_subscriber_hears_each_event_of_its_type_inside_the_emitters_transaction(isolated):
    workspace = WorkspaceFactory()
    heard = []

    def listen(**event):
        heard.append(event)

    subscribers.event_subscribe("device.updated", listen)
    subscribers.event_subscribe("device.updated", listen)  # subscribing twice hears once
    with pytest.raises(RuntimeError), transaction.atomic():
        event_emit(workspace_id=workspace.pk, type="site.updated", key="s1", data={"id": 1})
        event_emit(workspace_id=workspace.pk, type="device.updated", key="d1", data={"id": 7})
        assert [e["data"] for e in heard] == [{"id": 7}]  # only its type, at once, before commit
        raise RuntimeError("rolled back: what the subscriber wrote goes with it")
    assert heard[0]["workspace_id"] == workspace.pk and heard[0]["key"] == "d1" and heard[0]["timestamp"]


def test_bulk_emits_refuse_a_type_that_has_subscribers(isolated):
    workspace = WorkspaceFactory()
    subscribers.event_subscribe("device.updated", lambda **event: None)
    with pytest.raises(UnknownEventType, match="in-process subscribers"):
        events_emit_many(workspace_id=workspace.pk, type="device.updated", items=[("k", {})])
    row = {"workspace_id": workspace.pk, "version": 1, "key": "k2", "data": {}, "timestamp": workspace.created}
    with pytest.raises(UnknownEventType, match="in-process subscribers"):
        event_emit_many(events=[{**row, "type": "device.updated"}])
    event_emit_many(events=[{**row, "type": "site.created"}])  # types nobody subscribed to still go in bulk


def test_a_subscription_to_a_type_no_app_registers_stops_start_up(isolated):
    subscribers.event_subscribe("program_event.finished", lambda **event: None)  # a typo
    with pytest.raises(SystemCheckError, match="program_event.finished"):
        call_command("check")


def test_programs_hear_dispatchs_completed_events():
    from programs.services import program_test_event_record

    assert program_test_event_record in subscribers.subscribers_of("program_event.completed")
