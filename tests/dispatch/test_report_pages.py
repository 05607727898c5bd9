"""The event report where people and integrators read it: the admin page (tabs, charts' data, recompile), its
device table and CSV (which reads back to the same numbers), `/v1/dispatch-events/{id}/report`, compiled when
the event completes; another workspace's report never shown; a constant number of queries."""

import csv
import io
import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dispatch import engine
from dispatch.models import EventReport, EventReportDevice
from dispatch.reports import event_report_compile
from tests.api_support import api_client_for, assert_error
from tests.dispatch.test_reports import (
    EVENT_DAY,
    completed_event,
    devices_of,
    local,
    program_with,
    random_series,
    write_rollups,
)
from tests.factories import staff_user
from texture_portal.roles import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_cache")]


@pytest.fixture
def clean_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def event_with_history(n_devices=4, seed=5):
    program = program_with(baseline_days=10)
    devices = devices_of(program, n_devices)
    starts, ends = local(EVENT_DAY, 17), local(EVENT_DAY, 19)
    rng = random.Random(seed)
    for device in devices:
        series = random_series(rng, starts - timedelta(days=25), ends, missing=0.0, scale=1200)
        write_rollups(device, {at: (b, g) for at, b, g in series})
    return program, completed_event(program, starts=starts, ends=ends, devices=devices)


def test_the_report_page_shows_totals_counts_the_method_and_the_charts_data(client):
    program, event = event_with_history()
    report = event_report_compile(event=event)
    lead = staff_user("lead", program.workspace, Role.PROGRAM_LEAD)
    client.force_login(lead)

    page = client.get(reverse("admin:dispatch_dispatchevent_report", args=[event.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert f"{report.totals['net_at_meter']['delivered_kwh']:.2f}" in html
    assert report.method_description in html
    assert "chart.umd.min.js" in html and 'id="report-data"' in html
    assert (
        page.context["chart_data"]["series"]["net_at_meter"]["baseline_kw"]
        == (report.series["net_at_meter"]["baseline_kw"])
    )
    assert "Event Performance" in html and "Device Participation" in html and "Program Health" in html
    change = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk]))
    assert reverse("admin:dispatch_dispatchevent_report", args=[event.pk]) in change.content.decode()


def test_opening_a_report_takes_the_same_queries_for_four_devices_or_forty(client):
    counts = []
    for n in (4, 40):
        program, event = event_with_history(n_devices=n, seed=n)
        event_report_compile(event=event)
        client.force_login(staff_user(f"lead{n}", program.workspace, Role.PROGRAM_LEAD))
        url = reverse("admin:dispatch_dispatchevent_report", args=[event.pk])
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_recompiling_from_the_page_needs_the_right_to_change_the_event(client):
    program, event = event_with_history(n_devices=2)
    url = reverse("admin:dispatch_dispatchevent_report", args=[event.pk])
    support = staff_user("support", program.workspace, Role.CUSTOMER_SUPPORT)
    client.force_login(support)
    assert client.get(url).status_code == 200  # reads it: no report yet
    assert client.post(url).status_code == 403
    assert not EventReport.objects.filter(event=event).exists()
    client.force_login(staff_user("ops", program.workspace, Role.OPS))
    response = client.post(url)
    assert response.status_code == 302
    assert EventReport.objects.filter(event=event).count() == 1


def test_another_workspaces_report_is_not_found(client):
    _, event = event_with_history(n_devices=1)
    event_report_compile(event=event)
    other, _ = event_with_history(n_devices=1, seed=9)
    client.force_login(staff_user("stranger", other.workspace, Role.ADMIN))
    assert client.get(reverse("admin:dispatch_dispatchevent_report", args=[event.pk])).status_code == 404
    assert client.get(reverse("admin:dispatch_dispatchevent_report_csv", args=[event.pk])).status_code == 404
    rows = client.get(reverse("admin:dispatch_eventreportdevice_changelist") + f"?report__event__id__exact={event.pk}")
    assert rows.status_code == 200 and rows.context["cl"].result_count == 0
    api = api_client_for(other.workspace)
    assert_error(api.get(f"/v1/dispatch-events/{event.pk}/report"), 404)
    assert_error(api.get(f"/v1/dispatch-events/{event.pk}/report/devices"), 404)


