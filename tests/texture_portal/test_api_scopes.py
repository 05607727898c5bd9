"""API keys' scopes: every /v1 route declares one, a key without it gets 403 naming it, a key with it passes;
the admin chooses them (the engineering page: tests/integrations); existing keys keep full access; the schema shows them."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.permissions import SAFE_METHODS
from rest_framework.test import APIClient
from rest_framework.views import APIView

from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import WorkspaceFactory, staff_user
from texture_portal.api.permissions import scope_required
from texture_portal.api.views import WorkspaceApiMixin
from texture_portal.api_keys import (
    API_SCOPE_RESOURCE_NAMES,
    FULL_ACCESS,
    READ_ALL,
    ApiKey,
    api_scope_choices,
    api_scopes_grant,
    api_scopes_normalize,
)
from texture_portal.choices import Role
from texture_portal.exceptions import ApplicationError
from texture_portal.models import AuditLogEntry
from texture_portal.services import api_key_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]

# The only /v1 routes without a scope: the public schema and docs, and the JSON 404 for every other path.
PUBLIC_ROUTES = {"api-schema", "api-docs", "api-redoc"}
# A value for each path parameter the routes use (no such object needs to exist: scopes are checked first).
PATH_SAMPLES = {"pk": "999999", "slug": "no-such-program", "deviceType": "battery", "action": "set-reserve"}
PATH_SAMPLES["metric"] = "consumption"
PATH_SAMPLES.update(tag="no-such-tag", referenceId="no-such-reference", id="00000000-0000-4000-8000-000000000000")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _sample_path(route: str) -> str:
    """`v1/^devices/(?P<pk>[0-9]+)$` or `v1/devices/<int:pk>/telemetry` → `/v1/devices/999999…`."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: PATH_SAMPLES[m.group(1)], route)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: PATH_SAMPLES[m.group(1)], path)
    return "/" + path.replace("^", "").replace("$", "").replace("\\.", ".")


def v1_operations():
    """(path, METHOD, view class, action) for every route and method under /v1; the public routes and the
    catch-all 404 are left out (asserted separately)."""
    v1 = next(p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "v1/")
    operations = []
    for route, pattern in _walk(v1.url_patterns, "v1/"):
        callback = pattern.callback
        view_class = getattr(callback, "cls", None)
        if pattern.name in PUBLIC_ROUTES or callback.__name__ == "api_not_found":
            continue
        assert view_class is not None and issubclass(view_class, APIView), f"{route} is not an API view"
        assert issubclass(view_class, WorkspaceApiMixin), f"{route}: {view_class.__name__} is not a workspace view"
        actions = getattr(callback, "actions", None)
        if actions:  # a viewset route: the router's method → action map
            methods = {method.upper(): action for method, action in actions.items()}
        else:
            methods = {
                m.upper(): None
                for m in view_class.http_method_names
                if hasattr(view_class, m) and m not in ("options", "head")
            }
        for method, action in methods.items():
            operations.append((_sample_path(route), method, view_class, action))
    return operations


OPERATIONS = v1_operations()
WRITES = [op for op in OPERATIONS if op[1] not in SAFE_METHODS]
READS = [op for op in OPERATIONS if op[1] in SAFE_METHODS]


def _id(op):
    return f"{op[1]} {op[0]}"


def test_the_walk_finds_the_api():
    paths = {(path, method) for path, method, _v, _a in OPERATIONS}
    assert ("/v1/devices", "GET") in paths and ("/v1/commands/battery/set-reserve", "POST") in paths
    assert ("/v1/destinations/999999", "DELETE") in paths and ("/v1/dispatch-events/999999/report", "POST") in paths
    assert len(WRITES) >= 15 and len(READS) >= 30


