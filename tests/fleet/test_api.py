"""Fleet endpoints: filters, cursor pagination, constant query counts, telemetry history, command log."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch.services import command_create
from fleet.models import Device, Manufacturer
from fleet.services import device_tags_get_or_create
from programs.services import enrollment_submit
from tests.api_support import api_client_for, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, TelemetryReadingFactory, WorkspaceFactory, make_program

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


def ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["data"]]


@pytest.fixture
def fleet():
    workspace = WorkspaceFactory()
    franklin = Manufacturer.objects.get(slug="franklinwh")
    tesla_live = DeviceFactory(site__contact__workspace=workspace, state="on_workspace")
    tesla_new = DeviceFactory(site__contact__workspace=workspace, site__contact__reference_id="ACCT-77")
    franklin_live = DeviceFactory(site__contact__workspace=workspace, manufacturer=franklin, state="on_workspace")
    tesla_live.tags.set(device_tags_get_or_create(workspace=workspace, names=["feeder:12", "substation:north"]))
    enrollment_submit(device=franklin_live, program=make_program(workspace, slug="summer-vpp"), actor=None)
    return workspace, tesla_live, tesla_new, franklin_live


def test_device_body_is_camel_case_with_latest_telemetry(fleet):
    workspace, tesla_live, *_ = fleet
    reading = TelemetryReadingFactory(device=tesla_live, charge_percentage=71.5)
    Device.objects.filter(pk=tesla_live.pk).update(latest_telemetry=reading)
    body = api_client_for(workspace).get(f"/v1/devices/{tesla_live.pk}").json()
    assert body["systemIdentifier"] == tesla_live.system_identifier
    assert body["manufacturerSlug"] == "tesla" and body["deviceType"] == "battery"
    assert body["state"] == "on_workspace" and body["tags"] == ["feeder:12", "substation:north"]
    assert body["referenceId"] == tesla_live.contact.reference_id
    assert body["latestTelemetry"]["chargePercentage"] == 71.5
    assert body["latestTelemetry"]["chargeRate"] == -1500.0


def test_device_filters(fleet):
    workspace, tesla_live, tesla_new, franklin_live = fleet
    client = api_client_for(workspace)
    assert ids(client.get("/v1/devices", {"state": "on_workspace"})) == [franklin_live.pk, tesla_live.pk]
    assert ids(client.get("/v1/devices?state=on_workspace&state=registered")) == [
        franklin_live.pk,
        tesla_new.pk,
        tesla_live.pk,
    ]
    assert ids(client.get("/v1/devices", {"manufacturer": "franklinwh"})) == [franklin_live.pk]
    assert ids(client.get("/v1/devices", {"state": "on_workspace", "manufacturer": "tesla"})) == [tesla_live.pk]
    assert ids(client.get("/v1/devices", {"tag": "feeder:12"})) == [tesla_live.pk]
    assert ids(client.get("/v1/devices", {"program": "summer-vpp"})) == [franklin_live.pk]
    assert ids(client.get("/v1/devices", {"referenceId": "ACCT-77"})) == [tesla_new.pk]
    assert ids(client.get("/v1/devices", {"systemIdentifier": tesla_new.system_identifier})) == [tesla_new.pk]
    Device.objects.filter(pk=tesla_new.pk).update(last_updated=timezone.now() + timedelta(hours=1))
    since = (timezone.now() + timedelta(minutes=30)).isoformat()
    assert ids(client.get("/v1/devices", {"updatedSince": since})) == [tesla_new.pk]


def test_invalid_filter_values_are_400_in_the_error_shape(fleet):
    client = api_client_for(fleet[0])
    response = client.get("/v1/devices", {"state": "melted", "updatedSince": "yesterday"})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"state", "updatedSince"}


def test_contact_and_site_filters(fleet):
    workspace, tesla_live, tesla_new, _ = fleet
    client = api_client_for(workspace)
    assert ids(client.get("/v1/contacts", {"referenceId": "ACCT-77"})) == [tesla_new.contact_id]
    assert ids(client.get("/v1/sites", {"referenceId": "ACCT-77"})) == [tesla_new.site_id]
    site = client.get(f"/v1/sites/{tesla_new.site_id}").json()
    assert site["address"]["streetOne"] == tesla_new.site.street_one and site["contactId"] == tesla_new.contact_id


def test_cursor_pagination_walks_every_row_once():
    workspace = WorkspaceFactory()
    made = sorted((DeviceFactory(site__contact__workspace=workspace).pk for _ in range(7)), reverse=True)
    client = api_client_for(workspace)
    seen, url, pages = [], "/v1/devices?perPage=3", 0
    while url:
        body = client.get(url).json()
        assert body["perPage"] == 3 and len(body["data"]) <= 3
        seen += [row["id"] for row in body["data"]]
        url, pages = body["next"], pages + 1
    assert seen == made and pages == 3
    back = client.get(client.get("/v1/devices?perPage=3").json()["next"]).json()["previous"]
    assert ids(client.get(back)) == made[:3]
    assert client.get("/v1/devices?perPage=100000").json()["perPage"] == 500


def test_list_query_count_does_not_grow_with_page_size(django_assert_max_num_queries):
    workspace = WorkspaceFactory()
    tags = device_tags_get_or_create(workspace=workspace, names=["feeder:1", "feeder:2"])
    for _ in range(30):
        device = DeviceFactory(site__contact__workspace=workspace)
        device.tags.set(tags)
        reading = TelemetryReadingFactory(device=device)
        Device.objects.filter(pk=device.pk).update(latest_telemetry=reading)
    client = api_client_for(workspace)
    client.get("/v1/devices?perPage=1")  # last_used_at write happens here
    # key lookup, device page (joins manufacturer, contact, latest telemetry), tags prefetch
    for per_page in (1, 5, 30):
        with django_assert_max_num_queries(3):
            assert len(client.get(f"/v1/devices?perPage={per_page}").json()["data"]) == per_page
    with django_assert_max_num_queries(3) as captured:
        client.get("/v1/devices?perPage=30&tag=feeder:1&program=none&state=registered&state=offline&manufacturer=tesla")
    # no DISTINCT: it turns the LIMIT 31 index walk into a sort of every matching row (bench/api_latency.py)
    assert not any("DISTINCT" in q["sql"].upper() for q in captured.captured_queries)


def test_telemetry_history_newest_first_with_window_and_pagination(fleet):
    workspace, tesla_live, *_ = fleet
    now = timezone.now().replace(microsecond=0)
    for minutes in (0, 5, 10, 15):
        TelemetryReadingFactory(device=tesla_live, measured_at=now - timedelta(minutes=minutes))
    client = api_client_for(workspace)
    body = client.get(f"/v1/devices/{tesla_live.pk}/telemetry", {"perPage": 2}).json()
    times = [row["measuredAt"] for row in body["data"]]
    assert len(times) == 2 and times == sorted(times, reverse=True) and body["next"]
    window = client.get(
        f"/v1/devices/{tesla_live.pk}/telemetry",
        {"since": (now - timedelta(minutes=10)).isoformat(), "until": now.isoformat()},
    ).json()["data"]
    assert len(window) == 2


def test_command_log_of_a_device(fleet):
    workspace, tesla_live, tesla_new, _ = fleet
    first = command_create(
        device=tesla_live, slug="battery:set-reserve", input={"chargePercentage": 20}, idempotency_key="a", actor=None
    )
    command_create(
        device=tesla_new, slug="battery:set-reserve", input={"chargePercentage": 20}, idempotency_key="b", actor=None
    )
    rows = api_client_for(workspace).get(f"/v1/devices/{tesla_live.pk}/commands").json()["data"]
    assert [row["id"] for row in rows] == [first.pk]
    assert rows[0]["command"] == "battery:set-reserve" and rows[0]["status"] == "pending"


def test_the_admin_changelist_filters_with_the_same_filterset(client, fleet):
    from django.urls import reverse

    from tests.factories import staff_user
    from texture_portal.choices import Role

    workspace, tesla_live, tesla_new, franklin_live = fleet
    client.force_login(staff_user("ops", workspace, Role.OPS))
    url = reverse("admin:fleet_device_changelist")

    def listed(params):
        response = client.get(url, params)
        assert response.status_code == 200
        return sorted(obj.pk for obj in response.context["cl"].result_list)

    assert listed({"manufacturer": "franklinwh"}) == [franklin_live.pk]
    assert listed({"referenceId": "ACCT-77"}) == [tesla_new.pk]
    assert listed({"state": "on_workspace", "manufacturer": "tesla"}) == [tesla_live.pk]
    # the admin's own sidebar filters keep their parameters (a tag id) and combine with the API's names
    tag_id = tesla_live.tags.get(name="feeder:12").pk
    assert listed({"tag": tag_id, "state": "on_workspace"}) == [tesla_live.pk]
    # an invalid value says so and lists nothing
    response = client.get(url, {"updatedSince": "yesterday"})
    assert list(response.context["cl"].result_list) == []
    assert any("updatedSince" in str(m) for m in response.context["messages"])


def test_device_body_carries_its_grid_services_status(fleet):
    workspace, tesla_live, tesla_new, _ = fleet
    checked = timezone.now().replace(microsecond=0)
    Device.objects.filter(pk=tesla_live.pk).update(grid_services_status="enrolled", grid_services_checked_at=checked)
    client = api_client_for(workspace)
    body = client.get(f"/v1/devices/{tesla_live.pk}").json()
    assert body["gridServicesStatus"] == "enrolled"
    assert body["gridServicesCheckedAt"] == checked.isoformat().replace("+00:00", "Z")
    never_read = client.get(f"/v1/devices/{tesla_new.pk}").json()
    assert (never_read["gridServicesStatus"], never_read["gridServicesCheckedAt"]) == ("unknown", None)
