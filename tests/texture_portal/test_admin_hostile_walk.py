"""Every admin URL, walked with hostile input as a superuser and as a role user: no 5xx, no traceback.

What is walked, for every registered ModelAdmin: its changelist (plain, with hostile values for each of its
list filters' parameters and each of its API FilterSet's names, with a hostile search), its change page with odd
ids (`abc`, `1.5`, NUL, 30 digits, an id of another workspace), its add page (GET and an empty POST), history and
delete pages, every action (POSTed with hostile `_selected_action` values), its custom URLs (customer page,
timelines, reports, the engineering page, search…: with a real id, odd ids and hostile query values), and the
autocomplete of every `autocomplete_fields` with hostile terms. Runs on SQLite and (marked) on PostgreSQL, where
NUL bytes and huge numbers fail differently.
"""

import re

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import URLPattern, URLResolver

from tests.api_scene import build_scene
from tests.factories import PASSWORD, staff_user
from texture_portal.choices import Role

NUL = "\x00"
ODD_IDS = ["abc", "1.5", "%00", "9" * 30, "-1", "0x10"]
FILTER_VALUES = ["bogus", "9" * 30, "1" + NUL, "x" * 3000]
SEARCH_TERMS = ["x" * 100_000, "x" * 1500, "a" + NUL + "b", "%_'\"\\;--ü"]
STANDARD_VIEWS = ("changelist", "add", "history", "delete", "change")


def _fail_on(failures: list[str], client: Client, method: str, url: str, data=None) -> None:
    url_and_names = f"{url[:120]!r} {sorted(data or {})}"  # the parameters' names (not their huge values)
    try:
        response = getattr(client, method)(url, data or {})
    except Exception as exc:  # the test client re-raises the view's exception: that is a 500
        failures.append(f"{method.upper()} {url_and_names}: {type(exc).__name__}: {str(exc)[:160]}")
        return
    if response.status_code >= 500:
        failures.append(f"{method.upper()} {url_and_names}: {response.status_code}")


def _scene():
    from tests.factories import two_tenants

    tenants = two_tenants()
    scene_a = build_scene(tenants.a, serial_prefix="SA", tag="feeder:a")
    scene_b = build_scene(tenants.b, serial_prefix="SB", tag="feeder:b")
    lead = staff_user("lead", tenants.a, Role.PROGRAM_LEAD)
    return tenants, scene_a, scene_b, lead


def _own_and_other(model, workspace_a, workspace_b) -> tuple[str | None, str | None]:
    manager = model._default_manager
    if model._meta.model_name == "workspace":
        return str(workspace_a.pk), str(workspace_b.pk)
    try:
        model._meta.get_field("workspace")
    except Exception:
        first = manager.order_by("pk").first()
        return (str(first.pk) if first else None), None
    own = manager.filter(workspace=workspace_a).order_by("pk").first()
    other = manager.filter(workspace=workspace_b).order_by("pk").first()
    return (str(own.pk) if own else None), (str(other.pk) if other else None)