@pytest.mark.parametrize("op", OPERATIONS, ids=_id)
def test_every_route_and_method_declares_a_scope(op):
    path, method, view_class, action = op
    scope = scope_required(view_class, method, action)
    assert scope, f"{method} {path} ({view_class.__name__}.{action}) has no scope rule: set `scope_resource`"
    resource, _sep, access = scope.partition(":")
    assert resource in API_SCOPE_RESOURCE_NAMES, f"{method} {path}: unknown resource {resource!r}"
    assert access == ("read" if method in SAFE_METHODS else "write"), f"{method} {path} needs {scope}"


def test_a_view_without_a_rule_has_no_scope_and_an_action_rule_wins():
    class Bare(WorkspaceApiMixin, APIView):
        pass

    class Devices(WorkspaceApiMixin, APIView):
        scope_resource = "devices"
        scope_actions = {"command": "commands:write", "post": "tags:write"}

    assert scope_required(Bare, "GET", None) is None
    assert scope_required(Devices, "GET", "list") == "devices:read"
    assert scope_required(Devices, "PATCH", "partial_update") == "devices:write"
    assert scope_required(Devices, "POST", "command") == "commands:write"
    assert scope_required(Devices, "POST", None) == "tags:write"


@pytest.mark.parametrize("op", WRITES, ids=_id)
def test_a_read_only_key_gets_403_naming_the_write_scope(op):
    path, method, view_class, action = op
    scope = scope_required(view_class, method, action)
    client = api_client_for(WorkspaceFactory(), scopes=[READ_ALL])
    error = assert_error(client.generic(method, path, "{}", content_type="application/json"), 403)
    assert error["code"] == "insufficient_scope"
    assert f"“{scope}”" in error["message"]


@pytest.mark.parametrize("op", WRITES, ids=_id)
def test_a_key_with_the_write_scope_passes_and_one_with_another_resources_does_not(op):
    path, method, view_class, action = op
    scope = scope_required(view_class, method, action)
    workspace = WorkspaceFactory()
    allowed = api_client_for(workspace, scopes=[scope])
    response = allowed.generic(method, path, "{}", content_type="application/json")
    assert response.status_code != 403, response.content  # 400/404 for the empty body and the missing object
    other = "contacts:write" if not scope.startswith("contacts:") else "sites:write"
    refused = api_client_for(workspace, scopes=[other])
    assert_error(refused.generic(method, path, "{}", content_type="application/json"), 403, "insufficient_scope")


@pytest.mark.parametrize("op", READS, ids=_id)
def test_reads_pass_with_the_resource_read_scope_or_read_only_and_are_refused_to_another_resource(op):
    path, method, view_class, action = op
    scope = scope_required(view_class, method, action)
    workspace = WorkspaceFactory()
    known = {value for value, _label in api_scope_choices()}
    write = scope.replace(":read", ":write")
    for scopes in ([scope], [READ_ALL], *([[write]] if write in known else [])):
        response = api_client_for(workspace, scopes=scopes).generic(method, path)
        # 400 for a query a route needs (metrics), 404 for the missing object: never 403
        assert response.status_code in (200, 400, 404), (scopes, response.content)
    other = "contacts:read" if not scope.startswith("contacts:") else "sites:read"
    error = assert_error(api_client_for(workspace, scopes=[other]).generic(method, path), 403, "insufficient_scope")
    assert f"“{scope}”" in error["message"]


def test_full_access_is_the_default_for_code_and_grants_everything():
    api_key, _raw = api_key_create(workspace=WorkspaceFactory(), name="sync", actor=None)
    assert api_key.scopes == [FULL_ACCESS] and api_key.scopes_display == "full access"
    assert all(api_scopes_grant([FULL_ACCESS], s) for s, _label in api_scope_choices() if ":" in s)
    entry = AuditLogEntry.objects.get(object_id=str(api_key.pk), reason="API key created")
    assert entry.changes["scopes"] == [FULL_ACCESS]


