"""Alerts: raising (one live alert per cause, also under concurrency), the status workflow and snooze, each rule
that raises and resolves them, the `alert.*` events and the e-mail."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from fleet.choices import AlertSeverity, AlertStatus, AlertSubtype, AlertType, DeviceState
from fleet.models import Alert, AlertNotificationSetting
from fleet.services import (
    AlertRaise,
    alert_change_status,
    alert_raise,
    alert_snooze,
    alert_snoozes_expire,
    alerts_raise,
    alerts_resolve,
    device_mark_offline,
    device_mark_on_workspace,
    device_mark_registered,
    telemetry_stuck_alerts_evaluate,
)
from tests.dispatch.test_engine import accept, end_event, live_device, reading, running_event
from tests.factories import DeviceFactory, TelemetryReadingFactory, WorkspaceFactory, staff_user
from texture_portal.choices import AuditAction, Role
from texture_portal.events.models import PlatformEvent
from texture_portal.exceptions import ApplicationError, InvalidTransition
from texture_portal.models import AuditLogEntry

pytestmark = pytest.mark.django_db


def offline_alert(**overrides) -> AlertRaise:
    return AlertRaise(
        **{
            "cause": "test:cause",
            "type": AlertType.COMMUNICATIONS,
            "subtype": AlertSubtype.DEVICE_OFFLINE,
            "severity": AlertSeverity.WARNING,
            "title": "Something is wrong",
            "description": "first",
            **overrides,
        }
    )


def assert_announced(alert):
    """alert.created when it was raised, and alert.updated saying so when it was resolved."""
    assert [e.key for e in alert_events(alert, "alert.created")] == [f"alert.created:{alert.pk}"]
    if alert.status == "RESOLVED":
        resolved = [
            e for e in alert_events(alert, "alert.updated") if e.data["changes"].get("status", [0, 0])[1] == "RESOLVED"
        ]
        assert len(resolved) == 1 and resolved[0].data["resolvedBy"] == alert.resolved_by_label


def alert_events(alert, type_=None):
    events = PlatformEvent.objects.filter(workspace_id=alert.workspace_id, data__id=alert.pk)
    events = events.filter(type__startswith="alert.")
    return list(events.filter(type=type_) if type_ else events.order_by("id"))


@pytest.fixture
def device():
    return DeviceFactory(name="Garage Powerwall", oem_device_id="1689", oem_data={"model": "Powerwall 3"})


@pytest.fixture
def mailed(settings, device):
    """The device's workspace mails every alert to ops@ (Django's locmem outbox in tests)."""
    AlertNotificationSetting.objects.create(workspace=device.workspace, email="ops@utility.example")
    return device


# -- raising and dedupe ---------------------------------------------------------------------------------------


def test_raising_makes_an_open_alert_with_the_device_snapshot_audited_and_announced(device):
    assert alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk)) is True
    alert = Alert.objects.get()
    assert (alert.status, alert.severity, alert.type, alert.subtype) == (
        "OPEN",
        "WARNING",
        "COMMUNICATIONS",
        "DEVICE_OFFLINE",
    )
    assert (alert.device_id, alert.site_id) == (device.pk, device.site_id)
    assert alert.manufacturer_device_id == "1689" and alert.device_name == "Garage Powerwall"
    assert alert.device_model == "Powerwall 3" and alert.device_type == "battery"
    assert alert.device_serial_number == device.system_identifier and alert.manufacturer == "Tesla"
    assert alert.raise_count == 1 and alert.source_system == "fleet"
    assert AuditLogEntry.objects.filter(action=AuditAction.ALERT_RAISED, object_id=str(alert.pk)).count() == 1
    [event] = alert_events(alert)
    assert event.type == "alert.created" and event.key == f"alert.created:{alert.pk}"
    assert event.data["deviceSerialNumber"] == device.system_identifier and event.data["status"] == "OPEN"


def test_raising_again_while_live_counts_on_the_same_alert(device):
    first = timezone.now() - timedelta(minutes=10)
    assert alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk), at=first)
    later = offline_alert(device_id=device.pk, description="second")
    assert alert_raise(workspace_id=device.workspace_id, alert=later) is False
    alert = Alert.objects.get()
    assert alert.raise_count == 2 and alert.description == "second" and alert.last_seen_at > first
    assert len(alert_events(alert)) == 1  # a count, not news: no second event
    # acknowledged or ignored, it is still the live one
    alert_change_status(alert=alert, status="ACKNOWLEDGED", actor=None)
    alert_raise(workspace_id=device.workspace_id, alert=later)
    alert_change_status(alert=alert, status="IGNORED", actor=None)
    alert_raise(workspace_id=device.workspace_id, alert=later)
    assert Alert.objects.get().raise_count == 4


def test_a_resolved_alert_is_final_and_the_cause_coming_back_is_a_new_alert(device):
    alert_raise(workspace_id=device.workspace_id, alert=offline_alert())
    assert len(alerts_resolve(workspace_id=device.workspace_id, causes=["test:cause"], reason="fixed")) == 1
    alert_raise(workspace_id=device.workspace_id, alert=offline_alert())
    assert list(Alert.objects.order_by("pk").values_list("status", flat=True)) == ["RESOLVED", "OPEN"]
    with pytest.raises(InvalidTransition):
        alert_change_status(alert=Alert.objects.order_by("pk").first(), status="OPEN", actor=None)


def test_the_database_holds_one_live_alert_per_cause(device):
    from django.db import IntegrityError, transaction

    alert_raise(workspace_id=device.workspace_id, alert=offline_alert())
    row = Alert.objects.values().get()
    row.pop("id")
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(**{**row, "status": "IGNORED", "ignored_at": timezone.now()})
    Alert.objects.create(**{**row, "status": "RESOLVED", "resolved_at": timezone.now()})  # history is free
    other = WorkspaceFactory()
    alert_raise(workspace_id=other.pk, alert=offline_alert())  # the same cause in another workspace
    assert Alert.objects.filter(cause="test:cause").count() == 3


def test_many_alerts_are_raised_in_one_statement_per_batch(device, django_assert_max_num_queries):
    others = [DeviceFactory(site=device.site) for _ in range(5)]
    specs = [offline_alert(cause=f"test:{d.pk}", device_id=d.pk) for d in [device, *others]]
    # devices, upsert, the new rows, audit, events, (savepoints)
    with django_assert_max_num_queries(8):
        created = alerts_raise(workspace_id=device.workspace_id, alerts=specs)
    assert len(created) == 6
    with django_assert_max_num_queries(4):
        assert alerts_raise(workspace_id=device.workspace_id, alerts=specs) == []
    assert set(Alert.objects.values_list("raise_count", flat=True)) == {2}


def test_an_alert_names_only_devices_and_sites_of_its_workspace(device):
    from texture_portal.exceptions import WorkspaceMismatch

    with pytest.raises(WorkspaceMismatch):
        alert_raise(workspace_id=WorkspaceFactory().pk, alert=offline_alert(device_id=device.pk))
    with pytest.raises(WorkspaceMismatch):
        alert_raise(workspace_id=WorkspaceFactory().pk, alert=offline_alert(site_id=device.site_id))
    assert not Alert.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_raising_one_cause_at_once_make_one_row(reference_data):
    device = DeviceFactory()
    barrier = threading.Barrier(6)
    outcomes = []

    def raise_it():
        try:
            barrier.wait()
            outcomes.append(alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 5 + [True]
    alert = Alert.objects.get()
    assert alert.raise_count == 6
    assert PlatformEvent.objects.filter(type="alert.created").count() == 1


# -- status workflow and snooze --------------------------------------------------------------------------------


def test_staff_acknowledge_then_resolve_with_who_and_when_audited_and_announced(device):
    ops = staff_user("olga", device.workspace, Role.OPS)
    alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk))
    alert = Alert.objects.get()
    alert_change_status(alert=alert, status=AlertStatus.ACKNOWLEDGED, actor=ops, reason="looking")
    assert alert.status == "ACKNOWLEDGED" and alert.acknowledged_by == ops and alert.acknowledged_by_label == "olga"
    assert alert.acknowledged_at is not None
    alert_change_status(alert=alert, status=AlertStatus.RESOLVED, actor=ops)
    assert (alert.status, alert.resolved_by_label) == ("RESOLVED", "olga") and alert.resolved_at is not None
    audit = AuditLogEntry.objects.filter(action=AuditAction.ALERT_STATUS_CHANGED, object_id=str(alert.pk))
    assert [(e.actor_label, e.changes["status"]) for e in audit.order_by("event_time", "id")] == [
        ("olga", ["OPEN", "ACKNOWLEDGED"]),
        ("olga", ["ACKNOWLEDGED", "RESOLVED"]),
    ]
    updated = alert_events(alert, "alert.updated")
    assert sorted(e.data["changes"]["status"][1] for e in updated) == ["ACKNOWLEDGED", "RESOLVED"]
    assert {e.data["acknowledgedBy"] for e in updated} == {"olga"}


def test_transitions_are_checked_in_one_place(device):
    alert_raise(workspace_id=device.workspace_id, alert=offline_alert())
    alert = Alert.objects.get()
    alert_change_status(alert=alert, status="IGNORED", actor=None)
    with pytest.raises(InvalidTransition):
        alert_change_status(alert=alert, status="ACKNOWLEDGED", actor=None)
    alert_change_status(alert=alert, status="OPEN", actor=None)  # reopened: who ignored it is cleared
    assert alert.status == "OPEN" and alert.ignored_at is None and alert.ignored_by_label == ""
    alert_change_status(alert=alert, status="ACKNOWLEDGED", actor=None)
    with pytest.raises(InvalidTransition):
        alert_change_status(alert=alert, status="OPEN", actor=None)


def test_a_snoozed_alert_needs_no_attention_and_is_not_mailed_until_its_snooze_runs_out(
    mailed, django_capture_on_commit_callbacks
):
    from fleet.selectors import alerts_needing_attention_q

    device = mailed
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk))
    assert len(mail.outbox) == 1
    alert = Alert.objects.get()
    alert_snooze(alert=alert, until=timezone.now() + timedelta(hours=24), actor=None)
    assert not Alert.objects.filter(alerts_needing_attention_q()).exists()
    assert alert_events(alert, "alert.updated")[0].data["changes"]["snoozedUntil"][0] is None
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk))  # still wrong
        assert alert_snoozes_expire() == 0  # not yet
    assert len(mail.outbox) == 1

    with django_capture_on_commit_callbacks(execute=True):
        assert alert_snoozes_expire(now=timezone.now() + timedelta(hours=25)) == 1
    alert.refresh_from_db()
    assert alert.snoozed_until is None and alert.status == "OPEN"
    assert Alert.objects.filter(alerts_needing_attention_q()).get() == alert
    assert len(mail.outbox) == 2 and "Something is wrong" in mail.outbox[1].subject
    woke = [e for e in alert_events(alert, "alert.updated") if ":woke:" in e.key]
    assert len(woke) == 1 and woke[0].data["changes"]["snoozedUntil"][1] is None
    assert alert_snoozes_expire(now=timezone.now() + timedelta(hours=26)) == 0  # twice: nothing left


def test_snoozing_is_for_live_alerts_and_a_bounded_time(device):
    alert_raise(workspace_id=device.workspace_id, alert=offline_alert())
    alert = Alert.objects.get()
    with pytest.raises(ApplicationError, match="future"):
        alert_snooze(alert=alert, until=timezone.now() - timedelta(minutes=1), actor=None)
    with pytest.raises(ApplicationError, match="30 days"):
        alert_snooze(alert=alert, until=timezone.now() + timedelta(days=31), actor=None)
    alert_snooze(alert=alert, until=timezone.now() + timedelta(hours=1), actor=None)
    alert_change_status(alert=alert, status="IGNORED", actor=None)
    assert alert.snoozed_until is None  # ignoring ends the snooze
    with pytest.raises(ApplicationError, match="open or acknowledged"):
        alert_snooze(alert=alert, until=timezone.now() + timedelta(hours=1), actor=None)


# -- e-mail -----------------------------------------------------------------------------------------------------


def test_a_new_alert_is_mailed_after_commit_to_the_workspace_address(mailed, django_capture_on_commit_callbacks):
    device = mailed
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk))
    assert mail.outbox == []  # nothing before commit
    for callback in callbacks:
        callback()
    [message] = mail.outbox
    assert message.to == ["ops@utility.example"]
    assert message.subject == "[Texture Portal] WARNING: Something is wrong"
    alert = Alert.objects.get()
    assert device.system_identifier in message.body and f"/admin/fleet/alert/{alert.pk}/change/" in message.body
    assert alert.notified_at is not None
    # the task run again (a redelivery) mails nothing twice; raising again is not news either
    from fleet.services import alerts_mail

    assert alerts_mail(alert_ids=[alert.pk]) == 0
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk))
    assert len(mail.outbox) == 1


def test_only_the_chosen_types_and_severities_are_mailed_in_one_message(mailed, django_capture_on_commit_callbacks):
    device = mailed
    AlertNotificationSetting.objects.update(alert_types=["COMMUNICATIONS", "DISPATCH"], severities=["CRITICAL"])
    with django_capture_on_commit_callbacks(execute=True):
        alerts_raise(
            workspace_id=device.workspace_id,
            alerts=[
                offline_alert(cause="a", severity="CRITICAL", title="Critical comms"),
                offline_alert(cause="b", severity="CRITICAL", type="DISPATCH", title="Critical dispatch"),
                offline_alert(cause="c", severity="WARNING", title="Warning comms"),
                offline_alert(cause="d", severity="CRITICAL", type="INTEGRATION", title="Critical integration"),
            ],
        )
    [message] = mail.outbox
    assert message.subject.startswith("[Texture Portal] 2 alerts in ")
    assert "Critical comms" in message.body and "Critical dispatch" in message.body
    assert "Warning comms" not in message.body and "Critical integration" not in message.body
    # no setting, or an inactive one: nothing
    AlertNotificationSetting.objects.update(is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(workspace_id=device.workspace_id, alert=offline_alert(cause="e", severity="CRITICAL"))
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(workspace_id=WorkspaceFactory().pk, alert=offline_alert(cause="f", severity="CRITICAL"))
    assert len(mail.outbox) == 1


def test_a_failed_send_gives_the_claim_back_for_the_retry(mailed, monkeypatch):
    from django.core.mail.backends.locmem import EmailBackend

    from fleet.services import alerts_mail

    device = mailed
    alert_raise(workspace_id=device.workspace_id, alert=offline_alert(device_id=device.pk))
    alert = Alert.objects.get()

    def refuse(self, messages):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    with pytest.raises(ConnectionRefusedError):
        alerts_mail(alert_ids=[alert.pk])
    alert.refresh_from_db()
    assert alert.notified_at is None
    monkeypatch.undo()
    assert alerts_mail(alert_ids=[alert.pk]) == 1


# -- the rules -----------------------------------------------------------------------------------------------------


def test_offline_rule_raises_when_the_device_goes_offline_and_resolves_when_it_reports(device):
    device_mark_on_workspace(device=device, reason="found")
    device_mark_offline(device=device, reason="No telemetry since 10:05 (offline after 3×).")
    alert = Alert.objects.get()
    assert (alert.subtype, alert.type, alert.severity, alert.device_id) == (
        "DEVICE_OFFLINE",
        "COMMUNICATIONS",
        "WARNING",
        device.pk,
    )
    assert alert.description.startswith("No telemetry since") and device.system_identifier in alert.title
    assert [e.type for e in alert_events(alert)] == ["alert.created"]
    device_mark_on_workspace(device=device, reason="Reporting again.")
    alert.refresh_from_db()
    assert (alert.status, alert.resolved_by_label, alert.resolved_by) == ("RESOLVED", "system", None)
    assert_announced(alert)
    [updated] = alert_events(alert, "alert.updated")
    assert updated.data["changes"] == {"status": ["OPEN", "RESOLVED"]} and updated.data["resolvedBy"] == "system"
    # offline again: a new occurrence; unbound at the OEM (offline → registered) clears it too
    device_mark_offline(device=device, reason="No telemetry again.")
    device_mark_registered(device=device, reason="Unbound at the OEM.")
    assert list(Alert.objects.order_by("pk").values_list("status", flat=True)) == ["RESOLVED", "RESOLVED"]


def test_offline_rule_resolves_when_telemetry_brings_the_device_back(device):
    from fleet.services import telemetry_ingest
    from integrations.adapters.base import TelemetrySnapshot

    device_mark_on_workspace(device=device, reason="found")
    device_mark_offline(device=device, reason="quiet")
    snapshot = TelemetrySnapshot(measured_at=timezone.now(), charge_percentage=50.0)
    telemetry_ingest(workspace_id=device.workspace_id, readings=[(device.pk, snapshot)])
    alert = Alert.objects.get()
    assert alert.status == "RESOLVED" and alert.resolved_by_label == "system"
    assert_announced(alert)


def stuck_readings(device, *, hours=6, every=timedelta(minutes=20), **values):
    now = timezone.now()
    at = now - timedelta(hours=hours)
    while at <= now:
        TelemetryReadingFactory(device=device, measured_at=at, **values)
        at += every


def test_stuck_telemetry_rule_raises_for_unchanging_readings_and_resolves_when_they_change(settings, device):
    settings.ALERT_STUCK_TELEMETRY_HOURS, settings.ALERT_STUCK_TELEMETRY_READINGS = 6, 12
    device.state = DeviceState.ON_WORKSPACE
    device.save()
    stuck_readings(device)  # the factory's values, every 20 minutes for 6 hours
    moving = DeviceFactory(site=device.site, state=DeviceState.ON_WORKSPACE)
    stuck_readings(moving)
    TelemetryReadingFactory(device=moving, measured_at=timezone.now() - timedelta(minutes=7), grid_power_w=812.0)
    parked = DeviceFactory(site=device.site, state=DeviceState.ON_WORKSPACE, device_type="vehicle")
    stuck_readings(parked)  # a parked car: not checked
    young = DeviceFactory(site=device.site, state=DeviceState.ON_WORKSPACE)
    stuck_readings(young, hours=1, every=timedelta(minutes=5))  # 13 readings, but only an hour of them

    assert telemetry_stuck_alerts_evaluate() == {"stuck": 1, "new": 1, "resolved": 0}
    alert = Alert.objects.get()
    assert (alert.device_id, alert.subtype) == (device.pk, "TELEMETRY_STUCK") and alert.raise_count == 1
    assert telemetry_stuck_alerts_evaluate() == {"stuck": 1, "new": 0, "resolved": 0}  # run again: counted
    assert Alert.objects.get().raise_count == 2

    TelemetryReadingFactory(device=device, measured_at=timezone.now() - timedelta(seconds=30), grid_power_w=640.0)
    assert telemetry_stuck_alerts_evaluate() == {"stuck": 0, "new": 0, "resolved": 1}
    alert.refresh_from_db()
    assert alert.status == "RESOLVED" and alert.resolved_by_label == "system"
    assert_announced(alert)


def test_stuck_telemetry_rule_is_a_constant_number_of_statements(settings, device, django_assert_max_num_queries):
    settings.ALERT_STUCK_TELEMETRY_HOURS, settings.ALERT_STUCK_TELEMETRY_READINGS = 6, 12
    Alert.objects.all().delete()
    for _ in range(4):
        stuck_readings(DeviceFactory(site=device.site, state=DeviceState.ON_WORKSPACE))
    # the scan, the devices, the upsert, the new rows, the content type, audit, events, the watched, savepoints
    with django_assert_max_num_queries(12):
        assert telemetry_stuck_alerts_evaluate()["new"] == 4


def test_import_rule_raises_when_an_import_fails_and_resolves_when_a_later_one_succeeds(monkeypatch):
    from fleet.importing import services as importing
    from fleet.importing.services import import_job_apply, import_job_create, import_job_validate
    from tests.factories import make_program

    workspace = WorkspaceFactory()
    make_program(workspace, slug="vpp")
    header = (
        "referenceId,firstName,lastName,streetOne,city,state,postalCode,manufacturerSlug,systemIdentifier,programSlug"
    )
    data = f"{header}\nACCT-1,Ana,Ruiz,1 Pine St,Bend,OR,97701,tesla,TG-0001,vpp\n".encode()

    def run():
        job = import_job_create(workspace=workspace, filename="fleet.csv", data=data, actor=None)
        import_job_validate(job=job)
        job.refresh_from_db()
        return import_job_apply(job=job, actor=None)

    real = importing.apply_fleet_import
    monkeypatch.setattr(importing, "apply_fleet_import", lambda **kw: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        run()
    alert = Alert.objects.get()
    assert (alert.subtype, alert.status, alert.device_id) == ("IMPORT_FAILED", "OPEN", None)
    assert "disk full" in alert.description and alert.subject_ref.startswith("import_job:")
    monkeypatch.setattr(importing, "apply_fleet_import", real)
    assert run().status == "imported"
    alert.refresh_from_db()
    assert (
        alert.status == "RESOLVED"
        and "succeeded"
        in AuditLogEntry.objects.filter(action=AuditAction.ALERT_STATUS_CHANGED, object_id=str(alert.pk)).get().reason
    )
    assert_announced(alert)


# -- the rules of dispatch and integrations (raised through the fleet's services) -----------------------------


@pytest.fixture
def program():
    """A program whose strategy allows every action, with the integrations its devices need (as
    tests/dispatch/test_engine.py sets it up)."""
    from integrations.models import WorkspaceIntegration
    from programs.services import event_strategy_create_version
    from tests.factories import make_program

    workspace = WorkspaceFactory()
    program = make_program(workspace)
    event_strategy_create_version(
        program=program,
        data={"allowed_event_types": ["charge", "discharge", "idle"], "min_soc_percent": 20, "ramp_minutes": 10},
        actor=None,
    )
    for channel in ("tesla", "emporia"):
        WorkspaceIntegration.objects.create(workspace=workspace, channel=channel, enabled=True, credentials={})
    return program


def send(command, status, reason=""):
    from dispatch.services import command_set_status

    command_set_status(command=command, status="sent")
    return command_set_status(command=command, status=status, reason=reason)


def new_command(device, key):
    from dispatch.services import command_create

    return command_create(
        device=device, slug="battery:set-reserve", input={"chargePercentage": 30}, idempotency_key=key, actor=None
    )


def test_command_rule_raises_when_a_command_fails_and_resolves_when_a_later_one_succeeds(device):
    failed = send(new_command(device, "a"), "failed", "Tesla: device offline (5 attempts)")
    alert = Alert.objects.get()
    assert (alert.type, alert.subtype, alert.device_id, alert.source_system) == (
        "DISPATCH",
        "COMMAND_FAILED",
        device.pk,
        "dispatch",
    )
    assert f"Command #{failed.pk}" in alert.description and "device offline" in alert.description
    assert alert.subject_ref == f"command:{failed.pk}"
    send(new_command(device, "b"), "failed", "again")  # the same device: counted on the same alert
    assert Alert.objects.get().raise_count == 2
    other = DeviceFactory(site=device.site)
    send(new_command(other, "c"), "success")  # another device's success changes nothing
    assert Alert.objects.get().status == "OPEN"
    send(new_command(device, "d"), "success")
    alert.refresh_from_db()
    assert (alert.status, alert.resolved_by_label) == ("RESOLVED", "system")
    assert [e.type for e in alert_events(alert)] == ["alert.created", "alert.updated"]
    assert_announced(alert)


def test_not_responding_rule_raises_per_device_and_resolves_when_it_confirms_or_the_event_is_over(program, settings):
    from dispatch import engine
    from dispatch.models import Participation

    settings.DISPATCH_CONFIRM_WINDOW_MINUTES = 15
    slow, silent = live_device(program), live_device(program)
    event = running_event(program)
    engine.dispatch_tick()
    accept(event, slow), accept(event, silent)
    Participation.objects.filter(event=event).update(commanded_at=timezone.now() - timedelta(minutes=18))
    reading(slow, age=timedelta(0), charge_rate_w=0.0), reading(silent, age=timedelta(0), charge_rate_w=0.0)
    engine.dispatch_tick()
    alerts = {a.device_id: a for a in Alert.objects.filter(subtype="DEVICE_NOT_RESPONDING")}
    assert set(alerts) == {slow.pk, silent.pk}
    assert alerts[slow.pk].description.startswith("Not responding — accepted by the OEM")
    assert alerts[slow.pk].subject_ref == f"dispatch_event:{event.pk}"

    reading(slow, age=timedelta(0), charge_rate_w=3000.0)  # it came round after all
    engine.dispatch_tick()
    assert Alert.objects.get(device=slow).status == "RESOLVED"
    assert Alert.objects.get(device=silent).status == "OPEN"

    end_event(event)
    engine.dispatch_tick()
    from dispatch.models import Command

    for restore in Command.objects.filter(dispatch_event=event, purpose="restore"):
        send(restore, "success")
    engine.dispatch_tick()
    event.refresh_from_db()
    assert event.status == "completed"
    silent_alert = Alert.objects.get(device=silent)
    assert silent_alert.status == "RESOLVED" and silent_alert.resolved_by_label == "system"
    assert_announced(silent_alert), assert_announced(Alert.objects.get(device=slow))


def test_participation_rule_raises_below_the_strategys_floor_and_judges_again_at_completion(program):
    from dispatch import engine
    from dispatch.models import Command
    from programs.services import event_strategy_create_version

    event_strategy_create_version(program=program, data={"participation_floor_percent": 60}, actor=None)
    taking_part = live_device(program)
    live_device(program, charge_percentage=10.0)  # below the discharge floor: excluded
    event = running_event(program)  # a test event
    engine.dispatch_tick()
    alert = Alert.objects.get(subtype="PARTICIPATION_BELOW_FLOOR")
    assert (alert.severity, alert.type, alert.device_id) == ("WARNING", "DISPATCH", None)
    assert "1 of 2 targeted devices (50 %)" in alert.description and "floor is 60 %" in alert.description
    assert alert.subject_ref == f"dispatch_event:{event.pk}" and event.name in alert.subject_label

    accept(event, taking_part)
    end_event(event)
    engine.dispatch_tick()
    for restore in Command.objects.filter(dispatch_event=event, purpose="restore"):
        send(restore, "success")
    engine.dispatch_tick()
    alert.refresh_from_db()
    assert alert.status == "OPEN" and "At completion: 0 of 2" in alert.description and alert.raise_count == 2
    assert_announced(alert)  # counted again at completion: no second alert.created


def test_participation_rule_resolves_at_or_above_the_floor_and_when_the_event_is_cancelled(program):
    from dispatch import engine
    from dispatch.services import dispatch_event_cancel
    from programs.services import event_strategy_create_version

    event_strategy_create_version(program=program, data={"participation_floor_percent": 50}, actor=None)
    live_device(program)
    live_device(program, charge_percentage=10.0)
    event = running_event(program)
    engine.dispatch_tick()
    assert not Alert.objects.exists()  # 1 of 2 = the floor: fine
    second = running_event(program, start_ago=timedelta(seconds=30))  # its devices are busy in the first
    engine.dispatch_tick()
    alert = Alert.objects.get(subject_ref=f"dispatch_event:{second.pk}")
    assert alert.status == "OPEN" and "0 of 2 targeted devices" in alert.description
    assert_announced(alert)
    dispatch_event_cancel(event=second, actor=None, reason="storm")
    alert.refresh_from_db()
    assert alert.status == "RESOLVED"
    reason = AuditLogEntry.objects.get(action=AuditAction.ALERT_STATUS_CHANGED, object_id=str(alert.pk)).reason
    assert reason == f"Dispatch event #{second.pk} “{second.name}” is cancelled."
    assert_announced(alert)
    assert Alert.objects.filter(subject_ref=f"dispatch_event:{event.pk}").count() == 0


def test_no_floor_no_participation_alert(program):
    from dispatch import engine

    live_device(program, charge_percentage=10.0)
    running_event(program)
    engine.dispatch_tick()
    assert not Alert.objects.exists()


def test_credentials_rule_raises_when_the_oem_refuses_them_and_resolves_when_they_work_again(settings):
    from integrations import services as integrations
    from texture_portal.testing.simulator import demo_credentials, running_simulator

    settings.OEM_RATE_LIMIT_REDIS_URL = None
    with running_simulator() as sim:
        settings.OEM_BASE_URLS = sim.base_urls()
        workspace = WorkspaceFactory()
        sim.state.add_device("emporia", "A299999999", kind="charger")
        save = integrations.workspace_integration_save
        integration = save(workspace=workspace, channel="emporia", actor=None, enabled=True, credentials={
            "username": "demo", "password": "nope"
        })  # fmt: skip
        assert integrations.integration_test_connection(integration=integration, actor=None).startswith("Connection")
        alert = Alert.objects.get()
        assert (alert.type, alert.subtype, alert.severity) == ("INTEGRATION", "CREDENTIALS_REFUSED", "CRITICAL")
        assert alert.subject_ref == f"integration:{integration.pk}" and alert.source_system == "integrations"
        assert "Incorrect username or password" in alert.description
        integration = save(workspace=workspace, channel="emporia", actor=None, credentials=demo_credentials("emporia"))
        assert Alert.objects.get().status == "OPEN"  # new credentials are not working credentials yet
        assert integrations.integration_test_connection(integration=integration, actor=None).startswith("Connected")
        alert.refresh_from_db()
        assert alert.status == "RESOLVED" and alert.resolved_by_label == "system"
        assert_announced(alert)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_stuck_telemetry_runs_at_once_raise_one_alert(reference_data, settings):
    from django.db import transaction

    settings.ALERT_STUCK_TELEMETRY_HOURS, settings.ALERT_STUCK_TELEMETRY_READINGS = 6, 12
    device = DeviceFactory(state=DeviceState.ON_WORKSPACE)
    stuck_readings(device)
    barrier = threading.Barrier(3)
    outcomes = []

    def evaluate():
        try:
            with transaction.atomic():
                barrier.wait()
                outcomes.append(telemetry_stuck_alerts_evaluate())
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(o.get("new", 0) for o in outcomes) == 1  # the others stepped aside or counted on it
    assert Alert.objects.filter(subtype="TELEMETRY_STUCK").count() == 1
