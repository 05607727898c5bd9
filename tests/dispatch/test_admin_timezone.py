"""Event windows in the admin are entered and shown in the program's timezone, labelled with it, and stored in
UTC; a local time the clocks skip or pass twice is a form error, never a silent shift."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from dispatch.models import DispatchEvent, DispatchSchedule
from dispatch.services import dispatch_event_create
from tests.factories import PASSWORD, WorkspaceFactory, make_program, staff_user
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db

ADD = "admin:dispatch_dispatchevent_add"


@pytest.fixture
def oregon(client):
    workspace = WorkspaceFactory()
    staff_user("ops", workspace, Role.OPS)
    assert client.login(username="ops", password=PASSWORD)
    return make_program(workspace, slug="oregon-vpp", timezone="America/Los_Angeles")


def event_form(program, *, day, start="17:00", end="20:00", action_start=None, **extra):
    """The add page's POST: an event window and one discharge action, as a person types them."""
    return {
        "workspace": program.workspace_id,
        "program": program.pk,
        "name": "Evening peak",
        "is_test": "on",
        "trigger": "manual",
        "starts_at_0": day,
        "starts_at_1": start,
        "ends_at_0": day,
        "ends_at_1": end,
        "signal_reference": "",
        "actions-TOTAL_FORMS": "1",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "1000",
        "actions-0-action_type": "discharge",
        "actions-0-starts_at_0": day,
        "actions-0-starts_at_1": action_start or start,
        "actions-0-ends_at_0": day,
        "actions-0-ends_at_1": end,
        **extra,
    }


def form_errors(response) -> str:
    assert response.status_code == 200, response.status_code
    errors = [str(response.context["adminform"].form.errors)]
    errors += [
        str(formset.errors) for formset in response.context["inline_admin_formsets"] for formset in [formset.formset]
    ]
    return " ".join(errors)


# -- the add and change pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "stored_start", "stored_end"),
    [
        ("2026-07-14", datetime(2026, 7, 15, 0, 0, tzinfo=UTC), datetime(2026, 7, 15, 3, 0, tzinfo=UTC)),  # PDT
        ("2026-01-14", datetime(2026, 1, 15, 1, 0, tzinfo=UTC), datetime(2026, 1, 15, 4, 0, tzinfo=UTC)),  # PST
    ],
)
def test_17_00_entered_in_the_programs_time_is_stored_in_utc_and_shown_back_as_17_00(
    client, oregon, day, stored_start, stored_end
):
    saved = client.post(reverse(ADD), event_form(oregon, day=day))
    assert saved.status_code == 302, form_errors(saved)
    event = DispatchEvent.objects.get(program=oregon)
    assert (event.starts_at, event.ends_at) == (stored_start, stored_end)
    action = event.actions.get()
    assert (action.starts_at, action.ends_at) == (stored_start, stored_end)

    page = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk])).content.decode()
    abbreviation = "PDT" if day.startswith("2026-07") else "PST"
    assert 'name="starts_at_1" value="17:00:00"' in page and 'name="ends_at_1" value="20:00:00"' in page
    assert 'name="actions-0-starts_at_1" value="17:00:00"' in page
    assert f"America/Los_Angeles ({abbreviation})" in page
    assert f"{stored_start:%Y-%m-%d %H:%M}–{stored_end:%H:%M} UTC" in page  # what is stored, said so


def test_editing_a_draft_reads_the_new_times_in_the_programs_zone(client, oregon):
    starts, ends = datetime(2026, 7, 15, 0, 0, tzinfo=UTC), datetime(2026, 7, 15, 3, 0, tzinfo=UTC)
    event = dispatch_event_create(
        program=oregon,
        name="Evening peak",
        starts_at=starts,
        ends_at=ends,
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": starts, "ends_at": ends}],
    )
    action = event.actions.get()
    form = event_form(oregon, day="2026-07-14", start="16:00", action_start="16:30")
    form.update({"actions-INITIAL_FORMS": "1", "actions-0-id": action.pk, "actions-0-event": event.pk})
    del form["workspace"], form["program"]  # fixed once created
    saved = client.post(reverse("admin:dispatch_dispatchevent_change", args=[event.pk]), form)
    assert saved.status_code == 302, form_errors(saved)
    event.refresh_from_db()
    action.refresh_from_db()
    assert event.starts_at == datetime(2026, 7, 14, 23, 0, tzinfo=UTC)
    assert action.starts_at == datetime(2026, 7, 14, 23, 30, tzinfo=UTC) and action.ends_at == ends


