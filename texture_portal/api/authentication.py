"""API-key authentication: `Texture-Api-Key: <key>` (or `Authorization: Bearer <key>`) → one workspace."""

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from texture_portal.api_keys import LAST_USED_RESOLUTION_SECONDS, ApiKey, api_key_hash
from texture_portal.selectors import api_key_by_hash

API_KEY_HEADER = "Texture-Api-Key"


class ApiKeyPrincipal:
    """`request.user` for an API request: the key acting in its workspace. It is not a Django user, so services
    write the audit actor label from `get_username()` and leave the user foreign key empty."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.workspace_id = api_key.workspace_id

    def get_username(self) -> str:
        return f"API key {self.api_key.display_prefix} ({self.api_key.name})"

    def __str__(self) -> str:
        return self.get_username()

    def has_perm(self, perm, obj=None) -> bool:  # staff permissions never apply to keys
        return False


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """One indexed lookup by hash per request; `last_used_at` is written at most once a minute."""

    def authenticate(self, request):
        raw = request.META.get("HTTP_TEXTURE_API_KEY", "").strip()
        if not raw:
            parts = authentication.get_authorization_header(request).split()
            if not parts or parts[0].lower() != b"bearer":
                return None
            if len(parts) != 2:
                raise exceptions.AuthenticationFailed("Malformed Authorization header: use “Bearer <key>”.")
            try:
                raw = parts[1].decode()
            except UnicodeDecodeError as exc:
                raise exceptions.AuthenticationFailed("Malformed API key.") from exc
        api_key = api_key_by_hash(api_key_hash(raw))
        if api_key is None:
            raise exceptions.AuthenticationFailed("Unknown API key.", code="invalid_api_key")
        now = timezone.now()
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.", code="api_key_revoked")
        if api_key.expires_at is not None and api_key.expires_at <= now:
            raise exceptions.AuthenticationFailed("This API key has expired.", code="api_key_expired")
        last = api_key.last_used_at
        if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION_SECONDS:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request):
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403 when no key was sent.
        return 'Bearer realm="texture-portal"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "texture_portal.api.authentication.ApiKeyAuthentication"
    name = ["ApiKeyHeader", "BearerAuth"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": API_KEY_HEADER},
            {"type": "http", "scheme": "bearer"},
        ]
