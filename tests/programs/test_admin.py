"""Programs admin: phase actions call the services and report refusals; strategies are versioned."""

import pytest
from django.urls import reverse

from programs.choices import ProgramPhase
from programs.models import EventStrategy, Program
from programs.services import launch_criterion_sign_off
from tests.factories import PASSWORD, User, WorkspaceFactory, make_program, staff_user
from texture_portal.choices import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(client):
    workspace = WorkspaceFactory()
    staff_user("lead", workspace, Role.PROGRAM_LEAD)
    assert client.login(username="lead", password=PASSWORD)
    return workspace


def test_advance_phase_action_moves_or_explains(client, lead):
    program = make_program(lead, phase=ProgramPhase.KICKOFF)
    url = reverse("admin:programs_program_changelist")
    response = client.post(url, {"action": "advance_phase", "_selected_action": [program.pk]}, follow=True)
    program.refresh_from_db()
    assert program.phase == ProgramPhase.KICKOFF  # kickoff's sign-offs are missing
    messages = [str(m) for m in response.context["messages"]]
    assert any("Data scope and OEM(s) confirmed: Not signed off yet." in m for m in messages)
    user = User.objects.get(username="lead")
    for key in ("data_scope_confirmed", "contacts_and_launch_date_agreed"):
        launch_criterion_sign_off(program=program, criterion=key, actor=user)
    client.post(url, {"action": "advance_phase", "_selected_action": [program.pk]})
    program.refresh_from_db()
    assert program.phase == ProgramPhase.SETUP


def test_adding_a_program_creates_strategy_version_1(client, lead):
    response = client.post(
        reverse("admin:programs_program_add"),
        {
            "workspace": lead.pk,
            "name": "Summer Peaks",
            "slug": "summer-peaks",
            "program_type": "battery",
            "enrollment_approval": "manual",
            "launch_threshold": 50,
            "reporting_target_percent": 80,
            "timezone": "America/Los_Angeles",
            "description": "",
            "strategies-TOTAL_FORMS": "0",
            "strategies-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert EventStrategy.objects.get(program__slug="summer-peaks").version == 1
    assert Program.objects.get(slug="summer-peaks").timezone == "America/Los_Angeles"


# the baseline fields as the add form shows them (it starts from the current version)
BASELINE_FORM = {
    "baseline_days": 10, "baseline_lookback_days": 45, "baseline_same_day_type": "on", "baseline_min_days": 5,
    "baseline_adjustment": "multiplicative", "baseline_window_start_minutes": 240,
    "baseline_window_end_minutes": 60, "baseline_factor_min": 0.8, "baseline_factor_max": 1.2,
}  # fmt: skip


def test_a_strategy_is_never_edited_in_place_a_new_version_is_added(client, lead):
    program = make_program(lead)
    v1 = program.strategies.get()
    page = client.get(reverse("admin:programs_eventstrategy_change", args=[v1.pk]))
    assert not page.context["has_change_permission"]
    response = client.post(
        reverse("admin:programs_eventstrategy_add"),
        {
            "workspace": lead.pk,
            "program": program.pk,
            "allowed_event_types": ["discharge"],
            "min_soc_percent": 30,
            "max_soc_percent": 90,
            "ramp_minutes": 5,
            "max_event_duration_minutes": 120,
            **BASELINE_FORM,
            "notes": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(program.strategies.order_by("version").values_list("version", "min_soc_percent")) == [
        (1, 20),
        (2, 30),
    ]


def test_an_invalid_soc_range_is_a_form_error(client, lead):
    program = make_program(lead)
    response = client.post(
        reverse("admin:programs_eventstrategy_add"),
        {
            "workspace": lead.pk,
            "program": program.pk,
            "allowed_event_types": ["discharge"],
            "min_soc_percent": 80,
            "max_soc_percent": 40,
            "ramp_minutes": 0,
            "max_event_duration_minutes": 60,
            **BASELINE_FORM,
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert program.strategies.count() == 1


def test_a_program_timezone_is_shown_edited_and_checked_in_the_admin(client, lead):
    program = make_program(lead)
    url = reverse("admin:programs_program_change", args=[program.pk])
    page = client.get(url)
    assert page.context["adminform"].form["timezone"].value() == "UTC"
    form = {
        "name": program.name,
        "slug": program.slug,
        "description": "",
        "program_type": program.program_type,
        "enrollment_approval": program.enrollment_approval,
        "launch_threshold": 0,
        "reporting_target_percent": 80,
        "strategies-TOTAL_FORMS": "1",
        "strategies-INITIAL_FORMS": "1",
    }
    refused = client.post(url, {**form, "timezone": "Pacific Time"})
    assert refused.status_code == 200
    assert "is not an IANA timezone name" in " ".join(refused.context["adminform"].form.errors["timezone"])
    saved = client.post(url, {**form, "timezone": "America/Los_Angeles"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    program.refresh_from_db()
    assert program.timezone == "America/Los_Angeles"
    listing = client.get(reverse("admin:programs_program_changelist")).content.decode()
    assert "America/Los_Angeles" in listing
