"""The registry of event types: each app registers its own; everything that lists types reads the registry."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from tests.factories import WorkspaceFactory
from texture_portal.events import types
from texture_portal.events.models import PlatformEvent
from texture_portal.events.services import UnknownEventType, event_emit, event_emit_many, events_emit_many

# DOMAIN's list (docs/domain.md, "Platform events"), with the app that owns each family
EXPECTED = {
    "fleet": [
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "site.created",
        "site.updated",
        "site.deleted",
        "device.discovered",
        "device.connected",
        "device.disconnected",
        "device.updated",
        "alert.created",
        "alert.updated",
    ],
    "programs": ["enrollment.submitted", "enrollment.approved", "enrollment.rejected", "enrollment.unenrolled"],
    "dispatch": [
        "program_event.scheduled",
        "program_event.started",
        "program_event.completed",
        "program_event.cancelled",
        "program_event.opted_out",
        "program_event.report_compiled",
        "command.succeeded",
        "command.failed",
    ],
    # the events service's own: a test delivery to one destination
    "events": ["webhook.test"],
    # customers' own OEM accounts (Texture Connect)
    "integrations": ["connection.connected", "connection.revoked", "connection.failed"],
}
EVERY_TYPE = sorted(t for family in EXPECTED.values() for t in family)


def test_each_app_registered_the_types_it_owns():
    assert types.event_type_values() == EVERY_TYPE
    for app_label, owned in EXPECTED.items():
        assert {t: types.event_type_owner(t) for t in owned} == dict.fromkeys(owned, app_label)


def test_the_destination_the_api_and_the_schema_list_every_type():
    from drf_spectacular.generators import SchemaGenerator

    from texture_portal.events.api.serializers import DestinationSerializer, PlatformEventSerializer
    from texture_portal.events.filtersets import PlatformEventFilterSet

    assert [value for value, _ in PlatformEvent._meta.get_field("type").choices] == EVERY_TYPE
    assert sorted(DestinationSerializer().fields["eventTypes"].child.choices) == EVERY_TYPE
    assert sorted(PlatformEventSerializer().fields["type"].choices) == EVERY_TYPE
    assert sorted(v for v, _ in PlatformEventFilterSet().form.fields["type"].choices) == EVERY_TYPE

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert schema["components"]["schemas"]["PlatformEventTypeEnum"]["enum"] == EVERY_TYPE
    events_list = schema["paths"]["/v1/events"]["get"]["parameters"]
    type_filter = next(p for p in events_list if p["name"] == "type")
    assert type_filter["schema"]["items"]["enum"] == EVERY_TYPE


def test_a_type_is_owned_by_one_app_only(monkeypatch):
    monkeypatch.setattr(types, "_registered", dict(types._registered))

    class Stolen(models.TextChoices):
        DEVICE_UPDATED = "device.updated", "device.updated"

    with pytest.raises(ImproperlyConfigured, match="device.updated is registered by both fleet and meters"):
        types.event_types_register(Stolen, app_label="meters")
    types.event_types_register(Stolen, app_label="fleet")  # the owner registering again changes nothing
    assert types.event_type_owner("device.updated") == "fleet"


def test_a_new_type_registered_by_an_app_is_listed_and_accepted(monkeypatch):
    monkeypatch.setattr(types, "_registered", dict(types._registered))

    class MeterEventType(models.TextChoices):
        READING_LATE = "meter.reading_late", "meter.reading_late"

    types.event_types_register(MeterEventType, app_label="meters")
    assert "meter.reading_late" in types.event_type_values()
    assert "meter.reading_late" in dict(types.EVENT_TYPE_CHOICES)
    from texture_portal.events.api.serializers import DestinationSerializer

    assert "meter.reading_late" in DestinationSerializer().fields["eventTypes"].child.choices


@pytest.mark.django_db
def test_the_outbox_refuses_a_type_no_app_registered_and_writes_nothing():
    workspace = WorkspaceFactory()
    with pytest.raises(UnknownEventType, match="device.exploded"):
        event_emit(workspace_id=workspace.pk, type="device.exploded", key="k1", data={})
    with pytest.raises(UnknownEventType, match="device.exploded"):
        events_emit_many(workspace_id=workspace.pk, type="device.exploded", items=[("k2", {})])
    row = {"workspace_id": workspace.pk, "version": 1, "key": "k3", "data": {}, "timestamp": workspace.created}
    with pytest.raises(UnknownEventType, match="device.exploded"):
        event_emit_many(events=[{**row, "type": "device.updated"}, {**row, "key": "k4", "type": "device.exploded"}])
    assert not PlatformEvent.objects.exists()
