"""Local time in the admin: every time is shown in the user's workspace's zone with its abbreviation and the UTC
instant on hover, a program's own pages speak the program's zone, times typed are read in the zone (a time the
clocks skip or repeat is refused naming both instants it could mean), and the API stays in UTC."""

from datetime import UTC, datetime

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from dispatch.models import DispatchEvent
from dispatch.services import command_create, dispatch_event_create
from fleet.models import Device, DeviceStateChange
from tests.factories import (
    PASSWORD,
    DeviceFactory,
    OrganizationFactory,
    UserFactory,
    WorkspaceFactory,
    make_program,
    staff_user,
)
from texture_portal.api_keys import ApiKey
from texture_portal.choices import Role
from texture_portal.services import api_key_create, workspace_create
from texture_portal.timezones import short_label, time_html, zone_or_utc

pytestmark = pytest.mark.django_db

SUMMER = datetime(2026, 7, 15, 23, 0, tzinfo=UTC)  # 16:00 PDT, 19:00 EDT
WINTER = datetime(2026, 1, 15, 1, 30, tzinfo=UTC)  # 17:30 PST the day before


def shown(utc: datetime, text: str, zone: str = "UTC") -> str:
    """The markup of one time as the admin shows it."""
    where = "" if zone == "UTC" else f" · shown in {zone}"
    return (
        f'<time class="local-time" datetime="{utc:%Y-%m-%dT%H:%M:%S}Z" title="{utc:%Y-%m-%d %H:%M:%S} UTC{where}">'
        f"{text}</time>"
    )


def workspace_in(zone: str, **fields):
    return WorkspaceFactory(timezone=zone, **fields)


def device_seen(workspace, at=SUMMER, **fields):
    device = DeviceFactory(site__contact__workspace=workspace, **fields)
    Device.objects.filter(pk=device.pk).update(last_seen_at=at, state_changed_at=at)
    return device


def login(client, workspace, role=Role.OPS, username="staff"):
    user = staff_user(username, workspace, role)
    assert client.login(username=username, password=PASSWORD)
    return user


# -- the labels ---------------------------------------------------------------------------------------------


def test_a_time_is_labelled_with_the_abbreviation_of_its_day_and_carries_the_utc_instant():
    la = zone_or_utc("America/Los_Angeles")
    assert short_label(SUMMER, la) == "2026-07-15 16:00 PDT"
    assert short_label(WINTER, la) == "2026-01-14 17:30 PST"
    assert time_html(SUMMER, la) == shown(SUMMER, "2026-07-15 16:00 PDT", "America/Los_Angeles")
    # a zone whose abbreviation is only its offset reads as one
    assert short_label(SUMMER, zone_or_utc("America/Sao_Paulo")) == "2026-07-15 20:00 UTC-03"
    assert time_html(SUMMER, zone_or_utc("UTC")) == shown(SUMMER, "2026-07-15 23:00 UTC")


# -- shown in the workspace's zone ------------------------------------------------------------------------------


def test_a_changelist_shows_times_in_the_workspaces_zone_labelled_with_utc_on_hover(client):
    oregon = workspace_in("America/Los_Angeles")
    device_seen(oregon, SUMMER, system_identifier="OR-SUMMER")
    device_seen(oregon, WINTER, system_identifier="OR-WINTER")
    login(client, oregon)
    page = client.get(reverse("admin:fleet_device_changelist")).content.decode()
    assert shown(SUMMER, "2026-07-15 16:00 PDT", "America/Los_Angeles") in page
    assert shown(WINTER, "2026-01-14 17:30 PST", "America/Los_Angeles") in page
    assert "July 15, 2026" not in page  # Django's unlabelled rendering is gone
    # Django's calendar "Now" and its "you are N hours behind the server" warning go by the zone the page is
    # in: a browser in Pacific time gets no warning
    offset = int(timezone.now().astimezone(zone_or_utc("America/Los_Angeles")).utcoffset().total_seconds())
    assert f'data-admin-utc-offset="{offset}"' in page


def test_a_change_page_shows_read_only_times_and_history_rows_in_the_workspaces_zone(client):
    oregon = workspace_in("America/Los_Angeles")
    device = device_seen(oregon, SUMMER)
    DeviceStateChange.objects.create(
        workspace=oregon, device=device, from_state="registered", to_state="on_workspace", changed_at=WINTER
    )
    login(client, oregon)
    page = client.get(reverse("admin:fleet_device_change", args=[device.pk])).content.decode()
    assert page.count(shown(SUMMER, "2026-07-15 16:00 PDT", "America/Los_Angeles")) == 2  # state changed, last seen
    assert shown(WINTER, "2026-01-14 17:30 PST", "America/Los_Angeles") in page  # the state history inline


