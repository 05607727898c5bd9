"""Recurring schedules: RFC 5545 rules over local wall-clock time (right across DST), skip dates, events
created a lead time ahead once each, and clear refusals of rules that cannot work."""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from dispatch.models import DispatchEvent
from dispatch.schedules import dispatch_schedule_create, schedule_occurrences, schedules_materialize
from programs.models import Program
from programs.services import event_strategy_create_version
from tests.factories import WorkspaceFactory, make_program
from texture_portal.exceptions import ApplicationError

pytestmark = pytest.mark.django_db


def schedule_zone(schedule):
    import zoneinfo

    return zoneinfo.ZoneInfo(schedule.timezone)


SUMMER_WEEKDAYS = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYMONTH=6,7,8,9"


@pytest.fixture
def program():
    program = make_program(WorkspaceFactory())
    event_strategy_create_version(program=program, data={"allowed_event_types": ["charge", "discharge"]}, actor=None)
    return program


def weekday_peaks(program, **fields):
    values = {
        "name": "Summer peaks",
        "action_type": "discharge",
        "rrule": SUMMER_WEEKDAYS,
        "start_time": time(17, 0),
        "duration_minutes": 180,
        "valid_from": date(2026, 6, 1),
        "timezone_name": "America/Los_Angeles",
        **fields,
    }
    return dispatch_schedule_create(program=program, actor=None, **values)


def test_weekdays_at_five_in_the_afternoon_from_june_to_september_in_local_time(program):
    schedule = weekday_peaks(program, valid_from=date(2027, 6, 1), valid_until=date(2027, 9, 30))
    june = schedule_occurrences(
        schedule=schedule, after=datetime(2027, 6, 1, tzinfo=UTC), before=datetime(2027, 6, 9, tzinfo=UTC)
    )
    # Tuesday 1 June 2027 to the next Monday, weekdays only
    days = [o.local_date.isoformat() for o in june]
    assert days == ["2027-06-01", "2027-06-02", "2027-06-03", "2027-06-04", "2027-06-07"]
    assert june[0].starts_at == datetime(2027, 6, 2, 0, 0, tzinfo=UTC)  # 17:00 PDT is 00:00 UTC the next day
    assert june[0].ends_at - june[0].starts_at == timedelta(hours=3)
    autumn = schedule_occurrences(
        schedule=schedule, after=datetime(2027, 9, 30, 12, tzinfo=UTC), before=datetime(2027, 12, 1, tzinfo=UTC)
    )
    assert [o.local_date for o in autumn] == [date(2027, 9, 30)]  # the last day, at 00:00 UTC on 1 October


def test_the_local_time_holds_across_daylight_saving_changes(program):
    schedule = weekday_peaks(program, rrule="FREQ=DAILY", valid_from=date(2026, 10, 30))
    around_the_change = schedule_occurrences(
        schedule=schedule, after=datetime(2026, 10, 30, tzinfo=UTC), before=datetime(2026, 11, 4, tzinfo=UTC)
    )
    # PDT (UTC−7) until Sunday 1 November 2026 at 02:00, PST (UTC−8) after: 17:00 local is 00:00, then 01:00 UTC
    assert [o.starts_at.hour for o in around_the_change] == [0, 0, 1, 1]
    assert [o.local_date.day for o in around_the_change] == [30, 31, 1, 2]
    assert {o.starts_at.astimezone(schedule_zone(schedule)).hour for o in around_the_change} == {17}


def test_skip_dates_have_no_event(program):
    schedule = weekday_peaks(program, skip_dates=["2026-07-03"])  # a holiday (observed)
    july = schedule_occurrences(
        schedule=schedule, after=datetime(2026, 7, 1, tzinfo=UTC), before=datetime(2026, 7, 8, tzinfo=UTC)
    )
    # Tuesday 30 June's starts at 00:00 UTC on 1 July; Friday 3 July is skipped; Tuesday 7 July's is on the 8th
    assert [o.local_date.isoformat() for o in july] == ["2026-06-30", "2026-07-01", "2026-07-02", "2026-07-06"]


def test_events_are_created_a_lead_time_ahead_once_each_and_scheduled(program):
    schedule = weekday_peaks(program, lead_hours=48)
    monday_noon = datetime(2026, 6, 1, 19, 0, tzinfo=UTC)  # Monday 12:00 in Los Angeles
    first = schedules_materialize(now=monday_noon)
    again = schedules_materialize(now=monday_noon + timedelta(minutes=1))
    assert len(first) == 2 and again == []  # Monday's and Tuesday's peaks, once
    events = DispatchEvent.objects.filter(schedule=schedule).order_by("starts_at")
    assert [e.status for e in events] == ["draft", "draft"]  # in the past for this test's clock: kept as drafts
    assert [(e.trigger, e.is_test) for e in events] == [("schedule", True)] * 2
    assert events[0].name == "Summer peaks — Mon 2026-06-01"
    assert "starts in the past" in events[0].status_reason
    assert list(events[0].actions.values_list("action_type", flat=True)) == ["discharge"]