def test_the_csv_reads_back_to_the_reports_numbers(client):
    program, event = event_with_history(n_devices=6)
    report = event_report_compile(event=event)
    client.force_login(staff_user("lead", program.workspace, Role.PROGRAM_LEAD))

    response = client.get(reverse("admin:dispatch_dispatchevent_report_csv", args=[event.pk]))

    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    stored = {row.device_id: row for row in EventReportDevice.objects.filter(report=report)}
    assert len(rows) == 6
    for row in rows:
        device = stored[int(row["deviceId"])]
        for column, field in (("batteryDeliveredKwh", "battery_delivered_kwh"), ("netBaselineKwh", "net_baseline_kwh")):
            assert float(row[column]) == getattr(device, field)  # exactly: written in full
        assert row["commanded"] == "true"
    total = sum(float(row["netDeliveredKwh"]) for row in rows)
    assert total == pytest.approx(report.totals["net_at_meter"]["delivered_kwh"], abs=1e-3)


def test_the_device_table_sorts_by_contribution_and_filters_by_baseline(client):
    program, event = event_with_history(n_devices=5)
    report = event_report_compile(event=event)
    client.force_login(staff_user("lead", program.workspace, Role.PROGRAM_LEAD))
    url = reverse("admin:dispatch_eventreportdevice_changelist")

    page = client.get(url + f"?report__id__exact={report.pk}&o=-8")
    assert page.status_code == 200
    listed = list(page.context["cl"].result_list)
    assert len(listed) == 5
    values = [row.battery_delivered_kwh for row in listed]
    assert values == sorted(values, reverse=True)
    none = client.get(url + f"?report__id__exact={report.pk}&baseline=no")
    assert none.context["cl"].result_count == 0


def test_the_api_serves_the_report_its_devices_and_a_recompile():
    program, event = event_with_history(n_devices=3)
    api = api_client_for(program.workspace)
    assert_error(api.get(f"/v1/dispatch-events/{event.pk}/report"), 404)

    compiled = api.post(f"/v1/dispatch-events/{event.pk}/report")
    assert compiled.status_code == 200, compiled.content
    body = api.get(f"/v1/dispatch-events/{event.pk}/report").json()

    report = EventReport.objects.get(event=event)
    assert body["dispatchEventId"] == event.pk
    assert body["totals"]["netAtMeter"]["deliveredKwh"] == report.totals["net_at_meter"]["delivered_kwh"]
    assert body["counts"]["targeted"] == 3 and body["counts"]["excludedByReason"] == {}
    assert body["baseline"]["days"] == 10 and body["baselineDescription"] == report.method_description
    assert body["actions"][0]["battery"]["deliveredKwh"] == report.actions[0]["battery"]["delivered_kwh"]
    devices = api.get(f"/v1/dispatch-events/{event.pk}/report/devices?hasBaseline=true").json()
    assert len(devices["data"]) == 3
    assert {d["deviceId"] for d in devices["data"]} == set(
        EventReportDevice.objects.filter(report=report).values_list("device_id", flat=True)
    )


def test_a_draft_event_has_nothing_to_compile():
    program = program_with()
    event = completed_event(program, starts=local(EVENT_DAY, 17), ends=local(EVENT_DAY, 18), devices=[])
    event.status = "draft"
    event.save(update_fields=["status"])
    api = api_client_for(program.workspace)
    assert_error(api.post(f"/v1/dispatch-events/{event.pk}/report"), 409, "invalid_transition")