def _custom_patterns(model_admin) -> list[URLPattern]:
    standard = {f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_{view}" for view in STANDARD_VIEWS}
    found = []
    for pattern in model_admin.get_urls():
        if isinstance(pattern, URLPattern) and pattern.name not in standard and pattern.name:
            found.append(pattern)
        elif isinstance(pattern, URLResolver):
            found.extend(p for p in pattern.url_patterns if isinstance(p, URLPattern))
    return [p for p in found if "<path:object_id>" not in str(p.pattern) and "change" not in (p.name or "")[-7:]]


def _fill(route: str, value: str) -> str:
    return re.sub(r"<(?:\w+:)?\w+>", value, route)


def _walk_model_admin(client, failures, model, model_admin, own, other):
    base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
    # changelist: plain, then each filter parameter it shows, then the API's names, then hostile searches
    try:
        response = client.get(base)
    except Exception as exc:
        failures.append(f"GET {base}: {type(exc).__name__}: {str(exc)[:200]}")
        return
    if response.status_code >= 500:
        failures.append(f"GET {base}: {response.status_code}")
    params: set[str] = set()
    if response.status_code == 200 and response.context and "cl" in response.context:
        for spec in response.context["cl"].filter_specs:
            params.update(spec.expected_parameters())
    params.update(getattr(getattr(model_admin, "filterset_class", None), "base_filters", {}) or {})
    for param in sorted(params):
        for value in FILTER_VALUES:
            _fail_on(failures, client, "get", base, {param: value})
    for term in SEARCH_TERMS:
        _fail_on(failures, client, "get", base, {"q": term})
    _fail_on(failures, client, "get", base, {"o": "99.-x"})
    _fail_on(failures, client, "get", base, {"p": "9" * 30})
    # objects: odd ids, another workspace's id, this workspace's id
    for object_id in [*ODD_IDS, other, own]:
        if object_id is None:
            continue
        for view in ("change", "history", "delete"):
            _fail_on(failures, client, "get", f"{base}{object_id}/{view}/")
        if object_id != own:
            _fail_on(failures, client, "post", f"{base}{object_id}/change/")
            _fail_on(failures, client, "post", f"{base}{object_id}/delete/", {"post": "yes"})
    _fail_on(failures, client, "get", f"{base}add/")
    _fail_on(failures, client, "post", f"{base}add/")
    # actions: hostile selections (an id of another workspace among them)
    for action_name in list(model_admin.get_actions(_request_of(client)) or []):
        for selected in [["abc", "9" * 30, "1.5"], ["1" + NUL], [other or "2"]]:
            _fail_on(
                failures,
                client,
                "post",
                base,
                {"action": action_name, ACTION_CHECKBOX_NAME: selected, "index": "0"},
            )
    _fail_on(failures, client, "post", base, {"action": "no_such_action", ACTION_CHECKBOX_NAME: ["1"], "index": "0"})
    # custom pages: a real id, odd ids, hostile query values
    for pattern in _custom_patterns(model_admin):
        route = str(pattern.pattern)
        has_id = "<" in route
        for object_id in [own, other, "9" * 30, "0"] if has_id else [None]:
            if has_id and object_id is None:
                continue
            url = base + _fill(route, object_id or "")
            _fail_on(failures, client, "get", url)
            for name in ("q", "until", "program", "csv", "page"):
                for value in ("bogus", "9" * 30):
                    _fail_on(failures, client, "get", url, {name: value})
            if object_id != own:
                _fail_on(failures, client, "post", url)


def _request_of(client):
    """A request carrying the logged-in user (to ask a ModelAdmin which actions it offers)."""
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    user_id = client.session.get("_auth_user_id")
    request.user = get_user_model().objects.get(pk=user_id)
    return request


def _walk_autocomplete(client, failures):
    for model, model_admin in admin.site._registry.items():
        for field_name in model_admin.autocomplete_fields:
            for term in [*SEARCH_TERMS, "9" * 30]:
                _fail_on(
                    failures,
                    client,
                    "get",
                    "/admin/autocomplete/",
                    {
                        "app_label": model._meta.app_label,
                        "model_name": model._meta.model_name,
                        "field_name": field_name,
                        "term": term,
                    },
                )
    for params in (
        {"app_label": "fleet" + NUL, "model_name": "device", "field_name": "site", "term": "a"},
        {"app_label": "fleet", "model_name": "device", "field_name": "nope", "term": "a"},
        {"app_label": "x" * 5000, "model_name": "y", "field_name": "z", "term": "a"},
        {"app_label": "fleet", "model_name": "device", "field_name": "site", "term": "a", "page": "9" * 30},
    ):
        _fail_on(failures, client, "get", "/admin/autocomplete/", params)


def _walk_site(client, failures):
    for url in ("/admin/", "/admin/fleet/", "/admin/nope/", "/admin/r/9999999999999999999999/1/", "/admin/r/1/abc/"):
        _fail_on(failures, client, "get", url)
    _fail_on(failures, client, "get", "/admin/", {"q": "x" * 100_000})
    _fail_on(failures, client, "get", "/admin/", {"tz": "Mars/Olympus" + NUL})


def walk_everything(client: Client, workspace_a, workspace_b) -> list[str]:
    failures: list[str] = []
    for model, model_admin in admin.site._registry.items():
        own, other = _own_and_other(model, workspace_a, workspace_b)
        _walk_model_admin(client, failures, model, model_admin, own, other)
    _walk_autocomplete(client, failures)
    _walk_site(client, failures)
    return failures


def _login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _walk_as_everyone():
    tenants, _scene_a, _scene_b, lead = _scene()
    failures = []
    for user in (tenants.root, lead):
        failures += [f"[{user.username}] {line}" for line in walk_everything(_login(user), tenants.a, tenants.b)]
    distinct = list(dict.fromkeys(failures))
    assert not failures, f"{len(failures)} failing admin requests:\n" + "\n".join(distinct[:80])


@pytest.mark.django_db
def test_the_admin_answers_hostile_input_without_a_server_error():
    _walk_as_everyone()


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_admin_answers_hostile_input_without_a_server_error_on_postgresql():
    _walk_as_everyone()