def test_an_upcoming_occurrence_is_created_scheduled(program):
    from django.utils import timezone

    tomorrow = timezone.now().date() + timedelta(days=1)
    schedule = weekday_peaks(program, rrule="FREQ=DAILY", valid_from=tomorrow, lead_hours=72)
    created = schedules_materialize()
    assert created
    event = DispatchEvent.objects.get(pk=created[0])
    assert event.status == "scheduled" and event.schedule == schedule
    schedule_drafts = weekday_peaks(
        program, name="Drafts", rrule="FREQ=DAILY", valid_from=tomorrow, lead_hours=72, schedule_events=False
    )
    drafts = schedules_materialize()
    assert {DispatchEvent.objects.get(pk=pk).status for pk in drafts} == {"draft"}
    assert all(DispatchEvent.objects.get(pk=pk).schedule == schedule_drafts for pk in drafts)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"rrule": "FREQ=SOMETIMES"}, "is not an RFC 5545 rule"),
        ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "never fires"),  # 30 February
        ({"rrule": "FREQ=HOURLY"}, "more often than its events last"),
        ({"rrule": "FREQ=HOURLY;INTERVAL=4", "duration_minutes": 60}, "more than once a day"),
        ({"duration_minutes": 600}, "the strategy allows at most 240"),
        ({"action_type": "idle"}, "not an event type the strategy allows"),
        ({"timezone_name": "Mars/Olympus_Mons"}, "is not a timezone"),
        ({"skip_dates": ["July 4th"]}, "Skip dates must be YYYY-MM-DD"),
    ],
)
def test_a_schedule_that_cannot_work_is_refused_with_why(program, fields, problem):
    with pytest.raises(ApplicationError, match=problem):
        weekday_peaks(program, **fields)
    assert not program.dispatch_schedules.exists()


def test_production_schedules_need_a_launched_program(program):
    with pytest.raises(ApplicationError, match="only test events may run"):
        weekday_peaks(program, is_test=False)


def test_the_api_creates_a_schedule_and_shows_its_next_occurrences(program):
    from tests.api_support import api_client_for

    client = api_client_for(program.workspace)
    body = {
        "programSlug": program.slug,
        "name": "Summer peaks",
        "type": "discharge",
        "rrule": SUMMER_WEEKDAYS,
        "timezone": "America/Chicago",
        "startTime": "16:00",
        "durationMinutes": 120,
        "validFrom": "2027-06-01",
        "skipDates": ["2027-07-05"],
    }
    created = client.post("/v1/dispatch-schedules", body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["nextOccurrences"][0] == {
        "startsAt": "2027-06-01T21:00:00Z",  # 16:00 CDT
        "endsAt": "2027-06-01T23:00:00Z",
        "localDate": "2027-06-01",
    }
    assert client.get(f"/v1/dispatch-schedules/{data['id']}").json()["skipDates"] == ["2027-07-05"]
    never = client.post(
        "/v1/dispatch-schedules", {**body, "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, format="json"
    )
    assert never.status_code == 400 and "never fires" in never.content.decode()
    # no timezone given: the program's
    Program.objects.filter(pk=program.pk).update(timezone="America/Denver")
    local = client.post("/v1/dispatch-schedules", {k: v for k, v in body.items() if k != "timezone"}, format="json")
    assert local.status_code == 201, local.content
    assert local.json()["timezone"] == "America/Denver"
    assert local.json()["nextOccurrences"][0]["startsAt"] == "2027-06-01T22:00:00Z"  # 16:00 MDT


def test_the_admin_refuses_a_rule_that_cannot_work_on_the_form(client, program):
    from django.urls import reverse

    from tests.factories import PASSWORD, staff_user
    from texture_portal.choices import Role

    staff_user("lead", program.workspace, Role.PROGRAM_LEAD)
    assert client.login(username="lead", password=PASSWORD)
    form = {
        "workspace": program.workspace_id,
        "program": program.pk,
        "name": "Every hour",
        "action_type": "discharge",
        "rrule": "FREQ=HOURLY",
        "timezone": "America/Denver",
        "start_time": "17:00",
        "duration_minutes": "180",
        "valid_from": "2027-06-01",
        "skip_dates": "[]",
        "lead_hours": "24",
        "schedule_events": "on",
        "is_test": "on",
        "is_active": "on",
    }
    refused = client.post(reverse("admin:dispatch_dispatchschedule_add"), form)
    assert refused.status_code == 200 and "more often than its events last" in refused.content.decode()
    saved = client.post(reverse("admin:dispatch_dispatchschedule_add"), {**form, "rrule": "FREQ=DAILY"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    schedule = program.dispatch_schedules.get()
    page = client.get(reverse("admin:dispatch_dispatchschedule_change", args=[schedule.pk]))
    assert "17:00" in page.content.decode() and "America/Denver" in page.content.decode()