def test_an_event_completing_compiles_its_report_and_the_sweep_catches_one_that_was_lost(
    django_capture_on_commit_callbacks,
):
    program, event = event_with_history(n_devices=2)
    event.status = "in_progress"
    event.save(update_fields=["status"])
    with django_capture_on_commit_callbacks(execute=True):
        assert engine._event_complete(event=event, now=event.ends_at + timedelta(minutes=5))
    report = EventReport.objects.get(event=event)
    assert report.devices.count() == 2

    report.delete()
    from django.core.cache import cache

    cache.clear()
    assert engine.event_reports_queue_missing(now=event.ends_at + timedelta(hours=1)) == 1
    assert EventReport.objects.filter(event=event).exists()
    assert engine.event_reports_queue_missing(now=event.ends_at + timedelta(hours=1)) == 0


def test_the_program_page_rolls_up_its_events_enrollment_and_health_with_csv(client):
    from programs.models import Enrollment

    program, event = event_with_history(n_devices=3)
    for device in event.participations.values_list("device", flat=True):
        Enrollment.objects.create(workspace=program.workspace, program=program, device_id=device, status="approved")
    report = event_report_compile(event=event)
    second = completed_event(program, starts=local(EVENT_DAY, 20), ends=local(EVENT_DAY, 21), devices=[])
    event_report_compile(event=second)
    client.force_login(staff_user("lead", program.workspace, Role.PROGRAM_LEAD))
    url = reverse("admin:dispatch_program_performance", args=[program.pk])

    page = client.get(url)

    assert page.status_code == 200
    history = page.context["history"]
    assert [row["eventId"] for row in history] == [event.pk, second.pk]
    assert history[0]["netDeliveredKwh"] == report.totals["net_at_meter"]["delivered_kwh"]
    assert history[0]["respondingShare"] == 1.0 and history[0]["optOutShare"] == 0.0
    assert page.context["enrolled"] == 3
    assert "program_performance.js" in page.content.decode()
    rows = list(csv.DictReader(io.StringIO(client.get(url + "?csv=events").content.decode())))
    assert [int(r["eventId"]) for r in rows] == [event.pk, second.pk]
    assert float(rows[0]["netDeliveredKwh"]) == report.totals["net_at_meter"]["delivered_kwh"]
    enrolled = list(csv.DictReader(io.StringIO(client.get(url + "?csv=enrollment").content.decode())))
    assert enrolled[-1]["enrolled"] == "3"
    from programs.services import program_health_record

    program_health_record()
    health = client.get(url)
    assert health.context["chart_data"]["health"][-1]["enrolled"] == 3
    rows = list(csv.DictReader(io.StringIO(client.get(url + "?csv=health").content.decode())))
    assert rows[-1]["enrolled"] == "3" and rows[-1]["online"] == "3"
    program_page = client.get(reverse("admin:programs_program_change", args=[program.pk]))
    assert url in program_page.content.decode()


def test_the_program_page_takes_the_same_queries_for_one_event_or_five_and_hides_other_workspaces(client):
    counts = []
    for n in (1, 5):
        program, first = event_with_history(n_devices=2, seed=n)
        event_report_compile(event=first)
        for hour in range(n - 1):
            extra = completed_event(program, starts=local(EVENT_DAY, hour), ends=local(EVENT_DAY, hour, 30), devices=[])
            event_report_compile(event=extra)
        client.force_login(staff_user(f"lead{n}", program.workspace, Role.PROGRAM_LEAD))
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("admin:dispatch_program_performance", args=[program.pk])).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    other, _ = event_with_history(n_devices=1, seed=11)
    client.force_login(staff_user("stranger", other.workspace, Role.ADMIN))
    assert client.get(reverse("admin:dispatch_program_performance", args=[program.pk])).status_code == 404
    huge = 10**30  # not an id the database could hold: not found, not a database error
    assert client.get(f"/admin/dispatch/dispatchevent/program/{huge}/performance/").status_code == 404
    assert client.get(f"/admin/dispatch/dispatchevent/{huge}/report/").status_code == 404
    assert client.get(f"/admin/dispatch/dispatchevent/{huge}/report.csv").status_code == 404
