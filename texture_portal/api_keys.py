"""API keys: how integrators' systems authenticate to the `/v1/` API of one workspace.

A key is `tpk_<prefix>_<secret>`. Only the prefix (to recognise a key in lists and logs) and a SHA-256 hash
of the whole key are stored; the key itself is shown once, when it is created.

Why SHA-256 and not a password hash (PBKDF2, Argon2): the secret part is 256 bits from `secrets`, so there is
nothing to brute-force and no dictionary to slow down; a salted, deliberately slow hash protects low-entropy
human passwords and would add tens of milliseconds to every API request. A fast digest of a high-entropy
token is the usual practice for API tokens (GitHub, Stripe), and lets the lookup be one indexed equality.

Scopes: a key carries a list of scope strings, chosen when it is created. `<resource>:read` lets it read a
resource (GET), `<resource>:write` lets it read and change it; `*:read` reads everything (a read-only key) and
`*` is full access (every key made before scopes existed has it). Which scope a route needs is declared by
its view (`scope_resource`, `scope_actions`; texture_portal/api/permissions.py).
"""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from texture_portal.models import WorkspaceScopedModel

KEY_NAMESPACE = "tpk"
PREFIX_LENGTH = 8
# last_used_at is written at most once a minute per key, so busy keys do not turn every GET into a write.
LAST_USED_RESOLUTION_SECONDS = 60


FULL_ACCESS = "*"
READ_ALL = "*:read"
# The API's resources, as the views declare them in `scope_resource` (a view naming another one fails the
# URLconf test): (resource, what its write scope allows).
API_SCOPE_RESOURCES: tuple[tuple[str, str], ...] = (
    ("contacts", _("create and change contacts")),
    ("sites", _("create and change sites")),
    ("devices", _("create and change devices")),
    ("tags", _("set devices' tags")),
    ("imports", _("upload and confirm fleet imports (which write contacts, sites and devices)")),
    ("alerts", _("change alerts' status, snooze them")),
    ("metrics", _("(read only)")),
    ("programs", _("(read only: programs, event strategies, launch checklists)")),
    ("enrollments", _("enroll devices, approve, reject, unenroll")),
    ("dispatch", _("create, schedule and cancel dispatch events and schedules, opt devices out, compile reports")),
    ("commands", _("send commands to devices, one or by tag")),
    ("destinations", _("create, change, delete webhook destinations, rotate their secrets")),
    ("connections", _("create Connect sessions: the links customers follow to connect their own OEM accounts")),
    ("events", _("(read only: the platform event log)")),
)
API_SCOPE_RESOURCE_NAMES = frozenset(resource for resource, _label in API_SCOPE_RESOURCES)


def api_scope_choices() -> list[tuple[str, str]]:
    """Every scope a key may carry, for forms: the two wildcards, then each resource's read and write."""
    choices = [
        (FULL_ACCESS, _("Full access: read and write everything")),
        (READ_ALL, _("Read-only: read everything, change nothing")),
    ]
    for resource, writes in API_SCOPE_RESOURCES:
        choices.append((f"{resource}:read", _("%(resource)s: read") % {"resource": resource}))
        if not str(writes).startswith("("):
            choices.append(
                (f"{resource}:write", _("%(resource)s: write (%(what)s)") % {"resource": resource, "what": writes})
            )
    return choices


def api_scopes_normalize(scopes) -> list[str]:
    """The scopes to store: known ones only (ValueError naming the others), without duplicates or what another
    already grants (`*` alone; no `x:read` beside `x:write` or `*:read`), sorted."""
    known = {value for value, _label in api_scope_choices()}
    chosen = {str(scope).strip() for scope in scopes}
    unknown = sorted(chosen - known)
    if unknown:
        raise ValueError(f"Unknown scope(s): {', '.join(unknown)}.")
    if not chosen:
        raise ValueError("Choose at least one scope (read-only, full access, or per resource).")
    if FULL_ACCESS in chosen:
        return [FULL_ACCESS]
    return sorted(
        scope
        for scope in chosen
        if not (
            scope.endswith(":read") and scope != READ_ALL and (READ_ALL in chosen or f"{scope[:-5]}:write" in chosen)
        )
    )


def api_scopes_grant(scopes, required: str) -> bool:
    """Whether a key with `scopes` may do what needs `required` (`<resource>:read|write`): `*` grants all,
    `*:read` every read, a resource's write scope its read too."""
    if FULL_ACCESS in scopes or required in scopes:
        return True
    resource, _sep, access = required.partition(":")
    return access == "read" and (READ_ALL in scopes or f"{resource}:write" in scopes)


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_generate() -> tuple[str, str]:
    """(prefix, raw key). The prefix is lowercase alphanumerics so it reads well in lists."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    prefix = "".join(secrets.choice(alphabet) for _ in range(PREFIX_LENGTH))
    return prefix, f"{KEY_NAMESPACE}_{prefix}_{secrets.token_urlsafe(32)}"


class ApiKey(WorkspaceScopedModel):
    """A credential for the API of exactly one workspace. Shown once, stored hashed, revocable, expiring.

    Invariants: `key_hash` is unique; a revoked key stays revoked (the row is kept for the audit trail);
    a key with `expires_at` in the past authenticates nothing.
    """

    name = models.CharField(_("name"), max_length=100, help_text=_("What uses this key, e.g. “MDMS sync”."))
    prefix = models.CharField(_("prefix"), max_length=PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True, help_text=_("Empty: never expires."))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)
    revoked_reason = models.CharField(_("revocation reason"), max_length=300, blank=True, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    scopes = models.JSONField(
        _("scopes"),
        default=list,
        help_text=_("What the key may do: “*” full access, “*:read” read-only, or “<resource>:read|write”."),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        constraints = [
            models.CheckConstraint(condition=~Q(prefix=""), name="api_key_prefix_not_blank"),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | ~Q(revoked_reason=""), name="api_key_revoked_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        return f"{KEY_NAMESPACE}_{self.prefix}_…"

    @property
    def scopes_display(self) -> str:
        if self.scopes == [FULL_ACCESS]:
            return "full access"
        if self.scopes == [READ_ALL]:
            return "read-only"
        return ", ".join(self.scopes) or "none"

    def allows(self, required: str) -> bool:
        return api_scopes_grant(self.scopes, required)

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        return "active"