def test_scopes_are_normalized_and_unknown_ones_refused():
    assert api_scopes_normalize(["contacts:write", "contacts:read", "devices:read"]) == [
        "contacts:write",
        "devices:read",
    ]
    assert api_scopes_normalize([READ_ALL, "devices:read", "commands:write"]) == [READ_ALL, "commands:write"]
    assert api_scopes_normalize(["devices:read", FULL_ACCESS]) == [FULL_ACCESS]
    with pytest.raises(ValueError, match="Unknown scope"):
        api_scopes_normalize(["devices:delete"])
    with pytest.raises(ValueError, match="at least one"):
        api_scopes_normalize([])
    with pytest.raises(ApplicationError, match="metrics:write"):  # a read-only resource has no write scope
        api_key_create(workspace=WorkspaceFactory(), name="x", actor=None, scopes=["metrics:write"])
    assert api_scopes_grant(["commands:write"], "commands:read") and not api_scopes_grant(["*:read"], "x:write")


def test_existing_keys_get_full_access_from_the_migration(migrator):
    old = migrator.apply_initial_migration(("texture_portal", "0006_workspace_timezone"))
    Organization = old.apps.get_model("texture_portal", "Organization")
    Workspace = old.apps.get_model("texture_portal", "Workspace")
    OldApiKey = old.apps.get_model("texture_portal", "ApiKey")
    organization = Organization.objects.create(name="Coop", slug="coop")
    workspace = Workspace.objects.create(organization=organization, name="p", slug="p", kind="production")
    OldApiKey.objects.create(workspace=workspace, name="MDMS", prefix="abcdefgh", key_hash="0" * 64)
    new = migrator.apply_tested_migration(("texture_portal", "0007_apikey_scopes"))
    assert list(new.apps.get_model("texture_portal", "ApiKey").objects.values_list("scopes", flat=True)) == [["*"]]


def test_the_admin_chooses_scopes_at_creation_read_only_first(client):
    workspace = WorkspaceFactory()
    client.force_login(staff_user("eng", workspace, Role.ENGINEERING))
    add = client.get("/admin/texture_portal/apikey/add/").content.decode()
    assert re.search(r'<input[^>]*value="\*:read"[^>]*checked', add) and 'value="contacts:write"' in add
    none = client.post("/admin/texture_portal/apikey/add/", {"workspace": workspace.pk, "name": "CRM"})
    assert "This field is required." in str(none.context["adminform"].form.errors["scopes"])
    response = client.post(
        "/admin/texture_portal/apikey/add/",
        {"workspace": workspace.pk, "name": "CRM", "scopes": ["contacts:write", "contacts:read", "commands:write"]},
        follow=True,
    )
    api_key = ApiKey.objects.get(name="CRM")
    assert api_key.scopes == ["commands:write", "contacts:write"]
    raw = next(w for m in response.context["messages"] for w in str(m).split() if w.startswith("tpk_"))
    api = APIClient(HTTP_TEXTURE_API_KEY=raw)
    assert api.get("/v1/contacts").status_code == 200
    assert_error(api.get("/v1/devices"), 403, "insufficient_scope")
    listing = client.get("/admin/texture_portal/apikey/").content.decode()
    change = client.get(f"/admin/texture_portal/apikey/{api_key.pk}/change/").content.decode()
    assert "commands:write, contacts:write" in listing and "commands:write, contacts:write" in change
    assert 'name="scopes"' not in change  # fixed at creation


def test_the_schema_names_each_operations_scope():
    from tests.texture_portal.test_api_schema_fuzz import generated_schema

    schema = generated_schema()
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) >= 40
    for path, method, op in operations:
        scope = op.get("x-required-scope")
        assert scope and f"**Scope:** `{scope}`" in op["description"], (method, path)
        assert "403" in op["responses"], (method, path)
    by_route = {(p, m): op["x-required-scope"] for p, m, op in operations}
    assert by_route[("/v1/commands/{deviceType}/{action}", "post")] == "commands:write"
    assert by_route[("/v1/contacts", "get")] == "contacts:read"
    assert by_route[("/v1/destinations/{id}", "delete")] == "destinations:write"