@pytest.mark.parametrize(
    ("day", "time", "says"),
    [
        ("2026-03-08", "02:30", "2026-03-08 02:30 does not exist in America/Los_Angeles"),
        ("2026-11-01", "01:30", "2026-11-01 01:30 happens twice in America/Los_Angeles"),
    ],
)
def test_a_time_the_clocks_skip_or_repeat_is_a_form_error_not_a_shift(client, oregon, day, time, says):
    refused = client.post(reverse(ADD), event_form(oregon, day=day, start=time, end="04:00"))
    errors = form_errors(refused)
    assert says in errors
    assert "Enter a time" in errors
    assert not DispatchEvent.objects.exists()
    # the action window's inputs refuse it the same way
    inline = client.post(reverse(ADD), event_form(oregon, day=day, start="00:00", action_start=time, end="04:00"))
    assert says in form_errors(inline) and not DispatchEvent.objects.exists()


def test_the_add_page_names_the_zone_once_the_program_is_known(client, oregon):
    denver = make_program(oregon.workspace, slug="denver-vpp", timezone="America/Denver")
    plain = client.get(reverse(ADD)).content.decode()
    assert "In the chosen program&#x27;s timezone" in plain
    assert "Oregon Vpp (America/Los_Angeles)" in plain and "Denver Vpp (America/Denver)" in plain

    fixed_url = f"{reverse(ADD)}?program={oregon.pk}"
    fixed = client.get(fixed_url)
    assert fixed.context["adminform"].form.fields["program"].disabled
    assert 'class="help window-zone">America/Los_Angeles</div>' in fixed.content.decode()
    # the program the inputs were labelled for is the one saved, whatever else is posted
    saved = client.post(fixed_url, {**event_form(oregon, day="2026-07-14"), "program": denver.pk})
    assert saved.status_code == 302, form_errors(saved)
    event = DispatchEvent.objects.get()
    assert event.program == oregon and event.starts_at == datetime(2026, 7, 15, 0, 0, tzinfo=UTC)


def test_without_a_fixed_program_the_times_are_read_in_the_chosen_programs_zone(client, oregon):
    denver = make_program(oregon.workspace, slug="denver-vpp", timezone="America/Denver")
    saved = client.post(reverse(ADD), event_form(denver, day="2026-07-14"))
    assert saved.status_code == 302, form_errors(saved)
    assert DispatchEvent.objects.get().starts_at == datetime(2026, 7, 14, 23, 0, tzinfo=UTC)  # 17:00 MDT


def test_the_list_the_read_only_page_and_the_confirmations_show_the_programs_time(client, oregon):
    starts, ends = datetime(2026, 7, 15, 0, 0, tzinfo=UTC), datetime(2026, 7, 15, 3, 0, tzinfo=UTC)
    event = dispatch_event_create(
        program=oregon,
        name="Evening peak",
        starts_at=starts,
        ends_at=ends,
        actor=None,
        actions=[{"action_type": "discharge", "starts_at": starts, "ends_at": ends}],
    )
    label = "2026-07-14 17:00–20:00 America/Los_Angeles (PDT)"
    listing = client.get(reverse("admin:dispatch_dispatchevent_changelist")).content.decode()
    assert label in listing

    schedule = client.get(reverse("admin:dispatch_dispatchevent_schedule", args=[event.pk])).content.decode()
    assert f'<span id="window">{label}</span> (2026-07-15 00:00–03:00 UTC)' in schedule
    assert f"<td>Discharge {label}</td>" in schedule

    DispatchEvent.objects.filter(pk=event.pk).update(status="scheduled")
    page = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk])).content.decode()
    assert page.count(label) == 2  # the event's window and its action's, both read-only now
    assert "2026-07-15 00:00–03:00 UTC" in page
    cancel = client.get(reverse("admin:dispatch_dispatchevent_cancel", args=[event.pk])).content.decode()
    assert label in cancel


# -- recurring schedules --------------------------------------------------------------------------------------


def test_a_new_schedule_takes_the_programs_timezone_unless_given_another(client, oregon):
    url = reverse("admin:dispatch_dispatchschedule_add")
    prefilled = client.get(url, {"program": oregon.pk})
    assert prefilled.context["adminform"].form["timezone"].value() == "America/Los_Angeles"
    assert client.get(url).context["adminform"].form["timezone"].value() == ""
    form = {
        "workspace": oregon.workspace_id,
        "program": oregon.pk,
        "name": "Summer weekdays",
        "action_type": "discharge",
        "rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
        "timezone": "",
        "start_time": "17:00",
        "duration_minutes": "180",
        "valid_from": "2027-06-01",
        "skip_dates": "[]",
        "lead_hours": "24",
        "schedule_events": "on",
        "is_test": "on",
        "is_active": "on",
    }
    saved = client.post(url, form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert DispatchSchedule.objects.get(name="Summer weekdays").timezone == "America/Los_Angeles"
    other = client.post(url, {**form, "name": "Chicago", "timezone": "America/Chicago"})
    assert other.status_code == 302
    assert DispatchSchedule.objects.get(name="Chicago").timezone == "America/Chicago"
