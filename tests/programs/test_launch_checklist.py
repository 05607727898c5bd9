"""The launch checklist: every phase's exit criteria, measured from the program's data or signed off by staff;
leaving a phase needs its criteria (or an audited override), production dispatch needs all of them."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from fleet.choices import DeviceState
from fleet.models import Device
from programs.choices import PHASE_ORDER, LaunchCriterion, ProgramPhase
from programs.launch import CRITERIA, LAUNCH_CHECKLIST, SIGN_OFF_CRITERIA, criteria_of
from programs.models import LaunchCriterionSignOff, Program
from programs.selectors import program_launch_checklist
from programs.services import (
    enrollment_submit,
    launch_criterion_revoke,
    launch_criterion_sign_off,
    program_set_phase,
    program_set_production_dispatch,
)
from tests.api_support import api_client_for, assert_error, clean_cache  # noqa: F401
from tests.factories import PASSWORD, DeviceFactory, UserFactory, WorkspaceFactory, make_program, staff_user
from texture_portal.choices import AuditAction, Role
from texture_portal.events.services import event_emit
from texture_portal.exceptions import ApplicationError
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db

C = LaunchCriterion


def state_of(program, key):
    program.refresh_from_db()
    return next(c for c in program_launch_checklist(program=program).criteria if c.key == key)


def enrolled_devices(program, n, **device_fields):
    devices = [DeviceFactory(site__contact__workspace=program.workspace, **device_fields) for _ in range(n)]
    for device in devices:
        enrollment_submit(device=device, program=program, actor=None)
    return devices


def reporting(devices, *, ago=timedelta(minutes=5)):
    Device.objects.filter(pk__in=[d.pk for d in devices]).update(
        state=DeviceState.ON_WORKSPACE, last_seen_at=timezone.now() - ago
    )


def dispatch_announces(program, type_, *, event_id=501, is_test=True, end_to_end=True, workspace_id=None):
    """What dispatch emits, through the core's events service (programs never hears of dispatch otherwise)."""
    data = {
        "id": event_id,
        "workspaceId": workspace_id or program.workspace_id,
        "programId": program.pk,
        "name": "Test 1",
        "status": "completed",
        "isTest": is_test,
        "completedEndToEnd": end_to_end,
    }
    if type_ == "program_event.report_compiled":
        data["report"] = {
            "compiledAt": "2026-12-04T18:30:00+00:00",
            "deliveredKwh": 12.5,
            "baselineKwh": 30.0,
            "devices": 3,
            "noBaseline": 0,
        }
    event_emit(
        workspace_id=workspace_id or program.workspace_id,
        type=type_,
        key=f"{type_}:{event_id}:{is_test}:{end_to_end}:{workspace_id}",
        data=data,
    )


@pytest.fixture
def workspace():
    return WorkspaceFactory()


@pytest.fixture
def lead(workspace):
    return staff_user("lead", workspace, Role.PROGRAM_LEAD)


@pytest.fixture
def program(workspace):
    return make_program(workspace)


def sign_everything(program, user):
    for key in SIGN_OFF_CRITERIA:
        if not LaunchCriterionSignOff.objects.filter(program=program, criterion=key).exists():
            launch_criterion_sign_off(program=program, criterion=key, actor=user)


# -- the definition --------------------------------------------------------------------------------------------


def test_every_phase_has_exit_criteria_and_each_criterion_one_phase_and_kind():
    assert [p for p in PHASE_ORDER if not criteria_of(p)] == []
    assert len(CRITERIA) == len(LAUNCH_CHECKLIST) == len(C.values)
    measured = {str(c.key) for c in LAUNCH_CHECKLIST if c.is_measured}
    assert measured == {
        "devices_imported_and_linked",
        "fleet_reporting",
        "test_event_completed",
        "test_report_compiled",
        "launch_threshold_met",
    }
    assert set(SIGN_OFF_CRITERIA) == set(C.values) - measured
    assert [str(c.key) for c in criteria_of(ProgramPhase.TRAINING)] == [
        "ops_trained",
        "customer_support_trained",
        "engineering_trained",
        "program_leads_trained",
    ]


# -- measured criteria, met and not met --------------------------------------------------------------------------


