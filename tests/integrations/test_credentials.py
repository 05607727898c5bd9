"""Credentials shown as nothing: the portal stores when each credential key changed (staff's edits and token
refreshes alike), and the admin shows which keys are set and when they changed, never any part of a value."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from integrations import selectors, services
from integrations.models import WorkspaceIntegration
from tests.factories import PASSWORD, WorkspaceFactory, staff_user
from tests.integrations.test_services import make_integration
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db

MONDAY, TUESDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC), datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def test_stamps_follow_the_keys_whose_values_changed():
    stamps = {"client_id": "2026-01-01T00:00:00+00:00", "client_secret": "2026-01-01T00:00:00+00:00"}
    before = {"client_id": "app", "client_secret": "old", "refresh_token": "r1"}
    after = {"client_id": "app", "client_secret": "new", "access_token": "a1"}
    assert services.credentials_stamped(stamps, before, after, now=TUESDAY) == {
        "client_id": "2026-01-01T00:00:00+00:00",  # unchanged: its stamp kept
        "client_secret": TUESDAY.isoformat(),  # changed
        "access_token": TUESDAY.isoformat(),  # new
    }  # refresh_token is no longer stored: no stamp


def test_saving_credentials_stamps_only_the_keys_that_changed():
    workspace = WorkspaceFactory()
    with time_machine.travel(MONDAY, tick=False):
        integration = services.workspace_integration_save(
            workspace=workspace,
            channel="solaredge",
            actor=None,
            credentials={"api_key": "key-one", "account": "co-op"},
        )
    assert integration.credentials_changed_at == {"account": MONDAY.isoformat(), "api_key": MONDAY.isoformat()}
    with time_machine.travel(TUESDAY, tick=False):
        services.workspace_integration_save(
            workspace=workspace,
            channel="solaredge",
            actor=None,
            credentials={"api_key": "key-two", "account": "co-op"},
        )
    integration.refresh_from_db()
    assert integration.credentials_changed_at == {"account": MONDAY.isoformat(), "api_key": TUESDAY.isoformat()}
    shown = selectors.integration_credentials_shown(integration=integration)
    assert [(s.key, s.is_set, s.changed_at) for s in shown] == [("account", True, MONDAY), ("api_key", True, TUESDAY)]


def test_a_token_refresh_stamps_the_tokens_it_wrote_and_nothing_else(sim):
    sim.state.add_device("tesla", "TG100000000701", kind="battery")
    with time_machine.travel(MONDAY, tick=False):
        integration = make_integration(WorkspaceFactory(), "tesla")
    assert "access_token" not in integration.credentials
    services.integration_test_connection(integration=integration, actor=None)  # signs in: a new token pair
    stored = WorkspaceIntegration.objects.get(pk=integration.pk)
    stamps = {key: datetime.fromisoformat(value) for key, value in stored.credentials_changed_at.items()}
    assert stamps["client_secret"] == stamps["client_id"] == MONDAY  # staff's, untouched
    assert stamps["access_token"] > MONDAY and "access_token" in stored.credentials
    # the OEM rotated the refresh token: its stamp moved with it
    assert stamps["refresh_token"] > MONDAY


@pytest.fixture
def eng(client, sim):
    workspace = WorkspaceFactory()
    staff_user("eng", workspace, Role.ENGINEERING)
    assert client.login(username="eng", password=PASSWORD)
    return workspace


def test_the_admin_shows_which_keys_are_set_and_when_never_a_value(client, eng, sim):
    sim.state.add_device("tesla", "TG100000000702", kind="battery")
    with time_machine.travel(MONDAY, tick=False):
        integration = make_integration(eng, "tesla")
    services.integration_test_connection(integration=integration, actor=None)
    integration.refresh_from_db()
    WorkspaceIntegration.objects.filter(pk=integration.pk).update(
        credentials={**integration.credentials, "password": ""},  # a key stored empty says so
        credentials_changed_at={k: v for k, v in integration.credentials_changed_at.items() if k != "client_id"},
    )
    integration.refresh_from_db()
    html = client.get(reverse("admin:integrations_workspaceintegration_change", args=[integration.pk])).content
    html = html.decode()
    rows = re.findall(r'<div class="stored-credential">(.*?)</div>', html)
    assert len(rows) == len(integration.credentials) == 5  # client id and secret, the token pair, password
    shown = {}
    for row in rows:
        key, state, changed = re.fullmatch(r"<code>(\w+)</code>: (set|empty) · (.*)", row).groups()
        shown[key] = (state, changed)
    assert set(shown) == set(integration.credentials)
    assert shown["password"][0] == "empty" and shown["client_secret"][0] == "set"
    assert shown["client_id"][1] == "change not recorded"  # stored before changes were recorded
    assert 'datetime="2026-03-02T09:00:00Z"' in shown["client_secret"][1]  # when staff set it
    assert re.fullmatch(r'<time class="local-time" datetime="[^"]+"[^>]*>[^<]+</time>', shown["access_token"][1])
    # nothing of any value anywhere on the page; each row is its key, set/empty and a time (matched whole
    # above), so not even a value's last characters
    for key, value in integration.credentials.items():
        if value:
            assert value not in html, key
    assert "•" not in "".join(rows)