def test_a_workspace_in_another_zone_shows_its_own(client):
    new_york = workspace_in("America/New_York")
    device = device_seen(new_york, SUMMER)
    login(client, new_york)
    changelist = client.get(reverse("admin:fleet_device_changelist")).content.decode()
    change = client.get(reverse("admin:fleet_device_change", args=[device.pk])).content.decode()
    for page in (changelist, change):
        assert shown(SUMMER, "2026-07-15 19:00 EDT", "America/New_York") in page
        assert "PDT" not in page


def test_an_event_page_speaks_its_programs_zone_and_the_workspaces_other_pages_the_workspaces(client):
    """A New York workspace running an Oregon program: the event's window in Pacific time on the event's
    pages, the commands it sent in the workspace's Eastern time."""
    new_york = workspace_in("America/New_York")
    oregon_program = make_program(new_york, slug="oregon-vpp", timezone="America/Los_Angeles")
    login(client, new_york)
    event = dispatch_event_create(
        program=oregon_program, name="Evening peak", starts_at=SUMMER, ends_at=SUMMER.replace(hour=23, minute=59),
        actor=None, actions=[{"action_type": "discharge", "starts_at": SUMMER, "ends_at": SUMMER.replace(minute=30)}],
    )  # fmt: skip
    change = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk])).content.decode()
    assert 'name="starts_at_1" value="16:00:00"' in change and "America/Los_Angeles (PDT)" in change
    changelist = client.get(reverse("admin:dispatch_dispatchevent_changelist")).content.decode()
    assert "2026-07-15 16:00–16:59 America/Los_Angeles (PDT)" in changelist

    device = device_seen(new_york)
    command = command_create(
        device=device, slug="battery:set-reserve", input={"backupReservePercent": 20}, idempotency_key="k1",
        actor=None, dispatch_event=event, not_before=SUMMER,
    )  # fmt: skip
    commands = client.get(reverse("admin:dispatch_command_changelist")).content.decode()
    eastern = zone_or_utc("America/New_York")
    assert shown(command.created, short_label(command.created, eastern), "America/New_York") in commands
    command_page = client.get(reverse("admin:dispatch_command_change", args=[command.pk])).content.decode()
    assert shown(SUMMER, "2026-07-15 19:00 EDT", "America/New_York") in command_page  # not before


# -- whose zone ----------------------------------------------------------------------------------------------


def test_a_person_in_several_workspaces_reads_their_shared_zone_else_utc_said_so(client):
    organization = OrganizationFactory()
    production = workspace_in("America/Los_Angeles", organization=organization, name="production")
    sandbox = workspace_in("America/Los_Angeles", organization=organization, name="sandbox")
    device = device_seen(production)
    user = login(client, production)
    staff_user_in(user, sandbox)
    url = reverse("admin:fleet_device_change", args=[device.pk])
    assert shown(SUMMER, "2026-07-15 16:00 PDT", "America/Los_Angeles") in client.get(url).content.decode()

    staff_user_in(user, workspace_in("America/New_York"))
    page = client.get(url).content.decode()
    assert shown(SUMMER, "2026-07-15 23:00 UTC") in page and "PDT" not in page


def staff_user_in(user, workspace):
    from texture_portal.services import membership_grant

    membership_grant(user=user, workspace=workspace, role=Role.OPS)


def test_a_superuser_reads_utc_until_they_choose_a_zone_for_the_session(client):
    device = device_seen(workspace_in("America/Los_Angeles"))
    admin_user = UserFactory(username="root", is_superuser=True, is_staff=True)
    client.force_login(admin_user)
    changelist = reverse("admin:fleet_device_changelist")
    assert shown(SUMMER, "2026-07-15 23:00 UTC") in client.get(changelist).content.decode()

    # ?tz= on any admin URL: remembered, and the page shown again without it (a changelist would read it as a
    # filter); the other parameters kept
    chosen = client.get(changelist, {"state": "registered", "tz": "America/New_York"})
    assert chosen.status_code == 302 and chosen["Location"] == f"{changelist}?state=registered"
    page = client.get(chosen["Location"]).content.decode()
    assert "Times are shown in America/New_York" in page
    assert shown(SUMMER, "2026-07-15 19:00 EDT", "America/New_York") in page
    detail = client.get(reverse("admin:fleet_device_change", args=[device.pk])).content.decode()
    assert shown(SUMMER, "2026-07-15 19:00 EDT", "America/New_York") in detail

    refused = client.get(changelist, {"tz": "PST"})
    assert refused.status_code == 302
    assert "not an IANA timezone name" in " ".join(m.message for m in get_messages(refused.wsgi_request))
    assert shown(SUMMER, "2026-07-15 19:00 EDT", "America/New_York") in client.get(changelist).content.decode()

    client.get(changelist, {"tz": "auto"})  # back to the default
    assert shown(SUMMER, "2026-07-15 23:00 UTC") in client.get(changelist).content.decode()


