"""Writes of contacts, sites and devices on /v1: the importer's rules and messages, services' audit rows and
events, referenceId upserts, Idempotency-Key, deletes, tags."""

import pytest

from fleet.importing.rows import Lookups, RowError, normalize_row
from fleet.models import Contact, Device, Manufacturer
from programs.models import Enrollment, Program
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import DeviceFactory, SiteFactory, WorkspaceFactory, make_program
from texture_portal.events.models import PlatformEvent
from texture_portal.idempotency import IdempotencyKey
from texture_portal.models import AuditLogEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


@pytest.fixture
def workspace():
    workspace = WorkspaceFactory()
    make_program(workspace, slug="summer-vpp")
    return workspace


@pytest.fixture
def client(workspace):
    return api_client_for(workspace)


def events(workspace, type_):
    return list(PlatformEvent.objects.filter(workspace=workspace, type=type_).order_by("id"))


def audits(workspace, action):
    return list(AuditLogEntry.objects.filter(workspace=workspace, action=action).order_by("id"))


CONTACT = {"referenceId": "ACCT-1", "firstName": "Dana", "lastName": "Reyes", "email": "dana@example.com"}
ADDRESS = {"streetOne": "100 Cedar Ln", "city": "Bend", "state": "OR", "postalCode": "97701"}


def post_site(client, contact_id, **fields):
    return client.post("/v1/sites", {"contactId": contact_id, "address": ADDRESS, **fields}, format="json")


# -- contacts -----------------------------------------------------------------------------------------------


