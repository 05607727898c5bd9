"""Texture Connect through the hosted page (Django's test client) against the OEM simulator over HTTP: a
customer connects their own Smartcar account; tampered and expired links, a `state` mismatch, a denied consent,
a reused code and a replayed callback each end on a clear page with nothing half linked; the customer's tokens
rotate under the connection's lock; a revoked grant revokes the connection and takes its devices offline."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.db import connection as db_connection
from django.utils import timezone

from fleet.choices import DeviceState
from fleet.models import Contact, Device, TelemetryReading
from integrations import selectors
from integrations.choices import ConnectionStatus, ConnectSessionStatus
from integrations.connect import services as connect
from integrations.models import ConnectSession, CustomerConnection
from integrations.simulator import oauth as sim_oauth
from integrations.simulator.common import expire_tokens
from tests.factories import WorkspaceFactory
from tests.integrations.test_services import make_integration
from texture_portal.events.models import PlatformEvent

pytestmark = pytest.mark.django_db

DRIVER, DRIVER_PASSWORD = "driver@example.com", "driver-password"
VIN = "5YJ3E1EA7KF000123"
DETAILS = {
    "first_name": "Dana",
    "last_name": "Reyes",
    "email": "dana@example.com",
    "phone": "",
    "street_one": "12 Juniper Ave",
    "street_two": "",
    "city": "Bend",
    "state": "OR",
    "postal_code": "97701",
    "country": "US",
}


@pytest.fixture
def driver(sim):
    """A driver's own Smartcar account with one vehicle; the workspace app's account has another."""
    sim_oauth.customer_add(sim.state, "smartcar", DRIVER, DRIVER_PASSWORD)
    sim.state.add_device("smartcar", VIN, kind="vehicle", account=DRIVER, soc=55.0)
    sim.state.add_device("smartcar", "1FTFW1E50NFA00999", kind="vehicle")  # the app's own, not the driver's
    return sim


@pytest.fixture
def workspace(reference_data):
    workspace = WorkspaceFactory(organization__name="Timber Ridge Electric Co-op")
    make_integration(workspace, "smartcar")
    return workspace


def new_session(workspace, **kwargs):
    kwargs.setdefault("redirect_url", "https://app.example.com/connected?from=texture")
    return connect.connect_session_create(workspace=workspace, actor=None, **kwargs)


def to_consent(client, session) -> str:
    """Details → manufacturer (the only one on offer: skipped) → the OEM's authorize URL."""
    link = connect.connect_link_path(session)
    page = client.get(link)
    assert page.status_code == 200 and b"Confirm your details" in page.content
    assert b"Timber Ridge Electric Co-op" in page.content
    answer = client.post(link, DETAILS)
    assert answer.status_code == 302
    answer = client.get(answer["Location"])
    assert answer.status_code == 302
    return answer["Location"]


