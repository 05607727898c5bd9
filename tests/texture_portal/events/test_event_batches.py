"""Events written in bulk (an import) reach the destinations that want them, after commit, in one task."""

import pytest

from tests.factories import WorkspaceFactory, make_program
from tests.fleet.test_importing import ROW_A1, ROW_B1, csv_bytes, run
from texture_portal.events import tasks
from texture_portal.events.models import PlatformEvent
from texture_portal.events.services import destination_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace():
    workspace = WorkspaceFactory()
    make_program(workspace, slug="vpp")
    return workspace


def test_an_import_hands_its_events_to_the_destinations_after_commit(
    workspace, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    wants_customers = destination_create(
        workspace=workspace, label="CRM", url="http://127.0.0.1:9/hook", actor=None, event_types=["customer.created"]
    )
    batches, deliveries = [], []
    monkeypatch.setattr(tasks.platform_events_fan_out_batch_task, "delay", lambda *args: batches.append(args))
    monkeypatch.setattr(tasks.destination_deliver_task, "delay", lambda *args: deliveries.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        run(workspace, csv_bytes(ROW_A1, ROW_B1))
    assert len(batches) == 1 and batches[0][0] == workspace.pk
    tasks.platform_events_fan_out_batch_task(*batches[0])  # what the worker runs
    customer_events = set(
        PlatformEvent.objects.filter(workspace=workspace, type="customer.created").values_list("pk", flat=True)
    )
    assert len(customer_events) == 2
    assert {(d, e) for d, e, _ in deliveries} == {(wants_customers.pk, pk) for pk in customer_events}


def test_without_a_destination_nothing_is_queued(workspace, monkeypatch, django_capture_on_commit_callbacks):
    batches = []
    monkeypatch.setattr(tasks.platform_events_fan_out_batch_task, "delay", lambda *args: batches.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        run(workspace, csv_bytes(ROW_A1))
    assert batches == [] and PlatformEvent.objects.filter(workspace=workspace).exists()
