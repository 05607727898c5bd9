"""Workspace integrations: credentials are encrypted at rest and never logged."""

import pytest
from django.db import connection

from fleet.catalog import MANUFACTURERS
from fleet.models import Manufacturer
from integrations.models import WorkspaceIntegration
from integrations.services import workspace_integration_save
from tests.factories import WorkspaceFactory
from texture_portal.choices import AuditAction
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def test_catalog_migration_seeds_every_oem_of_the_domain():
    slugs = set(Manufacturer.objects.values_list("slug", flat=True))
    assert {"tesla", "franklinwh", "enphase", "solaredge", "emporia", "chargepoint", "smartcar"} <= slugs
    assert len(slugs) == len(MANUFACTURERS)
    solaredge = Manufacturer.objects.get(slug="solaredge")
    assert solaredge.is_read_only and "solaredge-monitoring-api" in solaredge.aliases


def test_every_catalog_channel_names_an_adapter():
    """The fleet's catalog names its channel as text (the fleet knows no adapter); integrations holds it to that."""
    from integrations.adapters.registry import ADAPTERS
    from integrations.choices import IntegrationChannel

    channels = set(Manufacturer.objects.values_list("integration_channel", flat=True))
    assert channels == {channel for _slug, _name, channel, *_ in MANUFACTURERS}
    assert channels <= set(IntegrationChannel.values)
    assert channels <= set(ADAPTERS)


def test_credentials_are_stored_encrypted_and_read_back():
    workspace = WorkspaceFactory()
    integration = workspace_integration_save(
        workspace=workspace,
        channel="franklinwh",
        enabled=True,
        credentials={"cp_key": "cp-123", "ck_key": "very-secret-ck"},
        actor=None,
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM integrations_workspaceintegration WHERE id = %s", [integration.pk])
        stored = cursor.fetchone()[0]
    assert "very-secret-ck" not in stored and stored.startswith("gAAAA")  # a Fernet token
    assert WorkspaceIntegration.objects.get(pk=integration.pk).credentials == {
        "cp_key": "cp-123",
        "ck_key": "very-secret-ck",
    }
    entry = AuditLogEntry.objects.get(action=AuditAction.INTEGRATION_CHANGED)
    assert "very-secret-ck" not in str(entry.changes)
    assert entry.changes["credentials"] == {"keys_changed": ["ck_key", "cp_key"]}


def test_rotating_keys_keeps_old_rows_readable(settings):
    from cryptography.fernet import Fernet

    workspace = WorkspaceFactory()
    integration = workspace_integration_save(workspace=workspace, channel="tesla", credentials={"t": "v"}, actor=None)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    assert WorkspaceIntegration.objects.get(pk=integration.pk).credentials == {"t": "v"}


def test_a_workspace_with_platform_events_cannot_be_deleted():
    """The outbox has no database constraint on its workspace (for write speed): Django's PROTECT holds."""
    from django.db.models import ProtectedError

    from texture_portal.events.services import event_emit

    workspace = WorkspaceFactory()
    event_emit(workspace_id=workspace.pk, type="customer.created", key="customer.created:1", data={"id": 1})
    with pytest.raises(ProtectedError):
        workspace.delete()