def consent(authorize_url: str, *, decision="allow", password=DRIVER_PASSWORD) -> str:
    """The customer at the simulated OEM: the sign-in page, then Allow or Deny. Returns where it sends them."""
    page = requests.get(authorize_url, timeout=5)
    assert page.status_code == 200 and 'id="sim-consent"' in page.text
    query = {k: v[-1] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    form = {**query, "username": DRIVER, "password": password, "decision": decision}
    answer = requests.post(authorize_url.split("?")[0], data=form, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    return answer.headers["Location"]


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_driver_connects_their_vehicle(client, driver, workspace, django_capture_on_commit_callbacks):
    session = new_session(workspace, reference_id="driver-42", tags=["ev-pilot"])
    authorize = to_consent(client, session)
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["code_challenge"]
    assert "control_charge" in query["scope"][0]

    with django_capture_on_commit_callbacks(execute=True):  # the first telemetry read, queued after commit
        back = client.get(local(consent(authorize)))

    assert back.status_code == 302
    outcome = parse_qs(urlsplit(back["Location"]).query)
    assert back["Location"].startswith("https://app.example.com/connected?from=texture&")
    assert outcome["status"] == ["connected"] and outcome["sessionId"] == [str(session.public_id)]
    session.refresh_from_db()
    assert session.status == ConnectSessionStatus.CONNECTED and session.devices_linked == 1 and session.oauth == {}
    contact = Contact.objects.get(pk=outcome["customerId"][0])
    assert (contact.first_name, contact.reference_id) == ("Dana", "driver-42")
    assert contact.sites.get().street_one == "12 Juniper Ave"
    # only the driver's vehicle, discovered (device.discovered) and read with the driver's token
    device = Device.objects.get(workspace=workspace)
    assert (device.system_identifier, device.state, device.site.contact_id) == (
        VIN,
        DeviceState.ON_WORKSPACE,
        contact.pk,
    )
    assert device.oem_data[connect.CONNECTION_KEY] == session.connection_id
    assert [t.name for t in device.tags.all()] == ["ev-pilot"]
    assert TelemetryReading.objects.get(device=device).charge_percentage == 55.0
    assert PlatformEvent.objects.filter(type="device.discovered", workspace=workspace).count() == 1
    event = PlatformEvent.objects.get(type="connection.connected")
    assert event.data["deviceIds"] == [device.pk] and event.data["customerId"] == contact.pk
    # the customer's tokens are stored encrypted, per contact and OEM
    connection = CustomerConnection.objects.get(contact=contact, channel="smartcar")
    assert connection.credentials["refresh_token"] and connection.status == ConnectionStatus.ACTIVE
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM integrations_customerconnection WHERE id = %s", [connection.pk])
        assert connection.credentials["refresh_token"] not in cursor.fetchone()[0]
    # the workspace integration's own sync leaves the customer's vehicle alone
    integration = workspace_integration(workspace)
    assert device.pk not in selectors.device_ids_for_sync(integration=integration)
    # the link is spent: opening it again says so
    again = client.get(connect.connect_link_path(session))
    assert b"Your account is connected" in again.content


def workspace_integration(workspace):
    from integrations.models import WorkspaceIntegration

    return WorkspaceIntegration.objects.get(workspace=workspace, channel="smartcar")


def test_a_tampered_link_is_refused(client, workspace):
    session = new_session(workspace)
    path = connect.connect_link_path(session)
    token = path.rstrip("/").split("/")[-1]
    tampered = path.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    answer = client.get(tampered)
    assert answer.status_code == 400 and b"This link is not valid" in answer.content
    session.refresh_from_db()
    assert session.status == ConnectSessionStatus.PENDING


def test_an_expired_link_is_refused(client, workspace):
    session = new_session(workspace)
    ConnectSession.objects.filter(pk=session.pk).update(expires_at=timezone.now())
    answer = client.get(connect.connect_link_path(session))
    assert answer.status_code == 410 and b"This link has expired" in answer.content


def test_a_state_mismatch_is_refused_and_writes_nothing(client, driver, workspace):
    session = new_session(workspace)
    back = consent(to_consent(client, session))
    query = parse_qs(urlsplit(back).query)
    forged = f"/connect/callback/smartcar?code={query['code'][0]}&state=not-the-state"
    answer = client.get(forged)
    assert answer.status_code == 400 and b"state mismatch" in answer.content
    # the right state from another browser (no cookie of this session) is refused too
    other = client.__class__()
    answer = other.get(local(back))
    assert answer.status_code == 400 and b"state mismatch" in answer.content
    assert not CustomerConnection.objects.exists() and not Device.objects.exists()
    # this browser can still finish
    assert client.get(local(back)).status_code == 302


def test_a_denied_consent_ends_on_a_clear_page(client, driver, workspace):
    session = new_session(workspace)
    answer = client.get(local(consent(to_consent(client, session), decision="deny")))
    assert answer.status_code == 200 and b"Nothing was connected" in answer.content and b"Try again" in answer.content
    session.refresh_from_db()
    assert session.status == ConnectSessionStatus.DENIED and "You declined" in session.outcome
    assert not Contact.objects.exists() and not Device.objects.exists()
    assert PlatformEvent.objects.get(type="connection.failed").data["status"] == "denied"
    # and may try again from the link
    assert client.get(connect.connect_link_path(session)).status_code == 200


def test_a_reused_code_is_refused_and_nothing_is_linked(client, driver, workspace):
    session = new_session(workspace)
    back = consent(to_consent(client, session))
    code = parse_qs(urlsplit(back).query)["code"][0]
    # someone else spent the code first (with a verifier of their own: refused, but the code is used up)
    spent = requests.post(
        f"{driver.url}/smartcar/oauth/token",
        auth=("demo", "demo-smartcar-secret"),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": "x", "code_verifier": "y" * 43},
        timeout=5,
    )
    assert spent.status_code == 400
    answer = client.get(local(back))
    assert answer.status_code == 200 and b"did not go through" in answer.content
    assert b"already used" in answer.content
    session.refresh_from_db()
    assert session.status == ConnectSessionStatus.FAILED
    assert not CustomerConnection.objects.exists() and not Device.objects.exists() and not Contact.objects.exists()


def test_a_replayed_callback_changes_nothing(client, driver, workspace):
    session = new_session(workspace)
    back = local(consent(to_consent(client, session)))
    assert client.get(back).status_code == 302
    replay = client.get(back)
    assert replay.status_code == 400 and b"already used" in replay.content
    assert CustomerConnection.objects.count() == 1 and Device.objects.count() == 1
    assert ConnectSession.objects.get(pk=session.pk).status == ConnectSessionStatus.CONNECTED


def connected(client, workspace, sim) -> CustomerConnection:
    session = new_session(workspace)
    client.get(local(consent(to_consent(client, session))))
    return CustomerConnection.objects.get()


def test_the_customers_tokens_rotate_under_the_connections_lock(client, driver, workspace):
    connection = connected(client, workspace, driver)
    before = dict(connection.credentials)
    expire_tokens(driver.state.account("smartcar", DRIVER))
    stale = connect.connection_adapter(CustomerConnection.objects.get(pk=connection.pk))  # loaded before

    outcome = connect.connection_telemetry_sync(connection=CustomerConnection.objects.get(pk=connection.pk))

    assert outcome.read == 1 and not outcome.revoked
    stored = CustomerConnection.objects.get(pk=connection.pk).credentials
    assert stored["refresh_token"] != before["refresh_token"] and stored["access_token"] != before["access_token"]
    # the spent refresh token is refused by the OEM now
    spent = requests.post(
        f"{driver.url}/smartcar/oauth/token",
        auth=("demo", "demo-smartcar-secret"),
        data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]},
        timeout=5,
    )
    assert spent.json()["error"] == "invalid_grant"
    # an adapter loaded with the old token adopts the stored one instead of spending the refresh token again
    assert stale.refresh_tokens(failed=before["access_token"]) is False
    assert stale.credentials["access_token"] == stored["access_token"]
    stale.close()
    assert CustomerConnection.objects.get(pk=connection.pk).credentials == stored


