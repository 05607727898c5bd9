"""`/v1/connections`: a Connect session created with Texture's fields, its link working, list and retrieve
scoped to the key's workspace, bad input refused with where and why."""

import pytest
from rest_framework.test import APIClient

from integrations.models import ConnectSession
from tests.factories import ContactFactory, WorkspaceFactory
from tests.integrations.test_services import make_integration
from texture_portal.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(reference_data):
    workspace = WorkspaceFactory(organization__name="Timber Ridge Electric Co-op")
    make_integration(workspace, "smartcar")
    return workspace


def api(workspace) -> APIClient:
    _, raw = api_key_create(workspace=workspace, name="CRM", actor=None)
    client = APIClient()
    client.credentials(HTTP_TEXTURE_API_KEY=raw)
    return client


def test_a_session_is_created_with_texture_fields_and_its_link_works(workspace, client):
    answer = api(workspace).post(
        "/v1/connections",
        {
            "redirectUrl": "https://app.example.com/done",
            "referenceId": "lead-9",
            "tags": ["ev-pilot"],
            "customerInfo": {
                "firstName": "Ana",
                "lastName": "Silva",
                "email": "ana@example.com",
                "location": {
                    "streetOne": "1 Elm St",
                    "city": "Bend",
                    "state": "OR",
                    "postalCode": "97701",
                    "country": "US",
                },
            },
            "manufacturerFilters": {"manufacturers": ["ford"]},
        },
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["status"] == "pending" and body["referenceId"] == "lead-9" and body["tags"] == ["ev-pilot"]
    assert body["manufacturerFilters"] == {"manufacturers": ["ford"], "deviceTypes": []}
    assert body["url"].startswith("http://testserver/connect/")
    # complete customerInfo skips the form; one manufacturer (Ford, through Smartcar) skips the picker: the
    # customer goes straight to the consent page
    details = client.get(body["url"].removeprefix("http://testserver"))
    assert details.status_code == 302 and details["Location"].endswith("/manufacturer")
    consent = client.get(details["Location"])
    assert consent.status_code == 302 and "/smartcar/oauth/authorize?" in consent["Location"]
    session = ConnectSession.objects.get(public_id=body["id"])
    assert session.status == "authorizing" and session.customer_details["street_one"] == "1 Elm St"


def test_list_and_retrieve_are_scoped_to_the_workspace(workspace):
    mine = api(workspace)
    created = mine.post("/v1/connections", {"redirectUrl": "https://a.example.com/"}, format="json").json()
    other = api(WorkspaceFactory())
    assert mine.get(f"/v1/connections/{created['id']}").json()["id"] == created["id"]
    assert other.get(f"/v1/connections/{created['id']}").status_code == 404
    assert [row["id"] for row in mine.get("/v1/connections").json()["data"]] == [created["id"]]
    assert other.get("/v1/connections").json()["data"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "redirectUrl"),
        ({"redirectUrl": "ftp://x.example.com/"}, "redirectUrl"),
        ({"redirectUrl": "https://a.example.com/", "customerId": 999999}, "customerId"),
        (
            {"redirectUrl": "https://a.example.com/", "customerInfo": {"location": {"streetOne": "1 Elm"}}},
            "customerInfo",
        ),
        ({"redirectUrl": "https://a.example.com/", "manufacturerFilters": {"deviceTypes": ["toaster"]}}, "deviceTypes"),
    ],
)
def test_bad_input_is_refused_with_where_and_why(workspace, body, field):
    answer = api(workspace).post("/v1/connections", body, format="json")
    assert answer.status_code == 400
    assert field in str(answer.json())
    assert not ConnectSession.objects.exists()


def test_an_unknown_manufacturer_is_refused(workspace):
    answer = api(workspace).post(
        "/v1/connections",
        {"redirectUrl": "https://a.example.com/", "manufacturerFilters": {"manufacturers": ["acme"]}},
        format="json",
    )
    assert answer.status_code == 400 and "acme" in answer.json()["error"]["message"]


def test_a_customer_of_the_workspace_is_named_by_id(workspace):
    contact = ContactFactory(workspace=workspace)
    answer = api(workspace).post(
        "/v1/connections", {"redirectUrl": "https://a.example.com/", "customerId": contact.pk}, format="json"
    )
    assert answer.status_code == 201 and answer.json()["customerId"] == contact.pk