def test_devices_imported_and_linked(program):
    assert state_of(program, C.DEVICES_IMPORTED_AND_LINKED).met is False
    assert state_of(program, C.DEVICES_IMPORTED_AND_LINKED).figure == "No devices imported and enrolled yet."
    devices = enrolled_devices(program, 3)
    linked = state_of(program, C.DEVICES_IMPORTED_AND_LINKED)
    assert (linked.met, linked.figure) == (True, "3 enrolled devices, each linked to its site and contact.")
    assert linked.measurement == {"count": 3, "total": 3}
    # one device's contact drifts from its site's (written behind the services' back)
    Device.objects.filter(pk=devices[0].pk).update(contact=devices[1].contact)
    broken = state_of(program, C.DEVICES_IMPORTED_AND_LINKED)
    assert broken.met is False
    assert broken.figure == "1 of 3 enrolled devices not linked to their site's contact in this workspace."


def test_fleet_reporting_against_the_programs_target_share(program):
    assert state_of(program, C.FLEET_REPORTING).figure == "No devices enrolled yet (target 80 % reporting)."
    devices = enrolled_devices(program, 5)
    reporting(devices[:3])
    reporting(devices[3:4], ago=timedelta(hours=30))  # on workspace but silent for more than a day
    short = state_of(program, C.FLEET_REPORTING)
    assert short.met is False
    assert short.figure == "3 of 5 enrolled devices reporting (60 %, target 80 %)."
    reporting(devices[3:4])
    met = state_of(program, C.FLEET_REPORTING)
    assert met.met is True and met.figure == "4 of 5 enrolled devices reporting (80 %, target 80 %)."
    assert met.measurement == {"count": 4, "total": 5, "targetPercent": 80}
    Program.objects.filter(pk=program.pk).update(reporting_target_percent=90)
    assert state_of(program, C.FLEET_REPORTING).met is False


def test_test_event_and_its_report_are_recorded_from_dispatchs_events(program):
    assert not state_of(program, C.TEST_EVENT_COMPLETED).met
    assert not state_of(program, C.TEST_REPORT_COMPILED).met
    # not a test event, or not end to end: nothing recorded
    dispatch_announces(program, "program_event.report_compiled", event_id=400, is_test=False)
    dispatch_announces(program, "program_event.report_compiled", event_id=401, end_to_end=False)
    assert not state_of(program, C.TEST_REPORT_COMPILED).met
    dispatch_announces(program, "program_event.completed", event_id=501)
    completed = state_of(program, C.TEST_EVENT_COMPLETED)
    assert completed.met and completed.measurement["dispatchEventId"] == 501
    assert not state_of(program, C.TEST_REPORT_COMPILED).met  # completed, but no report yet
    dispatch_announces(program, "program_event.report_compiled", event_id=501)
    report = state_of(program, C.TEST_REPORT_COMPILED)
    assert report.met
    assert report.figure == "Report of test event #501 compiled on 2026-12-04 18:30 UTC."
    # a later report (recomputed, or another test event) changes nothing: the first is kept
    dispatch_announces(program, "program_event.report_compiled", event_id=502)
    program.refresh_from_db()
    assert program.test_report_event_id == 501


def test_a_report_announced_in_another_workspace_does_not_reach_the_program(program):
    other = WorkspaceFactory()
    dispatch_announces(program, "program_event.report_compiled", workspace_id=other.pk)
    program.refresh_from_db()
    assert program.test_report_event_id is None


def test_launch_threshold_counts_approved_dispatch_eligible_devices(program):
    devices = enrolled_devices(program, 3)
    assert state_of(program, C.LAUNCH_THRESHOLD_MET).figure == (
        "0 enrolled dispatch-eligible devices; no launch threshold set on the program."
    )
    Program.objects.filter(pk=program.pk).update(launch_threshold=2)
    reporting(devices[:1])
    short = state_of(program, C.LAUNCH_THRESHOLD_MET)
    assert (short.met, short.figure) == (False, "1 enrolled dispatch-eligible devices, launch threshold 2.")
    reporting(devices[1:2])
    assert state_of(program, C.LAUNCH_THRESHOLD_MET).met is True


def test_the_checklist_takes_a_constant_number_of_queries_whatever_the_fleet(program, django_assert_num_queries):
    reporting(enrolled_devices(program, 2))
    program.refresh_from_db()
    with django_assert_num_queries(2):
        small = program_launch_checklist(program=program)
    reporting(enrolled_devices(program, 18))
    program.refresh_from_db()
    with django_assert_num_queries(2):
        large = program_launch_checklist(program=program)
    assert next(c for c in small.criteria if c.key == C.FLEET_REPORTING).measurement["total"] == 2
    assert next(c for c in large.criteria if c.key == C.FLEET_REPORTING).measurement["total"] == 20


