"""The events service took over the outbox, destinations and delivery attempts from `integrations` without
touching their data: migrated forward and back on a database that holds events, destinations and attempts
(django-test-migrations runs the real migrations; nothing is mocked)."""

from datetime import UTC, datetime

import pytest

BEFORE = ("integrations", "0010_platform_event_workspace_unconstrained")
AFTER = ("events", "0002_content_types_roles_type_check")
MOVED = ("platformevent", "destination", "deliveryattempt")


def _rows(apps, app_label: str) -> dict:
    """What the three tables hold, by model, as comparable values."""
    return {
        "events": list(
            apps.get_model(app_label, "PlatformEvent")
            .objects.order_by("pk")
            .values_list("pk", "workspace_id", "type", "version", "key", "timestamp", "data")
        ),
        "destinations": list(
            apps.get_model(app_label, "Destination")
            .objects.order_by("pk")
            .values_list("pk", "workspace_id", "label", "url", "event_types", "is_active", "consecutive_failures")
        ),
        "attempts": list(
            apps.get_model(app_label, "DeliveryAttempt")
            .objects.order_by("pk")
            .values_list("pk", "destination_id", "event_id", "attempt", "status", "response_status", "error")
        ),
    }


def _content_types(apps) -> dict[str, tuple[int, str]]:
    ContentType = apps.get_model("contenttypes", "ContentType")
    return {ct.model: (ct.pk, ct.app_label) for ct in ContentType.objects.filter(model__in=MOVED)}


def _engineering_permissions(apps) -> set[tuple[int, str, str]]:
    Group = apps.get_model("auth", "Group")
    perms = Group.objects.get(name="Engineering").permissions.filter(content_type__model__in=MOVED)
    return set(perms.values_list("pk", "content_type__app_label", "codename"))


# What Engineering held of these models before the move (today's role table, run by the old migrations in a
# fresh database, grants the events service's names instead, which do not exist yet at that point).
ENGINEERING_BEFORE = [f"{action}_destination" for action in ("view", "add", "change", "delete")] + [
    "view_platformevent",
    "view_deliveryattempt",
]


def _seed(apps) -> int:
    """A workspace with two events, a destination, three attempts, an audit row about the destination, and
    Engineering's permissions on them, as a database of before the move holds them."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Group.objects.get(name="Engineering").permissions.add(
        *Permission.objects.filter(content_type__app_label="integrations", codename__in=ENGINEERING_BEFORE)
    )
    Organization = apps.get_model("texture_portal", "Organization")
    Workspace = apps.get_model("texture_portal", "Workspace")
    ContentType = apps.get_model("contenttypes", "ContentType")
    AuditLogEntry = apps.get_model("texture_portal", "AuditLogEntry")
    PlatformEvent = apps.get_model("integrations", "PlatformEvent")
    Destination = apps.get_model("integrations", "Destination")
    DeliveryAttempt = apps.get_model("integrations", "DeliveryAttempt")

    organization = Organization.objects.create(name="Before the move", slug="before-the-move")
    workspace = Workspace.objects.create(organization=organization, name="Production", slug="before-production")
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    events = [
        PlatformEvent.objects.create(
            workspace=workspace, type="device.updated", key="device.updated:1:x", timestamp=at, data={"id": 1}
        ),
        PlatformEvent.objects.create(
            workspace=workspace, type="customer.created", key="customer.created:7", timestamp=at, data={"id": 7}
        ),
    ]
    destination = Destination.objects.create(
        workspace=workspace,
        label="Utility CRM",
        url="https://crm.example.com/hooks",
        signing_secret={"secret": "whsec_before"},
        event_types=["device.updated"],
        consecutive_failures=2,
    )
    for attempt, status, code in ((1, "failed", 500), (2, "succeeded", 200)):
        DeliveryAttempt.objects.create(
            workspace=workspace, destination=destination, event=events[0], attempt=attempt, status=status,
            response_status=code, error="HTTP 500" if code == 500 else "",
        )  # fmt: skip
    DeliveryAttempt.objects.create(
        workspace=workspace, destination=destination, event=events[1], attempt=1, status="in_flight"
    )
    AuditLogEntry.objects.create(
        workspace=workspace,
        source="api",
        action="object.created",
        content_type=ContentType.objects.get(app_label="integrations", model="destination"),
        object_id=str(destination.pk),
        object_repr="Utility CRM",
    )
    return destination.pk


@pytest.mark.django_db(transaction=True)
def test_the_move_keeps_every_row_permission_and_audit_link_and_reverses(migrator):
    old = migrator.apply_initial_migration(BEFORE)
    destination_id = _seed(old.apps)
    rows_before = _rows(old.apps, "integrations")
    types_before = _content_types(old.apps)
    permissions_before = _engineering_permissions(old.apps)
    assert {app for _pk, app in types_before.values()} == {"integrations"}
    assert {(app, code) for _pk, app, code in permissions_before} == {("integrations", c) for c in ENGINEERING_BEFORE}

    new = migrator.apply_tested_migration(AFTER)
    # the same rows, now the events service's
    assert _rows(new.apps, "events") == rows_before
    # the same content types (ids kept), relabelled: the roles keep the very same permission rows
    assert _content_types(new.apps) == {model: (pk, "events") for model, (pk, _app) in types_before.items()}
    assert _engineering_permissions(new.apps) == {(pk, "events", code) for pk, _app, code in permissions_before}
    audit = new.apps.get_model("texture_portal", "AuditLogEntry").objects.get(object_id=str(destination_id))
    assert (audit.content_type.app_label, audit.content_type.model) == ("events", "destination")
    # the type list belongs to the apps now: the table no longer refuses a type the old check did not know
    PlatformEvent = new.apps.get_model("events", "PlatformEvent")
    late = PlatformEvent.objects.create(workspace_id=rows_before["events"][0][1], type="meter.reading_late", key="k")

    # backwards (after removing the one row the old check would refuse)
    late.delete()
    back = migrator.apply_tested_migration([BEFORE, ("events", None)])
    assert _rows(back.apps, "integrations") == rows_before
    assert _content_types(back.apps) == types_before
    assert _engineering_permissions(back.apps) == permissions_before
