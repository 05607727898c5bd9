"""`insert_rows`: what goes in comes back out exactly (COPY on PostgreSQL, bulk_create elsewhere)."""

import pytest
from django.db import transaction
from django.utils import timezone

from fleet.models import Contact, Site
from tests.factories import WorkspaceFactory
from texture_portal.bulk import RowStream, copy_text, insert_rows
from texture_portal.events.models import PlatformEvent

pytestmark = pytest.mark.django_db

AWKWARD = ["tab\there", "new\nline", "back\\slash", "cr\rlf", "\\N", "José Ærø 中文", "", "quote\"s and 'apostrophes'"]


def test_copy_text_escapes_what_copy_would_misread():
    assert copy_text(None) == "\\N"
    assert copy_text("\\N") == "\\\\N"  # the text "\N" is not NULL
    assert copy_text("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert copy_text(True) == "t" and copy_text(2.5) == "2.5"
    assert copy_text({"k": "v\n"}) == '{"k":"v\\\\n"}'


def test_round_trip_of_awkward_values_and_json():
    workspace = WorkspaceFactory()
    now = timezone.now()
    rows = [
        {
            "workspace_id": workspace.pk,
            "created": now,
            "last_updated": now,
            "reference_id": f"R{i}",
            "first_name": text,
            "last_name": "x",
        }
        for i, text in enumerate(AWKWARD)
    ]
    ids = insert_rows(Contact, rows)
    assert len(ids) == len(AWKWARD) and len(set(ids)) == len(ids)
    stored = dict(Contact.objects.filter(pk__in=ids).values_list("pk", "first_name"))
    assert [stored[pk] for pk in ids] == AWKWARD
    # the ids are usable as foreign keys straight away
    site_ids = insert_rows(
        Site,
        [
            {
                "workspace_id": workspace.pk,
                "created": now,
                "last_updated": now,
                "contact_id": ids[0],
                "street_one": "1 A St",
                "city": "Bend",
                "state": "OR",
                "postal_code": "97701",
                "latitude": 44.05,
                "longitude": -121.3,
            }
        ],
    )
    site = Site.objects.get(pk=site_ids[0])
    assert site.contact_id == ids[0] and site.latitude == 44.05
    data = {"text": "line\nbreak\ttab\\", "nested": {"n": [1, 2.5, None, True]}, "unicode": "Ærø"}
    insert_rows(
        PlatformEvent,
        [{"workspace_id": workspace.pk, "type": "customer.created", "key": "k1", "data": data, "timestamp": now}],
        ids=False,
    )
    assert PlatformEvent.objects.get(key="k1").data == data


def contact_rows(workspace, references):
    now = timezone.now()
    return [
        {"workspace_id": workspace.pk, "created": now, "last_updated": now, "reference_id": ref, "first_name": "A"}
        for ref in references
    ]


def test_row_stream_writes_in_order_and_what_it_wrote_is_readable_after_drain():
    workspace = WorkspaceFactory()
    with transaction.atomic(), RowStream() as stream:
        stream.reserve(Contact, 3)
        ids = stream.insert(Contact, contact_rows(workspace, ["A1", "A2", "A3"]))
        more = stream.insert(Contact, contact_rows(workspace, ["A4"]))
        stream.drain()
        stored = dict(Contact.objects.filter(workspace=workspace).values_list("pk", "reference_id"))
    assert stored == dict(zip([*ids, *more], ["A1", "A2", "A3", "A4"], strict=True))


@pytest.mark.postgres
def test_a_failing_copy_surfaces_its_own_error_and_nothing_is_written():
    import psycopg

    workspace = WorkspaceFactory()
    failing = pytest.raises(psycopg.errors.UniqueViolation, match="contact_reference_id_unique")
    with failing, transaction.atomic(), RowStream() as stream:
        stream.insert(Contact, contact_rows(workspace, ["DUP", "DUP"]))
        stream.insert(Contact, contact_rows(workspace, ["AFTER"]))  # queued behind the failure: skipped
    assert not Contact.objects.filter(workspace=workspace).exists()


@pytest.mark.django_db(transaction=True)
def test_row_stream_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match="transaction"), RowStream():
        pass
