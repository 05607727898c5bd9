"""Writes racing on PostgreSQL: upserts of one new referenceId and POSTs with one Idempotency-Key create once."""

import threading

import pytest
from django.db import connection

from fleet.models import Contact
from tests.api_support import api_client_for
from tests.factories import WorkspaceFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BODY = {"referenceId": "ACCT-7", "firstName": "Dana", "lastName": "Reyes"}


def race(send, count=4) -> list[int]:
    barrier = threading.Barrier(count)
    statuses = []

    def run():
        try:
            barrier.wait()
            statuses.append(send().status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def test_concurrent_upserts_of_a_new_reference_create_one_contact(reference_data):
    workspace = WorkspaceFactory()
    client = api_client_for(workspace)
    statuses = race(lambda: client.put("/v1/contacts/by-reference/ACCT-7", BODY, format="json"))
    assert statuses.count(201) == 1 and statuses.count(200) == 3
    assert Contact.objects.filter(workspace=workspace, reference_id="ACCT-7").count() == 1


def test_concurrent_posts_with_one_idempotency_key_create_once(reference_data):
    workspace = WorkspaceFactory()
    client = api_client_for(workspace)
    responses = []

    def send():
        responses.append(client.post("/v1/contacts", BODY, format="json", HTTP_IDEMPOTENCY_KEY="race-1"))
        return responses[-1]

    statuses = race(send)
    assert sorted(r.get("Idempotent-Replayed", "") for r in responses) == ["", "true", "true", "true"]
    assert statuses == [201, 201, 201, 201]  # the later ones wait for the first and get its answer
    assert Contact.objects.filter(workspace=workspace, reference_id="ACCT-7").count() == 1