# -- times entered --------------------------------------------------------------------------------------------


def event_form(program, *, day, start, end, end_day=None):
    end_day = end_day or day
    return {
        "workspace": program.workspace_id,
        "program": program.pk,
        "name": "Night test",
        "is_test": "on",
        "trigger": "manual",
        "starts_at_0": day,
        "starts_at_1": start,
        "ends_at_0": end_day,
        "ends_at_1": end,
        "signal_reference": "",
        "actions-TOTAL_FORMS": "1",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "1000",
        "actions-0-action_type": "discharge",
        "actions-0-starts_at_0": day,
        "actions-0-starts_at_1": start,
        "actions-0-ends_at_0": end_day,
        "actions-0-ends_at_1": end,
    }


def errors_of(response) -> str:
    assert response.status_code == 200, response.status_code
    found = [str(response.context["adminform"].form.errors)]
    found += [str(inline.formset.errors) for inline in response.context["inline_admin_formsets"]]
    return " ".join(found)


@pytest.fixture
def oregon_program(client):
    oregon = workspace_in("America/Los_Angeles")
    login(client, oregon)
    return make_program(oregon, slug="oregon-vpp", timezone="America/Los_Angeles")


@pytest.mark.parametrize(
    ("day", "start", "end", "stored_start", "stored_end", "utc_label"),
    [
        # spring forward: 01:00 PST to 04:00 PDT is two hours (02:00–03:00 never happens)
        (
            "2026-03-08", "01:00", "04:00",
            datetime(2026, 3, 8, 9, 0, tzinfo=UTC), datetime(2026, 3, 8, 11, 0, tzinfo=UTC),
            "2026-03-08 09:00–11:00 UTC",
        ),
        # fall back: 00:30 PDT to 02:30 PST is three hours (01:00–02:00 happens twice)
        (
            "2026-11-01", "00:30", "02:30",
            datetime(2026, 11, 1, 7, 30, tzinfo=UTC), datetime(2026, 11, 1, 10, 30, tzinfo=UTC),
            "2026-11-01 07:30–10:30 UTC",
        ),
    ],
)  # fmt: skip
def test_an_event_window_entered_on_a_clock_change_day_is_the_right_instants(
    client, oregon_program, day, start, end, stored_start, stored_end, utc_label
):
    saved = client.post(
        reverse("admin:dispatch_dispatchevent_add"), event_form(oregon_program, day=day, start=start, end=end)
    )
    assert saved.status_code == 302, errors_of(saved)
    event = DispatchEvent.objects.get(program=oregon_program)
    assert (event.starts_at, event.ends_at) == (stored_start, stored_end)
    assert (event.actions.get().starts_at, event.actions.get().ends_at) == (stored_start, stored_end)
    page = client.get(reverse("admin:dispatch_dispatchevent_change", args=[event.pk])).content.decode()
    assert f'name="starts_at_1" value="{start}:00"' in page and f'name="ends_at_1" value="{end}:00"' in page
    assert utc_label in page


@pytest.mark.parametrize(
    ("day", "time", "says"),
    [
        (
            "2026-03-08",
            "02:30",
            "2026-03-08 02:30 does not exist in America/Los_Angeles: the clocks jump from 02:00 to 03:00 when PST "
            "changes to PDT (10:00 UTC), so it could mean 01:30 PST (09:30 UTC) or 03:30 PDT (10:30 UTC). "
            "Enter a time before or after the change.",
        ),
        (
            "2026-11-01",
            "01:30",
            "2026-11-01 01:30 happens twice in America/Los_Angeles when the clocks go back: first in PDT "
            "(08:30 UTC), then in PST (09:30 UTC). Enter a time outside that hour.",
        ),
    ],
)
def test_an_event_window_at_a_time_the_clocks_skip_or_repeat_is_refused_naming_both_instants(
    client, oregon_program, day, time, says
):
    refused = client.post(
        reverse("admin:dispatch_dispatchevent_add"), event_form(oregon_program, day=day, start=time, end="04:00")
    )
    assert says in errors_of(refused)
    assert not DispatchEvent.objects.exists()


