"""Shared base models and the tenancy core: Organization → Workspace, memberships, and the audit log."""

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from texture_portal.choices import AuditAction, AuditSource, Role, WorkspaceKind
from texture_portal.timezones import validate_timezone_name, zone_or_utc


class BaseModel(models.Model):
    """Abstract base: every record knows when it was created and last changed (timezone-aware, UTC)."""

    created = models.DateTimeField(_("created"), default=timezone.now, editable=False, db_index=False)
    last_updated = models.DateTimeField(_("last updated"), auto_now=True)

    class Meta:
        abstract = True


class WorkspaceScopedQuerySet(models.QuerySet):
    """Every tenant read goes through one of these two scopes."""

    def for_workspace(self, workspace):
        return self.filter(workspace=workspace)

    def for_user(self, user):
        """Rows of the workspaces the user is a member of; everything for an active superuser.

        One SQL statement: the membership lookup is a subquery, so a changelist stays a handful of queries.
        """
        if user.is_active and user.is_superuser:
            return self.all()
        if not user.is_authenticated or not user.is_active:
            return self.none()
        member_of = WorkspaceMembership.objects.filter(user_id=user.pk).values("workspace_id")
        return self.filter(workspace_id__in=member_of)


class WorkspaceScopedModel(BaseModel):
    """Abstract base of every tenant record: it belongs to exactly one workspace, and never moves.

    Related tenant records must live in the same workspace; `clean()` checks that for every foreign key to
    another scoped model, and services check it before they link anything.
    """

    workspace = models.ForeignKey(
        "texture_portal.Workspace", on_delete=models.PROTECT, related_name="+", verbose_name=_("workspace")
    )

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        abstract = True

    def clean(self):
        super().clean()
        from django.core.exceptions import ValidationError

        from texture_portal.exceptions import WorkspaceMismatch
        from texture_portal.tenancy import check_same_workspace

        try:
            check_same_workspace(self)
        except WorkspaceMismatch as exc:
            raise ValidationError({exc.extra["field"]: exc.message}) from exc


class Organization(BaseModel):
    """A utility, co-op or program operator: the top-level owner of workspaces."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organization")
        verbose_name_plural = _("organizations")

    def __str__(self) -> str:
        return self.name


class Workspace(BaseModel):
    """An isolated environment of an organization (`production`, `sandbox`, …).

    Every tenant record belongs to exactly one workspace; staff see only workspaces they are members of.
    `timezone` is the IANA zone its staff think in: the admin shows and reads times in it (stored in UTC); a
    program may have its own, which its event windows use.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="workspaces", verbose_name=_("organization")
    )
    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=100, unique=True, help_text=_("Unique across the portal."))
    kind = models.CharField(_("kind"), max_length=20, choices=WorkspaceKind.choices)
    timezone = models.CharField(
        _("timezone"),
        max_length=64,
        default="UTC",
        validators=[validate_timezone_name],
        help_text=_(
            "IANA name, e.g. America/Los_Angeles. The admin shows and reads times in it for the workspace's staff "
            "(everything is stored in UTC; the API speaks UTC)."
        ),
    )

    class Meta:
        ordering = ["organization__name", "name"]
        verbose_name = _("workspace")
        verbose_name_plural = _("workspaces")
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="workspace_name_unique_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.organization.name} / {self.name}"

    @property
    def workspace_id(self) -> int:
        """A workspace is its own scope (so permission checks treat it like any scoped object)."""
        return self.pk

    @property
    def zone(self):
        """The workspace's timezone as a tzinfo."""
        return zone_or_utc(self.timezone)


class WorkspaceMembership(BaseModel):
    """A staff user's access to one workspace, with the role they hold there.

    The role decides the user's permissions inside that workspace (see `texture_portal.auth`).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workspace_memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=30, choices=Role.choices)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["workspace__name", "user__username"]
        verbose_name = _("workspace membership")
        verbose_name_plural = _("workspace memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_unique_per_workspace"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} in {self.workspace}"


class AuditLogEntry(models.Model):
    """One change made by someone (a staff user, an API key, a task): who, what, when, and the values.

    Append-only: written by services and the admin base class, never edited. `workspace` is empty only for
    changes outside any tenant (the catalog, users), which only superusers see.
    """

    event_time = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    workspace = models.ForeignKey(
        Workspace,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("workspace"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_label = models.CharField(
        _("actor label"), max_length=200, blank=True, help_text=_("Who acted, kept when the user is deleted.")
    )
    source = models.CharField(_("source"), max_length=20, choices=AuditSource.choices)
    # No `choices` on the column: apps add actions over time, and the label comes from AuditAction.
    action = models.CharField(_("action"), max_length=60, db_index=True)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(_("object id"), max_length=64)
    object_repr = models.CharField(_("object"), max_length=300)
    changes = models.JSONField(
        _("changes"), default=dict, blank=True, help_text=_("{field: [old, new]} or other details.")
    )
    reason = models.TextField(_("reason"), blank=True)
    correlation_id = models.CharField(_("correlation id"), max_length=64, blank=True, db_index=True)

    objects = WorkspaceScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-event_time", "-id"]
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log")
        indexes = [
            models.Index(fields=["content_type", "object_id", "-event_time"], name="audit_target_idx"),
            models.Index(fields=["workspace", "-event_time"], name="audit_workspace_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_time:%Y-%m-%d %H:%M:%S} {self.actor_label or 'system'}: {self.action} {self.object_repr}"

    def get_action_display(self) -> str:
        return str(dict(AuditAction.choices).get(self.action, self.action))


# API keys live in their own module; imported here so Django registers the model with this app.
from texture_portal.api_keys import ApiKey  # noqa: E402, F401
from texture_portal.idempotency import IdempotencyKey  # noqa: E402, F401
