"""API keys: how integrators' systems authenticate to the `/v1/` API of one workspace.

A key is `tpk_<prefix>_<secret>`. Only the prefix (to recognise a key in lists and logs) and a SHA-256 hash
of the whole key are stored; the key itself is shown once, when it is created.

Why SHA-256 and not a password hash (PBKDF2, Argon2): the secret part is 256 bits from `secrets`, so there is
nothing to brute-force and no dictionary to slow down; a salted, deliberately slow hash protects low-entropy
human passwords and would add tens of milliseconds to every API request. A fast digest of a high-entropy
token is the usual practice for API tokens (GitHub, Stripe), and lets the lookup be one indexed equality.
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