# -- sign-offs ---------------------------------------------------------------------------------------------------


def test_sign_off_and_revoke_record_who_and_when_and_are_audited(program, lead):
    lead.first_name, lead.last_name = "Lee", "Lead"
    lead.save()
    sign_off = launch_criterion_sign_off(
        program=program, criterion=C.OPS_TRAINED, actor=lead, note="Session on 2026-12-01 with the ops desk."
    )
    assert sign_off.workspace_id == program.workspace_id
    state = state_of(program, C.OPS_TRAINED)
    assert state.met and state.sign_off.signed_off_by == lead
    assert state.figure == f"Signed off by Lee Lead on {sign_off.signed_off_at:%Y-%m-%d %H:%M} UTC."
    entry = AuditLogEntry.objects.get(action=AuditAction.PROGRAM_CRITERION_SIGNED_OFF)
    assert (entry.actor, entry.object_id, entry.changes["criterion"]) == (lead, str(program.pk), "ops_trained")
    assert entry.reason == "Session on 2026-12-01 with the ops desk."

    with pytest.raises(ApplicationError, match="already signed off by Lee Lead"):
        launch_criterion_sign_off(program=program, criterion=C.OPS_TRAINED, actor=lead)
    with pytest.raises(ApplicationError, match="measured, not signed off"):
        launch_criterion_sign_off(program=program, criterion=C.FLEET_REPORTING, actor=lead)
    with pytest.raises(ApplicationError, match="not a launch criterion"):
        launch_criterion_sign_off(program=program, criterion="vibes_good", actor=lead)
    with pytest.raises(ApplicationError, match="signed off by a person"):
        launch_criterion_sign_off(program=program, criterion=C.ENGINEERING_TRAINED, actor=None)

    revoker = UserFactory(username="revoker")
    launch_criterion_revoke(program=program, criterion=C.OPS_TRAINED, actor=revoker, reason="Wrong team trained.")
    assert not state_of(program, C.OPS_TRAINED).met
    assert not LaunchCriterionSignOff.objects.filter(program=program).exists()
    revoked = AuditLogEntry.objects.get(action=AuditAction.PROGRAM_CRITERION_REVOKED)
    assert revoked.actor == revoker and revoked.reason == "Wrong team trained."
    assert revoked.changes["signed_off_by"] == "Lee Lead"
    assert revoked.changes["signed_off_at"] == sign_off.signed_off_at.isoformat()
    with pytest.raises(ApplicationError, match="is not signed off"):
        launch_criterion_revoke(program=program, criterion=C.OPS_TRAINED, actor=revoker)


# -- gates ---------------------------------------------------------------------------------------------------


def test_leaving_a_phase_needs_its_criteria_or_an_audited_override(program, lead):
    with pytest.raises(ApplicationError, match="Data scope and OEM") as refused:
        program_set_phase(program=program, phase=ProgramPhase.SETUP, actor=lead)
    assert refused.value.extra["unmet"] == ["data_scope_confirmed", "contacts_and_launch_date_agreed"]
    program_set_phase(program=program, phase=ProgramPhase.SETUP, actor=lead, override_reason="Agreed by phone.")
    assert program.phase == ProgramPhase.SETUP
    entry = AuditLogEntry.objects.filter(action=AuditAction.PROGRAM_PHASE_CHANGED).latest("id")
    assert entry.reason == "Agreed by phone."
    assert entry.changes["overridden_criteria"] == ["data_scope_confirmed", "contacts_and_launch_date_agreed"]
    program_set_phase(program=program, phase=ProgramPhase.KICKOFF, actor=lead)  # back: always allowed
    for key in (C.DATA_SCOPE_CONFIRMED, C.CONTACTS_AND_LAUNCH_DATE_AGREED):
        launch_criterion_sign_off(program=program, criterion=key, actor=lead)
    program_set_phase(program=program, phase=ProgramPhase.SETUP, actor=lead)
    entry = AuditLogEntry.objects.filter(action=AuditAction.PROGRAM_PHASE_CHANGED).latest("id")
    assert "overridden_criteria" not in entry.changes and entry.reason == ""


