"""Writes of integrations: enabling an OEM channel for a workspace and storing its credentials."""

from django.db import transaction

from integrations.choices import IntegrationStatus
from integrations.models import WorkspaceIntegration
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource


def mask_secret(value) -> str:
    """What staff may see of a stored credential: its last four characters at most."""
    text = str(value)
    return "••••" + text[-4:] if len(text) > 8 else "••••"


def credentials_summary(credentials: dict) -> dict:
    return {key: mask_secret(value) for key, value in sorted(credentials.items())}


@transaction.atomic
def workspace_integration_save(
    *,
    workspace,
    channel: str,
    actor,
    enabled: bool | None = None,
    credentials: dict | None = None,
    source: AuditSource | str = AuditSource.SERVICE,
) -> WorkspaceIntegration:
    """Create or update the workspace's integration for `channel`. `credentials` replaces the stored ones
    when given (never logged: the audit row lists only which keys changed)."""
    integration, created = WorkspaceIntegration.objects.select_for_update().get_or_create(
        workspace=workspace, channel=channel
    )
    changes = {}
    update_fields = []
    if enabled is not None and integration.enabled != enabled:
        changes["enabled"] = [integration.enabled, enabled]
        integration.enabled = enabled
        update_fields.append("enabled")
    if credentials is not None and credentials != integration.credentials:
        changed_keys = sorted(
            set(credentials) ^ set(integration.credentials)
            | {k for k in credentials if integration.credentials.get(k) != credentials[k]}
        )
        changes["credentials"] = {"keys_changed": changed_keys}
        integration.credentials = credentials
        integration.status = IntegrationStatus.NOT_CONFIGURED
        integration.last_error = ""
        update_fields += ["credentials", "status", "last_error"]
    if update_fields:
        integration.full_clean()
        integration.save(update_fields=[*update_fields, "last_updated"])
    if created or changes:
        audit_record(
            actor=actor,
            action=AuditAction.INTEGRATION_CHANGED,
            target=integration,
            source=source,
            changes=changes,
        )
    return integration