def test_a_revoked_grant_revokes_the_connection_and_takes_its_devices_offline(client, driver, workspace):
    connection = connected(client, workspace, driver)
    assert sim_oauth.grants_revoke(driver.state, "smartcar", DRIVER) == 1

    outcome = connect.connection_telemetry_sync(connection=connection)

    assert outcome.revoked
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.REVOKED and "revoked" in connection.last_error.lower()
    device = Device.objects.get()
    assert device.state == DeviceState.OFFLINE and "connection is revoked" in device.state_reason
    event = PlatformEvent.objects.get(type="connection.revoked")
    assert event.data["deviceIds"] == [device.pk]
    assert PlatformEvent.objects.filter(type="device.disconnected").count() == 1
    # twice is once
    assert connect.connection_revoke(connection=connection, reason="again") is False
    assert connect.connection_telemetry_sync(connection=connection).read == 0


def test_reconnecting_brings_the_devices_back(client, driver, workspace):
    connection = connected(client, workspace, driver)
    sim_oauth.grants_revoke(driver.state, "smartcar", DRIVER)
    connect.connection_telemetry_sync(connection=connection)
    contact = connection.contact
    session = new_session(workspace, contact=contact)
    client.get(local(consent(to_consent(client, session))))
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.ACTIVE
    assert Device.objects.get().state == DeviceState.ON_WORKSPACE
    assert CustomerConnection.objects.count() == 1


def test_bad_session_input_is_refused(workspace):
    from texture_portal.exceptions import ApplicationError

    with pytest.raises(ApplicationError, match="redirectUrl"):
        new_session(workspace, redirect_url="javascript:alert(1)")
    with pytest.raises(ApplicationError, match="unknown manufacturer 'acme'"):
        new_session(workspace, manufacturer_filters={"manufacturers": ["acme"]})
    with pytest.raises(ApplicationError, match="deviceTypes"):
        new_session(workspace, manufacturer_filters={"deviceTypes": ["toaster"]})


def test_the_customer_page_shows_connections_and_sends_links(client, driver, workspace):
    from tests.factories import staff_user
    from texture_portal.choices import Role

    connection = connected(client, workspace, driver)
    support = staff_user("support", workspace, Role.CUSTOMER_SUPPORT)
    client.force_login(support)
    page = client.get(f"/admin/fleet/contact/{connection.contact_id}/customer/")
    assert page.status_code == 200
    assert b'id="customer-connections"' in page.content and b'data-channel="smartcar"' in page.content
    assert b'id="customer-connect-sessions"' in page.content
    # the contact action: a new link for this customer, shown to copy
    answer = client.post(
        "/admin/fleet/contact/",
        {"action": "connect_link_create", "_selected_action": [connection.contact_id]},
        follow=True,
    )
    assert answer.status_code == 200 and b"Connect link (valid until" in answer.content
    assert ConnectSession.objects.filter(contact_id=connection.contact_id).count() == 2