def test_production_dispatch_is_refused_until_every_criterion_holds(program, lead):
    Program.objects.filter(pk=program.pk).update(launch_threshold=2)
    devices = enrolled_devices(program, 2)
    program.refresh_from_db()
    # phases moved on by override: the phases' gates were skipped, production dispatch's is not
    for phase in PHASE_ORDER[1:]:
        program_set_phase(program=program, phase=phase, actor=lead, override_reason="Catching up the records.")
    assert program.phase == ProgramPhase.LAUNCHED
    with pytest.raises(ApplicationError, match="needs every launch criterion") as refused:
        program_set_production_dispatch(program=program, enabled=True, actor=lead)
    assert set(refused.value.extra["unmet"]) == set(C.values) - {"devices_imported_and_linked"}
    assert "Ops trained on live data: Not signed off yet." in refused.value.message

    reporting(devices)
    dispatch_announces(program, "program_event.completed")
    dispatch_announces(program, "program_event.report_compiled")
    sign_everything(program, lead)
    launch_criterion_revoke(program=program, criterion=C.SUPPORT_PATH_CONFIRMED, actor=lead)
    with pytest.raises(ApplicationError) as refused:
        program_set_production_dispatch(program=program, enabled=True, actor=lead)
    assert refused.value.extra["unmet"] == ["support_path_confirmed"]
    assert not AuditLogEntry.objects.filter(action=AuditAction.PROGRAM_PRODUCTION_DISPATCH_CHANGED).exists()

    launch_criterion_sign_off(program=program, criterion=C.SUPPORT_PATH_CONFIRMED, actor=lead)
    program_set_production_dispatch(program=program, enabled=True, actor=lead)
    assert program.production_dispatch_enabled
    assert AuditLogEntry.objects.filter(action=AuditAction.PROGRAM_PRODUCTION_DISPATCH_CHANGED).count() == 1
    assert program_launch_checklist(program=program).production_dispatch_blockers == []


# -- admin ---------------------------------------------------------------------------------------------------


@pytest.fixture
def lead_client(client, lead):
    assert client.login(username="lead", password=PASSWORD)
    return client