def test_post_contact_creates_normalizes_audits_and_announces(client, workspace):
    response = client.post("/v1/contacts", {**CONTACT, "phone": "(541) 555-0101", "firstName": " Dana "}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["referenceId"] == "ACCT-1" and body["firstName"] == "Dana" and body["phone"] == "+15415550101"
    contact = Contact.objects.get(pk=body["id"], workspace=workspace)
    assert [e.source for e in audits(workspace, "customer.created")] == ["api"]
    assert [e.data["id"] for e in events(workspace, "customer.created")] == [contact.pk]


def test_patch_contact_changes_only_what_it_names(client, workspace):
    contact_id = client.post("/v1/contacts", CONTACT, format="json").json()["id"]
    response = client.patch(f"/v1/contacts/{contact_id}", {"email": "new@example.com"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "new@example.com" and response.json()["firstName"] == "Dana"
    assert events(workspace, "customer.updated")[0].data["email"] == "new@example.com"
    assert audits(workspace, "customer.updated")[0].changes == {"email": ["dana@example.com", "new@example.com"]}


def test_a_taken_reference_id_is_refused_with_the_holder(client):
    first = client.post("/v1/contacts", CONTACT, format="json").json()["id"]
    error = assert_error(client.post("/v1/contacts", CONTACT, format="json"), 400, "validation_error")
    assert error["fields"] == {"referenceId": [f"a contact with this referenceId exists (id {first}); update that one"]}


def test_put_by_reference_creates_then_updates(client, workspace):
    url = "/v1/contacts/by-reference/ACCT-9"
    created = client.put(url, {"firstName": "Ana", "lastName": "Chen"}, format="json")
    assert created.status_code == 201, created.content
    updated = client.put(url, {"firstName": "Ana", "lastName": "Chen-Li", "referenceId": "ACCT-9"}, format="json")
    assert updated.status_code == 200 and updated.json()["id"] == created.json()["id"]
    assert Contact.objects.get(workspace=workspace, reference_id="ACCT-9").last_name == "Chen-Li"
    assert len(events(workspace, "customer.created")) == 1 and len(events(workspace, "customer.updated")) == 1
    again = client.put(url, {"firstName": "Ana", "lastName": "Chen-Li"}, format="json")
    assert again.status_code == 200 and len(events(workspace, "customer.updated")) == 1  # nothing changed
    error = assert_error(client.put(url, {**CONTACT, "referenceId": "OTHER"}, format="json"), 400)
    assert error["fields"] == {"referenceId": ["differs from the referenceId in the path"]}


def test_delete_contact_only_without_sites(client, workspace):
    contact_id = client.post("/v1/contacts", CONTACT, format="json").json()["id"]
    site_id = post_site(client, contact_id).json()["id"]
    error = assert_error(client.delete(f"/v1/contacts/{contact_id}"), 409, "conflict")
    assert "has sites" in error["message"]
    assert client.delete(f"/v1/sites/{site_id}").status_code == 204
    assert client.delete(f"/v1/contacts/{contact_id}").status_code == 204
    assert not Contact.objects.filter(pk=contact_id).exists()
    assert [e.data["id"] for e in events(workspace, "customer.deleted")] == [contact_id]
    assert [e.data["id"] for e in events(workspace, "site.deleted")] == [site_id]
    assert len(audits(workspace, "object.deleted")) == 2


def test_another_workspaces_objects_are_404_for_writes(client):
    other = DeviceFactory()
    assert_error(client.patch(f"/v1/contacts/{other.contact_id}", {"firstName": "X"}, format="json"), 404)
    assert_error(client.delete(f"/v1/sites/{other.site_id}"), 404)
    assert_error(client.put(f"/v1/devices/{other.pk}/tags", {"tags": ["x"]}, format="json"), 404)
    error = assert_error(post_site(client, other.contact_id), 404, "not_found")
    assert error["message"] == f"No contact {other.contact_id} in this workspace (contactId)."
    body = {"siteId": other.site_id, "manufacturerSlug": "tesla", "systemIdentifier": "X1", "programSlug": "summer-vpp"}
    assert_error(client.post("/v1/devices", body, format="json"), 404, "not_found")


# -- sites --------------------------------------------------------------------------------------------------


def test_post_site_gets_the_postal_codes_centroid_like_an_imported_one(client, workspace):
    contact_id = client.post("/v1/contacts", CONTACT, format="json").json()["id"]
    response = post_site(client, contact_id, siteReferenceId="SITE-1")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["address"]["country"] == "US" and body["latitude"] and body["timezone"] == "America/Los_Angeles"
    blank_country = post_site(client, contact_id, address={**ADDRESS, "streetOne": "2 Elm St", "country": " "})
    assert blank_country.status_code == 201 and blank_country.json()["address"]["country"] == "US"
    lower = post_site(client, contact_id, address={**ADDRESS, "streetOne": "3 Elm St", "country": "ca"})
    assert lower.json()["address"]["country"] == "CA" and lower.json()["latitude"] is None  # no offline centroid
    assert events(workspace, "site.created")[0].data["siteReferenceId"] == "SITE-1"
    assert [e.source for e in audits(workspace, "site.created")] == ["api", "api", "api"]
    moved = client.patch(f"/v1/sites/{body['id']}", {"address": {"postalCode": "10001"}}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["address"]["streetOne"] == "100 Cedar Ln" and moved.json()["timezone"] == "America/New_York"
    assert events(workspace, "site.updated")[0].data["address"]["postalCode"] == "10001"


# -- devices ------------------------------------------------------------------------------------------------


@pytest.fixture
def site(workspace):
    return SiteFactory(contact__workspace=workspace)


def test_post_device_registers_and_enrolls_it_like_an_imported_one(client, workspace, site):
    body = {
        "siteId": site.pk,
        "manufacturerSlug": "FranklinWH",
        "systemIdentifier": "10050000A00001",
        "programSlug": "SUMMER-VPP",
        "tags": ["feeder:12", " feeder:12", ""],
    }
    response = client.post("/v1/devices", body, format="json")
    assert response.status_code == 201, response.content
    device = Device.objects.get(pk=response.json()["id"])
    assert (device.state, device.contact_id, device.manufacturer.slug) == ("registered", site.contact_id, "franklinwh")
    assert response.json()["tags"] == ["feeder:12"] and response.json()["deviceType"] == "battery"
    enrollment = Enrollment.objects.get(device=device)
    assert enrollment.program.slug == "summer-vpp" and enrollment.status == "approved"
    enrollment_events = PlatformEvent.objects.filter(workspace=workspace, type__startswith="enrollment").order_by("id")
    assert [e.type for e in enrollment_events] == [
        "enrollment.submitted",
        "enrollment.approved",
    ]
    assert [e.source for e in audits(workspace, "device.registered")] == ["api"]
    error = assert_error(client.post("/v1/devices", body, format="json"), 400)
    assert error["fields"] == {
        "systemIdentifier": [f"a franklinwh device with this systemIdentifier exists (id {device.pk})"]
    }


def test_patch_device_moves_renames_and_retags_with_one_event(client, workspace, site):
    device = DeviceFactory(site=site)
    other_site = SiteFactory(contact__workspace=workspace)
    response = client.patch(
        f"/v1/devices/{device.pk}", {"siteId": other_site.pk, "name": "Garage", "tags": ["b", "a"]}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["siteId"], body["contactId"], body["name"], body["tags"]) == (
        other_site.pk,
        other_site.contact_id,
        "Garage",
        ["a", "b"],
    )
    (event,) = events(workspace, "device.updated")
    assert event.data["siteId"] == other_site.pk and event.data["latestTelemetry"] is None


def test_delete_device_only_while_registered(client, workspace, site):
    live = DeviceFactory(site=site, state="on_workspace")
    registered = DeviceFactory(site=site)
    assert_error(client.delete(f"/v1/devices/{live.pk}"), 409, "conflict")
    assert client.delete(f"/v1/devices/{registered.pk}").status_code == 204
    assert list(Device.objects.filter(workspace=workspace)) == [live]


# -- tags ---------------------------------------------------------------------------------------------------


def test_device_tags_get_put_and_the_tag_routes(client, workspace, site):
    first, second = DeviceFactory(site=site), DeviceFactory(site=site)
    assert client.get(f"/v1/devices/{first.pk}/tags").json() == {"tags": []}
    put = client.put(f"/v1/devices/{first.pk}/tags", {"tags": ["feeder:12", "region west"]}, format="json")
    assert put.status_code == 200 and put.json() == {"tags": ["feeder:12", "region west"]}
    client.put(f"/v1/devices/{second.pk}/tags", {"tags": ["feeder:12"]}, format="json")
    assert audits(workspace, "device.updated")[0].changes == {"tags": [[], ["feeder:12", "region west"]]}
    tags = {row["name"]: row["deviceCount"] for row in client.get("/v1/tags").json()["data"]}
    assert tags == {"feeder:12": 2, "region west": 1}
    assert [d["id"] for d in client.get("/v1/tags/feeder:12/devices").json()["data"]] == [second.pk, first.pk]
    assert [d["id"] for d in client.get("/v1/tags/region west/devices").json()["data"]] == [first.pk]
    assert_error(client.get("/v1/tags/nope/devices"), 404)
    cleared = client.put(f"/v1/devices/{first.pk}/tags", {"tags": []}, format="json")
    assert cleared.json() == {"tags": []} and first.tags.count() == 0
    error = assert_error(client.put(f"/v1/devices/{first.pk}/tags", {"tags": ["x" * 101]}, format="json"), 400)
    assert error["fields"] == {"tags": ["tag “xxxxxxxxxxxxxxxxxxxx…” is longer than 100 characters"]}


def test_tags_are_scoped_to_the_workspace(client, workspace):
    other = DeviceFactory()
    other.tags.create(workspace=other.workspace, name="theirs")
    assert client.get("/v1/tags").json()["data"] == []
    assert_error(client.get("/v1/tags/theirs/devices"), 404)


# -- Idempotency-Key ----------------------------------------------------------------------------------------


def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(client, workspace):
    first = client.post("/v1/contacts", CONTACT, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    again = client.post("/v1/contacts", dict(reversed(CONTACT.items())), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201 and again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Contact.objects.filter(workspace=workspace).count() == 1 and len(events(workspace, "customer.created")) == 1
    other = client.post("/v1/contacts", {**CONTACT, "referenceId": "ACCT-2"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert "already used for another request" in assert_error(other, 409, "conflict")["message"]
    # the same key in another workspace is another key
    elsewhere = api_client_for(WorkspaceFactory()).post(
        "/v1/contacts", CONTACT, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert elsewhere.status_code == 201
    assert IdempotencyKey.objects.filter(key="k-1").count() == 2


def test_a_refused_create_stores_no_key_and_an_expired_key_is_new(client, workspace):
    bad = client.post("/v1/contacts", {**CONTACT, "email": "nope"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert bad.status_code == 400 and not IdempotencyKey.objects.exists()
    assert client.post("/v1/contacts", CONTACT, format="json", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 201
    from django.utils import timezone

    IdempotencyKey.objects.update(expires_at=timezone.now())
    again = client.post("/v1/contacts", {**CONTACT, "referenceId": "ACCT-3"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert again.status_code == 201 and again.json()["referenceId"] == "ACCT-3"
    assert_error(client.post("/v1/contacts", CONTACT, format="json", HTTP_IDEMPOTENCY_KEY=" "), 400)


# -- one rule set: the API's message for a bad value is the importer's --------------------------------------

VALID_ROW = {
    "referenceId": "ACCT-1",
    "firstName": "Dana",
    "lastName": "Reyes",
    "email": "dana@example.com",
    "phone": "541-555-0101",
    "streetOne": "100 Cedar Ln",
    "streetTwo": "",
    "city": "Bend",
    "state": "OR",
    "postalCode": "97701",
    "country": "US",
    "siteName": "",
    "siteReferenceId": "",
    "manufacturerSlug": "tesla",
    "systemIdentifier": "TG1000000001",
    "deviceType": "",
    "programSlug": "summer-vpp",
    "tags": "",
}
# (column, bad value, API route, path of the field in the API's body)
BAD_VALUES = [
    ("referenceId", "R" * 101, "contacts", "referenceId"),
    ("firstName", "", "contacts", "firstName"),
    ("lastName", "x" * 101, "contacts", "lastName"),
    ("email", "dana@", "contacts", "email"),
    ("phone", "555-0101", "contacts", "phone"),
    ("phone", "x" * 33, "contacts", "phone"),
    ("streetOne", "", "sites", "address.streetOne"),
    ("streetTwo", "s" * 201, "sites", "address.streetTwo"),
    ("city", "", "sites", "address.city"),
    ("state", "s" * 51, "sites", "address.state"),
    ("postalCode", "", "sites", "address.postalCode"),
    ("country", "USA", "sites", "address.country"),
    ("siteName", "n" * 201, "sites", "siteName"),
    ("siteReferenceId", "r" * 101, "sites", "siteReferenceId"),
    ("manufacturerSlug", "tesl", "devices", "manufacturerSlug"),
    ("manufacturerSlug", "", "devices", "manufacturerSlug"),
    ("systemIdentifier", "1.0005E+13", "devices", "systemIdentifier"),
    ("systemIdentifier", "S" * 101, "devices", "systemIdentifier"),
    ("deviceType", "toaster", "devices", "deviceType"),
    ("deviceType", "vehicle", "devices", "deviceType"),
    ("programSlug", "winter", "devices", "programSlug"),
    ("tags", "ok;" + "t" * 101, "devices", "tags"),
]


def importer_messages(workspace, column: str, value: str) -> list[str]:
    lookups = Lookups(manufacturers=Manufacturer.objects.all(), programs=Program.objects.filter(workspace=workspace))
    errors: list[RowError] = []
    assert normalize_row({**VALID_ROW, column: value}, 2, lookups, errors) is None
    assert {error.column for error in errors} == {column}, errors
    return [error.message for error in errors]


def api_body(route: str, column: str, value, site) -> dict:
    if route == "contacts":
        return {**CONTACT, column: value}
    if route == "sites":
        if column in ADDRESS or column in ("streetTwo", "country"):
            return {"contactId": site.contact_id, "address": {**ADDRESS, column: value}}
        return {"contactId": site.contact_id, "address": ADDRESS, column: value}
    body = {
        "siteId": site.pk,
        "manufacturerSlug": "tesla",
        "systemIdentifier": "TG1000000001",
        "programSlug": "summer-vpp",
    }
    return {**body, column: value.split(";") if column == "tags" else value}


@pytest.mark.parametrize(
    ("column", "value", "route", "path"), BAD_VALUES, ids=[f"{c}-{i}" for i, (c, *_) in enumerate(BAD_VALUES)]
)
def test_the_api_refuses_a_bad_value_with_the_importers_message(client, workspace, site, column, value, route, path):
    expected = importer_messages(workspace, column, value)
    response = client.post(f"/v1/{route}", api_body(route, column, value, site), format="json")
    error = assert_error(response, 400, "validation_error")
    # the importer goes on to report every problem of a cell (a phone both too long and invalid); the API stops
    # at the first of the same messages
    assert list(error["fields"]) == [path] and error["fields"][path] == expected[: len(error["fields"][path])]


def test_a_new_device_without_a_program_gets_the_importers_message(client, workspace, site):
    from fleet.importing import plan_fleet_import, read_fleet_file

    header = ",".join(VALID_ROW)
    line = ",".join({**VALID_ROW, "programSlug": ""}.values())
    plan = plan_fleet_import(
        workspace=workspace, fleet_file=read_fleet_file(f"{header}\n{line}\n".encode(), filename="f.csv")
    )
    (error,) = plan.errors
    body = api_body("devices", "name", "", site)
    del body["programSlug"]
    for sent in (body, {**body, "programSlug": ""}):
        api_error = assert_error(client.post("/v1/devices", sent, format="json"), 400)
        assert (error.column, api_error["fields"]) == ("programSlug", {"programSlug": [error.message]})


def test_expired_idempotency_keys_are_pruned_by_the_periodic_task(client):
    from django.utils import timezone

    from texture_portal.tasks import idempotency_keys_prune_task

    client.post("/v1/contacts", CONTACT, format="json", HTTP_IDEMPOTENCY_KEY="old")
    client.post("/v1/contacts", {**CONTACT, "referenceId": "ACCT-5"}, format="json", HTTP_IDEMPOTENCY_KEY="new")
    IdempotencyKey.objects.filter(key="old").update(expires_at=timezone.now())
    assert idempotency_keys_prune_task() == 1 and idempotency_keys_prune_task() == 0
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_patch_is_checked_by_the_same_rules(client, workspace, site):
    contact_id = client.post("/v1/contacts", CONTACT, format="json").json()["id"]
    error = assert_error(
        client.patch(f"/v1/contacts/{contact_id}", {"firstName": "  ", "phone": "12"}, format="json"), 400
    )
    assert error["fields"] == {"firstName": ["required, but empty"], "phone": ["not a valid phone number for US"]}
    device = DeviceFactory(site=site)
    error = assert_error(client.patch(f"/v1/devices/{device.pk}", {"deviceType": "vehicle"}, format="json"), 400)
    assert error["fields"] == {"deviceType": ["Tesla makes no devices of this type"]} or "makes no devices" in str(
        error
    )
    error = assert_error(client.patch(f"/v1/sites/{site.pk}", {"address": {"country": "USA"}}, format="json"), 400)
    assert error["fields"] == {"address.country": ["not a two-letter country code (ISO 3166-1, e.g. US)"]}
    assert_error(
        client.put("/v1/contacts/by-reference/" + "R" * 101, {"firstName": "A", "lastName": "B"}, format="json"), 400
    )
    assert not audits(workspace, "customer.updated") and not audits(workspace, "device.updated")


def test_tag_lists_cost_the_same_queries_whatever_their_size(client, workspace, site):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from fleet.services import device_tags_get_or_create

    def counts():
        client.get("/v1/tags")  # the key's last use is written at most once a minute: not in the counts
        with CaptureQueriesContext(connection) as tags:
            assert client.get("/v1/tags").status_code == 200
        with CaptureQueriesContext(connection) as devices:
            assert client.get("/v1/tags/feeder:1/devices").status_code == 200
        return len(tags), len(devices)

    def add(count):
        for _ in range(count):
            device = DeviceFactory(site=site)
            device.tags.set(device_tags_get_or_create(workspace=workspace, names=["feeder:1", f"pole:{device.pk}"]))

    add(2)
    small = counts()
    add(12)
    assert counts() == small