def test_any_other_time_typed_in_the_admin_is_read_in_the_workspaces_zone_and_refused_the_same_way(client):
    """An API key's expiry: not a program's, so the workspace's zone reads it (next year's clock changes: an
    expiry must lie ahead)."""
    oregon = workspace_in("America/Los_Angeles")
    login(client, oregon, Role.ENGINEERING)
    url = reverse("admin:texture_portal_apikey_add")
    assert 'class="help local-time-zone">America/Los_Angeles</div>' in client.get(url).content.decode()

    def post(day, time):
        form = {"workspace": oregon.pk, "name": "CRM", "scopes": ["*:read"]}
        return client.post(url, {**form, "expires_at_0": day, "expires_at_1": time})

    gap = post("2027-03-14", "02:30")
    assert "2027-03-14 02:30 does not exist in America/Los_Angeles" in str(gap.context["adminform"].form.errors)
    assert "01:30 PST (09:30 UTC) or 03:30 PDT (10:30 UTC)" in str(gap.context["adminform"].form.errors)
    twice = post("2027-11-07", "01:30")
    assert "first in PDT (08:30 UTC), then in PST (09:30 UTC)" in str(twice.context["adminform"].form.errors)
    assert not ApiKey.objects.exists()

    assert post("2027-11-07", "12:00").status_code == 302
    key = ApiKey.objects.get()
    assert key.expires_at == datetime(2027, 11, 7, 20, 0, tzinfo=UTC)
    page = client.get(reverse("admin:texture_portal_apikey_change", args=[key.pk])).content.decode()
    assert shown(key.expires_at, "2027-11-07 12:00 PST", "America/Los_Angeles") in page


# -- the API stays in UTC ------------------------------------------------------------------------------------


def test_the_api_speaks_utc_to_a_client_whose_admin_pages_are_in_pacific_time(client):
    oregon = workspace_in("America/Los_Angeles")
    device = device_seen(oregon, SUMMER)
    login(client, oregon)
    admin_page = client.get(reverse("admin:fleet_device_change", args=[device.pk])).content.decode()
    assert "2026-07-15 16:00 PDT" in admin_page

    _key, raw = api_key_create(workspace=oregon, name="CRM", actor=None)
    # the same client (its admin session cookie too), even asking for Pacific time
    body = client.get(f"/v1/devices/{device.pk}", {"tz": "America/Los_Angeles"}, HTTP_TEXTURE_API_KEY=raw).json()
    assert body["lastSeenAt"] == "2026-07-15T23:00:00Z"
    assert body["stateChangedAt"] == "2026-07-15T23:00:00Z"
    assert body["createdAt"].endswith("Z")


# -- the workspace's zone: new and existing workspaces --------------------------------------------------------


def test_a_new_workspace_takes_the_zone_it_is_given_and_refuses_an_abbreviation():
    organization = OrganizationFactory()
    assert workspace_create(organization=organization, name="production", kind="production").timezone == "UTC"
    oregon = workspace_create(
        organization=organization, name="oregon", kind="production", timezone="America/Los_Angeles"
    )
    assert str(oregon.zone) == "America/Los_Angeles"
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not an IANA timezone name"):
        workspace_create(organization=organization, name="pacific", kind="production", timezone="PST")


@pytest.mark.django_db(transaction=True)
def test_existing_workspaces_take_their_programs_zone_when_they_agree(migrator):
    old = migrator.apply_initial_migration([("programs", "0008_program_health_days")])
    Organization = old.apps.get_model("texture_portal", "Organization")
    Workspace = old.apps.get_model("texture_portal", "Workspace")
    Program = old.apps.get_model("programs", "Program")
    coop = Organization.objects.create(name="Coop", slug="coop")
    other = Organization.objects.create(name="Other", slug="other")
    workspaces = {
        name: Workspace.objects.create(organization=org, name=name, slug=name, kind="production")
        for org, name in [(coop, "agree"), (coop, "sandbox"), (other, "differ"), (other, "none")]
    }

    def program(workspace, slug, zone):
        Program.objects.create(
            workspace=workspaces[workspace], slug=slug, name=slug, program_type="battery",
            enrollment_approval="automatic", timezone=zone,
        )  # fmt: skip

    program("agree", "a1", "America/Los_Angeles")
    program("agree", "a2", "America/Los_Angeles")
    program("differ", "d1", "America/Los_Angeles")
    program("differ", "d2", "America/New_York")

    new = migrator.apply_tested_migration(("programs", "0009_workspace_timezone_from_programs"))
    zones = dict(new.apps.get_model("texture_portal", "Workspace").objects.values_list("slug", "timezone"))
    assert zones == {
        "agree": "America/Los_Angeles",
        "sandbox": "America/Los_Angeles",  # no programs: its organization's, which agree
        "differ": "UTC",
        "none": "UTC",  # no programs, and its organization's differ
    }


def test_a_custom_admin_template_shows_a_time_the_same_way_with_the_filter():
    from django.template import Context, Template

    rendered = Template("{% load local_time %}{{ when|local_time }} / {{ never|local_time }}")
    with timezone.override(zone_or_utc("America/Los_Angeles")):
        text = rendered.render(Context({"when": SUMMER, "never": None}))
    assert text == f"{shown(SUMMER, '2026-07-15 16:00 PDT', 'America/Los_Angeles')} / —"