def test_the_program_page_shows_the_checklist_by_phase(lead_client, program, lead):
    reporting(enrolled_devices(program, 2)[:1])
    launch_criterion_sign_off(program=program, criterion=C.DATA_SCOPE_CONFIRMED, actor=lead, note="Tesla only")
    page = lead_client.get(reverse("admin:programs_program_change", args=[program.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="launch-checklist"' in html and "2 / 16 criteria met" in html
    for phase in ProgramPhase:
        assert f'id="phase-{phase.value}"' in html
    assert "1 of 2 enrolled devices reporting (50 %, target 80 %)." in html
    assert "Signed off by lead on" in html and "“Tesla only”" in html
    assert reverse("admin:programs_program_sign_off", args=[program.pk, "ops_trained"]) in html
    assert reverse("admin:programs_program_revoke_sign_off", args=[program.pk, "data_scope_confirmed"]) in html
    blockers = html[html.index('id="production-dispatch-blockers"') :]
    assert "The program is in “Kickoff &amp; prerequisites”, not launched." in blockers
    assert 'value="Enable production dispatch" disabled' in html


def test_sign_off_and_revoke_through_the_admin(lead_client, program, lead):
    url = reverse("admin:programs_program_sign_off", args=[program.pk, "test_signed_off"])
    assert lead_client.get(url).status_code == 405  # POST only
    response = lead_client.post(url, {"note": "Roundtrip, cadence and recovery checked."}, follow=True)
    assert response.redirect_chain[-1][0].endswith(f"/programs/program/{program.pk}/change/#launch-checklist")
    assert "Signed off: Dispatch validated end to end and signed off." in [str(m) for m in response.context["messages"]]
    sign_off = LaunchCriterionSignOff.objects.get(program=program)
    assert (sign_off.criterion, sign_off.signed_off_by, sign_off.note) == (
        "test_signed_off",
        lead,
        "Roundtrip, cadence and recovery checked.",
    )
    assert AuditLogEntry.objects.get(action=AuditAction.PROGRAM_CRITERION_SIGNED_OFF).source == "admin"
    # a measured criterion cannot be signed off: the refusal is shown, nothing written
    response = lead_client.post(
        reverse("admin:programs_program_sign_off", args=[program.pk, "fleet_reporting"]), follow=True
    )
    assert any("measured, not signed off" in str(m) for m in response.context["messages"])
    lead_client.post(reverse("admin:programs_program_revoke_sign_off", args=[program.pk, "test_signed_off"]))
    assert not LaunchCriterionSignOff.objects.exists()
    assert AuditLogEntry.objects.filter(action=AuditAction.PROGRAM_CRITERION_REVOKED, actor=lead).count() == 1


def test_advance_and_production_dispatch_through_the_admin(lead_client, program):
    advance = reverse("admin:programs_program_advance_phase", args=[program.pk])
    response = lead_client.post(advance, follow=True)
    assert any("cannot leave" in str(m) for m in response.context["messages"])
    lead_client.post(advance, {"override_reason": "Kickoff happened offline."})
    program.refresh_from_db()
    assert program.phase == ProgramPhase.SETUP
    response = lead_client.post(
        reverse("admin:programs_program_production_dispatch", args=[program.pk]), {"enabled": "1"}, follow=True
    )
    assert any("not launched" in str(m) for m in response.context["messages"])
    program.refresh_from_db()
    assert not program.production_dispatch_enabled


def test_admin_sign_off_needs_csrf_and_the_change_permission(program):
    url = reverse("admin:programs_program_sign_off", args=[program.pk, "ops_trained"])
    strict = Client(enforce_csrf_checks=True)
    staff_user("lead2", program.workspace, Role.PROGRAM_LEAD)
    assert strict.login(username="lead2", password=PASSWORD)
    assert strict.post(url).status_code == 403  # no CSRF token
    support = Client()
    staff_user("support", program.workspace, Role.CUSTOMER_SUPPORT)  # may view programs, not change them
    assert support.login(username="support", password=PASSWORD)
    assert support.get(reverse("admin:programs_program_change", args=[program.pk])).status_code == 200
    assert (
        'action="' + url
        not in support.get(reverse("admin:programs_program_change", args=[program.pk])).content.decode()
    )
    assert support.post(url).status_code == 403
    assert not LaunchCriterionSignOff.objects.exists()


def test_another_workspaces_program_and_sign_offs_are_not_reachable(lead_client, program, lead):
    other = WorkspaceFactory()
    foreign = make_program(other, slug="foreign-vpp")
    owner = staff_user("owner", other, Role.PROGRAM_LEAD)
    launch_criterion_sign_off(program=foreign, criterion=C.OPS_TRAINED, actor=owner)
    # their sign-off is theirs: our program's checklist does not see it
    assert not state_of(program, C.OPS_TRAINED).met
    for name in ("admin:programs_program_sign_off", "admin:programs_program_revoke_sign_off"):
        assert lead_client.post(reverse(name, args=[foreign.pk, "ops_trained"])).status_code == 404
    assert lead_client.get(reverse("admin:programs_program_change", args=[foreign.pk])).status_code == 404
    assert LaunchCriterionSignOff.objects.get().program == foreign  # untouched
    client = api_client_for(program.workspace)
    assert_error(client.get("/v1/programs/foreign-vpp/launch-checklist"), 404)


# -- API -------------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_cache")
def test_launch_checklist_api(program, lead):
    reporting(enrolled_devices(program, 2))
    launch_criterion_sign_off(program=program, criterion=C.OPS_TRAINED, actor=lead, note="Done")
    body = api_client_for(program.workspace).get(f"/v1/programs/{program.slug}/launch-checklist").json()
    assert (body["programId"], body["programSlug"], body["phase"]) == (program.pk, program.slug, "kickoff")
    assert (body["metCount"], body["criteriaCount"], body["allMet"]) == (3, 16, False)
    assert [p["phase"] for p in body["phases"]] == PHASE_ORDER
    assert body["phases"][0]["current"] is True
    by_key = {c["key"]: c for p in body["phases"] for c in p["criteria"]}
    assert by_key["fleet_reporting"] == {
        "key": "fleet_reporting",
        "label": "Enough of the fleet reporting telemetry (Device on Workspace)",
        "kind": "measured",
        "met": True,
        "figure": "2 of 2 enrolled devices reporting (100 %, target 80 %).",
        "measurement": {
            "count": 2,
            "total": 2,
            "targetPercent": 80,
            "threshold": None,
            "dispatchEventId": None,
            "at": None,
        },
        "signOff": None,
    }
    ops = by_key["ops_trained"]
    assert ops["kind"] == "sign_off" and ops["met"] and ops["measurement"] is None
    assert ops["signOff"]["signedOffBy"] == "lead" and ops["signOff"]["note"] == "Done"
    assert "The program is in “Kickoff & prerequisites”, not launched." in body["productionDispatchBlockers"]