def test_commands_reach_the_customers_vehicle_with_their_tokens(client, driver, workspace):
    from integrations.adapters import AuthError, DeviceRef, NotFound
    from integrations.adapters.registry import adapter_for

    connection = connected(client, workspace, driver)
    device = Device.objects.get()
    ref = DeviceRef(serial=device.system_identifier, external_id=device.oem_device_id)
    vehicle = driver.state.device("smartcar", VIN)
    vehicle.plugged_in, vehicle.charger_on = True, False
    # the workspace app's own token does not reach the customer's vehicle
    with adapter_for(workspace_integration(workspace)) as app, pytest.raises(NotFound):
        app.send_command(ref, "vehicle:set-operating-mode", {"operatingMode": "start-charging"})

    with connect.device_adapter(workspace_integration(workspace), device) as adapter:
        result = adapter.send_command(ref, "vehicle:set-operating-mode", {"operatingMode": "start-charging"})
    assert result.status == "accepted" and vehicle.charger_on is True

    sim_oauth.grants_revoke(driver.state, "smartcar", DRIVER)
    with pytest.raises(AuthError), connect.device_adapter(workspace_integration(workspace), device) as adapter:
        adapter.send_command(ref, "vehicle:set-operating-mode", {"operatingMode": "stop-charging"})
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.REVOKED and vehicle.charger_on is True
    assert Device.objects.get().state == DeviceState.OFFLINE


def test_an_oem_without_oauth_takes_the_customers_own_login(client, sim, reference_data):
    """FranklinWH has no consent page: the customer's own login, checked by listing their gateways with it, is
    stored encrypted on their connection; a wrong one ends on a clear page with nothing linked."""
    sim_oauth.customer_add(sim.state, "franklinwh", "homeowner@example.com", "aPower-owner-pw")
    sim.state.add_device("franklinwh", "10050006A02F24000123", kind="battery", account="homeowner@example.com")
    workspace = WorkspaceFactory()
    make_integration(workspace, "franklinwh")
    session = new_session(workspace, manufacturer_filters={"manufacturers": ["franklinwh"]})
    link = connect.connect_link_path(session)
    client.post(link, DETAILS)
    form = client.get(f"{link}manufacturer")
    assert form.status_code == 302 and form["Location"].endswith("/credentials/franklinwh")
    page = client.get(form["Location"])
    assert b'type="password"' in page.content and b'name="account"' in page.content

    wrong = client.post(form["Location"], {"account": "homeowner@example.com", "password": "nope"})
    assert wrong.status_code == 200 and b"did not accept these credentials" in wrong.content
    assert not Device.objects.exists() and not CustomerConnection.objects.exists()

    right = client.post(form["Location"], {"account": "homeowner@example.com", "password": "aPower-owner-pw"})
    assert right.status_code == 302 and "status=connected" in right["Location"]
    device = Device.objects.get(system_identifier="10050006A02F24000123")
    assert device.state == DeviceState.ON_WORKSPACE
    connection = CustomerConnection.objects.get(channel="franklinwh")
    assert connection.credentials["password"] == "aPower-owner-pw"
    assert device.oem_data[connect.CONNECTION_KEY] == connection.pk
    assert connect.connection_telemetry_sync(connection=connection).read == 1


def test_a_vehicle_the_customer_adds_later_is_linked_on_the_next_round(client, driver, workspace):
    from integrations.tasks import connection_telemetry_sync_task

    connection = connected(client, workspace, driver)
    driver.state.add_device("smartcar", "WBA5R1C50KA000777", kind="vehicle", account=DRIVER)

    connection_telemetry_sync_task.delay(connection.pk)

    devices = Device.objects.filter(**{f"oem_data__{connect.CONNECTION_KEY}": connection.pk}).order_by("pk")
    assert [d.system_identifier for d in devices] == [VIN, "WBA5R1C50KA000777"]
    assert all(d.state == DeviceState.ON_WORKSPACE for d in devices)
    assert devices[1].site.contact_id == connection.contact_id
    assert TelemetryReading.objects.filter(device=devices[1]).exists()
    # a second round finds nothing new
    assert connect.connection_discover(connection=connection) == []
