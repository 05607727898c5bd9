"""Writes of the tenancy core: organizations, workspaces, memberships."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.text import slugify

from texture_portal.audit import audit_record
from texture_portal.auth import forget_cached_permissions
from texture_portal.choices import AuditAction, AuditSource, Role, WorkspaceKind
from texture_portal.models import Organization, Workspace, WorkspaceMembership

User = get_user_model()


@transaction.atomic
def organization_create(*, name: str, slug: str | None = None) -> Organization:
    organization = Organization(name=name, slug=slug or slugify(name))
    organization.full_clean()
    organization.save()
    return organization


@transaction.atomic
def workspace_create(
    *,
    organization: Organization,
    name: str,
    kind: WorkspaceKind | str,
    slug: str | None = None,
    timezone: str = "UTC",
    actor=None,
    source: AuditSource | str = AuditSource.SERVICE,
) -> Workspace:
    """Create a workspace of `organization` whose staff read times in `timezone` (an IANA name). Audited."""
    workspace = Workspace(
        organization=organization,
        name=name,
        kind=kind,
        slug=slug or slugify(f"{organization.slug}-{name}"),
        timezone=timezone,
    )
    workspace.full_clean()
    workspace.save()
    audit_record(actor=actor, action=AuditAction.WORKSPACE_CREATED, target=workspace, source=source)
    return workspace


@transaction.atomic
def membership_grant(
    *,
    user,
    workspace: Workspace,
    role: Role | str,
    actor=None,
    source: AuditSource | str = AuditSource.SERVICE,
) -> WorkspaceMembership:
    """Give `user` `role` in `workspace` (replacing any role they held there). Makes the user staff so they
    can sign in to the admin. Audited on the workspace."""
    role = Role(role)
    membership, created = WorkspaceMembership.objects.select_for_update().get_or_create(
        user=user, workspace=workspace, defaults={"role": role}
    )
    previous = None if created else membership.role
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role", "last_updated"])
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    forget_cached_permissions(user)
    if created or previous != role:
        audit_record(
            actor=actor,
            action=AuditAction.MEMBERSHIP_GRANTED,
            target=workspace,
            source=source,
            changes={"user": user.get_username(), "role": [previous, str(role)]},
        )
    return membership


@transaction.atomic
def membership_revoke(
    *, user, workspace: Workspace, actor=None, source: AuditSource | str = AuditSource.SERVICE
) -> None:
    """Remove `user` from `workspace`. Audited on the workspace; a no-op if they were not a member."""
    deleted, _ = WorkspaceMembership.objects.filter(user=user, workspace=workspace).delete()
    forget_cached_permissions(user)
    if deleted:
        audit_record(
            actor=actor,
            action=AuditAction.MEMBERSHIP_REVOKED,
            target=workspace,
            source=source,
            changes={"user": user.get_username()},
        )


# -- API keys ------------------------------------------------------------------------------------------------


@transaction.atomic
def api_key_create(
    *,
    workspace: Workspace,
    name: str,
    actor,
    expires_at=None,
    scopes=("*",),
    source: AuditSource | str = AuditSource.SERVICE,
):
    """Create a key for `workspace` with `scopes` (texture_portal/api_keys.py; the forms make people choose,
    code that leaves them out gets the full access every key had before scopes). Returns (ApiKey, raw key):
    the raw key exists only in this return value, so the caller shows it once and forgets it."""
    from django.utils import timezone

    from texture_portal.api_keys import ApiKey, api_key_generate, api_key_hash, api_scopes_normalize
    from texture_portal.exceptions import ApplicationError

    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("The expiry date must be in the future.")
    try:
        scopes = api_scopes_normalize(scopes)
    except ValueError as exc:
        raise ApplicationError(str(exc)) from exc
    prefix, raw = api_key_generate()
    while ApiKey.objects.filter(prefix=prefix).exists():  # 32^8 prefixes: a clash is rare, but cheap to avoid
        prefix, raw = api_key_generate()
    api_key = ApiKey(
        workspace=workspace,
        name=name,
        prefix=prefix,
        key_hash=api_key_hash(raw),
        expires_at=expires_at,
        scopes=scopes,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    api_key.full_clean()
    api_key.save()
    audit_record(
        actor=actor,
        action=AuditAction.OBJECT_CREATED,
        target=api_key,
        source=source,
        changes={"prefix": api_key.prefix, "expires_at": expires_at, "scopes": scopes},
        reason="API key created",
    )
    return api_key, raw


@transaction.atomic
def api_key_revoke(*, api_key, actor, reason: str, source: AuditSource | str = AuditSource.SERVICE):
    """Revoke a key for good (idempotent: revoking a revoked key changes nothing)."""
    from django.utils import timezone

    from texture_portal.api_keys import ApiKey
    from texture_portal.exceptions import ApplicationError

    if not reason.strip():
        raise ApplicationError("Revoking an API key needs a reason.")
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.revoked_reason = reason.strip()[:300]
        locked.save(update_fields=["revoked_at", "revoked_reason", "last_updated"])
        audit_record(
            actor=actor,
            action=AuditAction.OBJECT_CHANGED,
            target=locked,
            source=source,
            changes={"revoked_at": [None, locked.revoked_at]},
            reason=f"API key revoked: {locked.revoked_reason}",
        )
    api_key.refresh_from_db()
    return api_key
