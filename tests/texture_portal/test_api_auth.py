"""API keys (header, bearer, unknown, revoked, expired), the one error body, per-key rate limits, schema/docs."""

import uuid
from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, WorkspaceFactory, staff_user
from texture_portal.api_keys import ApiKey, api_key_hash
from texture_portal.choices import Role
from texture_portal.models import AuditLogEntry
from texture_portal.services import api_key_create, api_key_revoke

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


def test_key_is_stored_hashed_with_a_visible_prefix():
    workspace = WorkspaceFactory()
    api_key, raw = api_key_create(workspace=workspace, name="MDMS", actor=None)
    assert raw.startswith(f"tpk_{api_key.prefix}_") and len(raw) > 40
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.key_hash == api_key_hash(raw) and raw not in stored.key_hash
    assert not ApiKey.objects.filter(key_hash=raw).exists()
    assert AuditLogEntry.objects.filter(object_id=str(api_key.pk), reason="API key created").exists()


@pytest.mark.parametrize("header", ["Texture-Api-Key", "Authorization"])
def test_both_headers_authenticate(header):
    device = DeviceFactory()
    client = api_client_for(device.workspace, header=header)
    response = client.get("/v1/devices")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["data"]] == [device.pk]


def test_no_key_unknown_key_and_malformed_bearer_are_401_in_the_error_shape():
    assert_error(APIClient().get("/v1/devices"), 401, "not_authenticated")
    assert_error(APIClient(HTTP_TEXTURE_API_KEY="tpk_nope_nope").get("/v1/devices"), 401, "invalid_api_key")
    assert_error(APIClient(HTTP_AUTHORIZATION="Bearer a b").get("/v1/devices"), 401)
    response = APIClient().get("/v1/devices")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_401():
    client = api_client_for(WorkspaceFactory())
    assert client.get("/v1/devices").status_code == 200
    api_key_revoke(api_key=client.api_key, actor=None, reason="leaked in a log")
    error = assert_error(client.get("/v1/devices"), 401, "api_key_revoked")
    assert "revoked" in error["message"]


def test_expired_key_is_401():
    client = api_client_for(WorkspaceFactory(), expires_at=timezone.now() + timedelta(hours=1))
    assert client.get("/v1/devices").status_code == 200
    ApiKey.objects.filter(pk=client.api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(client.get("/v1/devices"), 401, "api_key_expired")


def test_revoking_needs_a_reason_and_expiry_must_be_in_the_future():
    from texture_portal.exceptions import ApplicationError

    workspace = WorkspaceFactory()
    api_key, _ = api_key_create(workspace=workspace, name="x", actor=None)
    with pytest.raises(ApplicationError):
        api_key_revoke(api_key=api_key, actor=None, reason=" ")
    with pytest.raises(ApplicationError):
        api_key_create(workspace=workspace, name="y", actor=None, expires_at=timezone.now() - timedelta(days=1))


def test_last_used_is_written_at_most_once_a_minute(django_assert_num_queries):
    client = api_client_for(WorkspaceFactory())
    assert ApiKey.objects.get(pk=client.api_key.pk).last_used_at is None
    client.get("/v1/contacts")
    first = ApiKey.objects.get(pk=client.api_key.pk).last_used_at
    assert first is not None
    # key lookup + contacts page: no UPDATE on the second request within the minute
    with django_assert_num_queries(2):
        client.get("/v1/contacts")
    assert ApiKey.objects.get(pk=client.api_key.pk).last_used_at == first


@override_settings(API_RATE_LIMIT="3/minute")
def test_rate_limit_per_key_answers_429_with_retry_after():
    workspace = WorkspaceFactory()
    client, other = api_client_for(workspace, name="a"), api_client_for(workspace, name="b")
    statuses = [client.get("/v1/contacts") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 200]
    assert [r["RateLimit-Remaining"] for r in statuses] == ["2", "1", "0"]
    assert statuses[0]["RateLimit-Limit"] == "3"
    limited = client.get("/v1/contacts")
    assert_error(limited, 429, "throttled")
    assert 1 <= int(limited["Retry-After"]) <= 60
    # another key of the same workspace has its own budget
    assert other.get("/v1/contacts").status_code == 200


@pytest.mark.redis
def test_rate_limit_counts_in_redis_shared_by_all_workers(settings):
    """With REDIS_URL the counter lives in Redis: a second cache client (another worker) sees the same count."""
    from tests.conftest import redis_url

    prefix = f"test-{uuid.uuid4().hex}"  # never clears the database: it may be shared with other processes
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url(),
            "KEY_PREFIX": prefix,
        }
    }
    settings.API_RATE_LIMIT = "2/minute"
    client = api_client_for(WorkspaceFactory())
    assert client.get("/v1/contacts").status_code == 200
    assert client.get("/v1/contacts").status_code == 200
    assert client.get("/v1/contacts").status_code == 429
    import redis

    keys = redis.Redis.from_url(redis_url()).keys(f"{prefix}:*texture:ratelimit:{client.api_key.pk}:*")
    assert len(keys) == 1


def test_the_rate_limit_costs_one_cache_call_per_request_once_the_window_has_begun(monkeypatch):
    from django.core.cache import cache

    calls = []
    for name in ("add", "incr", "set", "get"):
        original = getattr(cache, name)
        monkeypatch.setattr(cache, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    client = api_client_for(WorkspaceFactory())
    assert client.get("/v1/contacts").status_code == 200
    first, calls[:] = list(calls), []
    assert client.get("/v1/contacts").status_code == 200
    assert first == ["incr", "add"] and calls == ["incr"]
    third = client.get("/v1/contacts")
    assert int(third["RateLimit-Remaining"]) == int(third["RateLimit-Limit"]) - 3  # still counting every request


def test_schema_and_docs_are_served_without_a_key():
    schema = APIClient().get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    body = schema.json()
    assert body["openapi"].startswith("3.") and "/v1/devices" in body["paths"]
    assert set(body["components"]["securitySchemes"]) == {"ApiKeyHeader", "BearerAuth"}
    docs = APIClient().get(reverse("api-docs"))
    assert docs.status_code == 200 and b"swagger-ui" in docs.content.lower()
    redoc = APIClient().get(reverse("api-redoc"))
    assert redoc.status_code == 200 and b"redoc" in redoc.content.lower()


def test_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yml"))
    assert "/v1/commands/{deviceType}/{action}" in (tmp_path / "schema.yml").read_text()


def test_engineering_creates_a_key_in_the_admin_and_sees_it_once(client):
    workspace = WorkspaceFactory()
    engineer = staff_user("eng", workspace, Role.ENGINEERING)
    client.force_login(engineer)
    response = client.post(
        reverse("admin:texture_portal_apikey_add"),
        {"workspace": workspace.pk, "name": "MDMS sync", "scopes": ["*"]},
        follow=True,
    )
    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="MDMS sync")
    shown = [str(m) for m in response.context["messages"]]
    raw = next(word for m in shown for word in m.split() if word.startswith("tpk_"))
    assert api_key_hash(raw) == api_key.key_hash
    # the key works, and is never shown again (not on the list, not on the change page)
    assert APIClient(HTTP_TEXTURE_API_KEY=raw).get("/v1/devices").status_code == 200
    change = client.get(reverse("admin:texture_portal_apikey_change", args=[api_key.pk]))
    listing = client.get(reverse("admin:texture_portal_apikey_changelist"))
    for page in (change, listing):
        assert raw.encode() not in page.content and api_key.key_hash.encode() not in page.content
    assert api_key.prefix.encode() in listing.content
    # revoke through the admin action
    client.post(
        reverse("admin:texture_portal_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [api_key.pk]},
    )
    assert APIClient(HTTP_TEXTURE_API_KEY=raw).get("/v1/devices").status_code == 401


@pytest.mark.parametrize("role", [Role.OPS, Role.CUSTOMER_SUPPORT, Role.PROGRAM_LEAD])
def test_other_roles_cannot_see_or_create_keys(client, role):
    workspace = WorkspaceFactory()
    api_key_create(workspace=workspace, name="k", actor=None)
    client.force_login(staff_user("someone", workspace, role))
    assert client.get(reverse("admin:texture_portal_apikey_changelist")).status_code == 403
    assert client.get(reverse("admin:texture_portal_apikey_add")).status_code == 403


def test_unknown_paths_under_v1_answer_in_the_error_shape():
    client = api_client_for(WorkspaceFactory())
    for path in ("/v1/devices/-3", "/v1/destinations/abc/attempts", "/v1/nothing-here", "/v1/destinations/a%0Ab"):
        assert_error(client.get(path), 404, "not_found")
    csrf_checking = api_client_for(WorkspaceFactory(), name="csrf")
    csrf_checking.handler.enforce_csrf_checks = True
    assert_error(csrf_checking.patch("/v1/destinations/x", {}, format="json"), 404, "not_found")
