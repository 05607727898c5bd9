"""Sending commands through the device's OEM adapter (simulator over HTTP)."""

import pytest

from dispatch.models import Command
from dispatch.services import command_create, command_send
from integrations import services
from tests.factories import TelemetryReadingFactory, WorkspaceFactory
from tests.integrations.conftest import sim  # noqa: F401 - fixture
from tests.integrations.test_services import make_device, make_integration
from texture_portal.events.models import PlatformEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def live_tesla(sim):  # noqa: F811
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    sim.state.add_device("tesla", "TG100000000901", kind="battery", soc=50.0)
    device = make_device(workspace, "tesla", "TG100000000901")
    services.discovery_run(integration=integration)
    device.refresh_from_db()
    return workspace, integration, device


def new_command(device, slug="battery:set-operating-mode", payload=None, key="k1"):
    return command_create(
        device=device,
        slug=slug,
        input=payload or {"operatingMode": "charge"},
        idempotency_key=key,
        actor=None,
    )


def test_command_reaches_the_oem_and_changes_what_it_reports(sim, live_tesla):  # noqa: F811
    workspace, integration, device = live_tesla
    command = command_send(command=new_command(device))
    assert command.status == "success" and command.attempts == 1
    assert sim.state.device("tesla", "TG100000000901").mode == "backup"
    assert PlatformEvent.objects.filter(type="command.succeeded", data__id=command.pk).exists()
    # idempotent: a second send (a redelivered task) does nothing
    requests_before = sim.state.request_count
    assert command_send(command=command).status == "success"
    assert sim.state.request_count == requests_before


def test_command_skipped_while_storm_guard_holds_the_battery(sim, live_tesla):  # noqa: F811
    workspace, integration, device = live_tesla
    reading = TelemetryReadingFactory(device=device, is_storm_mode_active=True)
    device.latest_telemetry = reading
    device.save(update_fields=["latest_telemetry"])
    command = command_send(command=new_command(device))
    assert command.status == "skipped" and "Storm Guard" in command.status_reason
    assert sim.state.device("tesla", "TG100000000901").mode == "self_consumption"


def test_command_skipped_when_the_integration_is_disabled(sim, live_tesla):  # noqa: F811
    workspace, integration, device = live_tesla
    services.workspace_integration_save(workspace=workspace, channel="tesla", actor=None, enabled=False)
    command = command_send(command=new_command(device))
    assert command.status == "skipped" and "not enabled" in command.status_reason


def test_transient_failure_leaves_it_leased_until_its_retry_then_fails_on_the_last(
    sim,  # noqa: F811
    live_tesla,
    settings,
    monkeypatch,
):
    from datetime import timedelta

    from django.utils import timezone

    from integrations.adapters import base

    settings.DISPATCH_COMMAND_MAX_ATTEMPTS = 2
    monkeypatch.setattr(base, "backoff_seconds", lambda attempt, retry_after=None: 30.0)  # no jitter to 0 s
    workspace, integration, device = live_tesla
    command = new_command(device, slug="battery:set-reserve", payload={"chargePercentage": 40})
    sim.state.inject("tesla", "TG100000000901", "server_error", status=503, times=2)
    waiting = command_send(command=command, owner="task-1")
    assert waiting.status == "sent" and waiting.attempts == 1 and "503" in waiting.status_reason
    assert waiting.lease_until > timezone.now()  # its backoff: nobody takes it before
    # another delivery while it waits for its retry finds it leased and sends nothing
    requests = sim.state.request_count
    assert command_send(command=command, owner="task-2").status == "sent"
    assert sim.state.request_count == requests and Command.objects.get(pk=command.pk).attempts == 1
    # the backoff over, the hand-off gives it to a worker again: its last attempt fails it
    Command.objects.filter(pk=command.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    failed = command_send(command=command, owner="task-3")
    assert failed.status == "failed" and "503" in failed.status_reason and failed.attempts == 2
    assert PlatformEvent.objects.filter(type="command.failed", data__id=command.pk).exists()


def test_a_command_waiting_for_its_retry_is_handed_again_once_when_its_backoff_is_over(
    sim,  # noqa: F811
    live_tesla,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from datetime import timedelta

    from django.utils import timezone

    from dispatch import engine
    from dispatch.tasks import commands_send_task

    workspace, integration, device = live_tesla
    command = new_command(device, slug="battery:set-reserve", payload={"chargePercentage": 40})
    sim.state.inject("tesla", "TG100000000901", "rate_limit", retry_after=30, times=1)
    waiting = command_send(command=command, owner="task-1")
    assert waiting.status == "sent" and waiting.lease_until >= timezone.now() + timedelta(seconds=29)  # Retry-After
    handed = []
    monkeypatch.setattr(commands_send_task, "apply_async", lambda args, *_, **kwargs: handed.append(args[0]))

    def hand_off():
        with django_capture_on_commit_callbacks(execute=True):
            return engine.commands_queue_due(now=timezone.now())

    assert hand_off() == 0  # still backing off
    Command.objects.filter(pk=command.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert hand_off() == 1 and handed == [[command.pk]]
    assert hand_off() == 0  # handed: not again until that batch had its time
    retried = command_send(command=command, owner="the-batch")
    assert retried.status == "success" and retried.attempts == 2
    assert sim.state.device("tesla", "TG100000000901").reserve == 40


def test_rejected_by_the_oem_is_failed_with_its_reason(sim, live_tesla):  # noqa: F811
    workspace, integration, device = live_tesla
    sim.state.device("tesla", "TG100000000901").storm_enabled = True
    sim.state.set_storm("tesla", "TG100000000901", True)
    # Storm Watch just started and no reading says so yet: Tesla itself refuses the mode change
    command = command_send(command=new_command(device, payload={"operatingMode": "discharge"}))
    assert command.status == "failed" and "Storm Watch is active" in command.status_reason
    assert Command.objects.get(pk=command.pk).completed_at is not None


def test_task_contract(sim, live_tesla):  # noqa: F811
    from dispatch.tasks import command_send_task

    workspace, integration, device = live_tesla
    command = new_command(device, payload={"operatingMode": "idle"})
    assert command_send_task.delay(command.pk).get() == "success"
    simulated = sim.state.device("tesla", "TG100000000901")
    assert simulated.mode == "self_consumption" and simulated.reserve == round(simulated.soc)


def test_a_channel_without_an_adapter_fails_the_command_instead_of_leaving_it_sent(
    sim,  # noqa: F811
    live_tesla,
    monkeypatch,
):
    from integrations.adapters import registry

    workspace, integration, device = live_tesla
    monkeypatch.delitem(registry.ADAPTERS, "tesla")
    command = command_send(command=new_command(device))
    assert command.status == "failed" and "No adapter" in command.status_reason
    assert command.completed_at is not None


def test_an_unexpected_error_fails_the_command_and_keeps_the_rotated_token(
    sim,  # noqa: F811
    live_tesla,
    monkeypatch,
):
    from integrations.tesla.adapter import TeslaAdapter

    workspace, integration, device = live_tesla
    # a fresh login: the next call refreshes (and spends) the refresh token
    integration.credentials = {k: v for k, v in integration.credentials.items() if k != "access_token"}
    integration.save(update_fields=["credentials"])
    spent = integration.credentials["refresh_token"]
    real_send = TeslaAdapter.send_command

    def send_command(self, ref, slug, payload):
        real_send(self, ref, slug, payload)
        raise KeyError("code")  # a malformed answer the adapter did not map

    monkeypatch.setattr(TeslaAdapter, "send_command", send_command)
    command = command_send(command=new_command(device), final_attempt=False)  # not retried: not transient
    assert command.status == "failed" and "Tesla" in command.status_reason and "KeyError" in command.status_reason
    assert PlatformEvent.objects.filter(type="command.failed", data__id=command.pk).exists()
    integration.refresh_from_db()
    assert integration.credentials["refresh_token"] != spent


def test_losing_an_idempotency_race_returns_the_winning_command(sim, live_tesla, monkeypatch):  # noqa: F811
    from django.db.models.query import QuerySet

    workspace, integration, device = live_tesla
    winner = new_command(device, key="race")
    real_first = QuerySet.first
    checked = []

    def first(self):
        if self.model is Command and not checked:
            checked.append(True)
            return None  # the existence check ran before the other request saved
        return real_first(self)

    monkeypatch.setattr(QuerySet, "first", first)
    loser = new_command(device, key="race", payload={"operatingMode": "discharge"})
    assert checked and loser.pk == winner.pk and loser.input == {"operatingMode": "charge"}
    # the transaction is still usable after the refused insert (a savepoint)
    assert Command.objects.filter(workspace=workspace, idempotency_key="race").count() == 1


def test_sending_costs_a_fixed_handful_of_statements(sim, live_tesla, django_capture_on_commit_callbacks):  # noqa: F811
    """Claim (lock, integration, lease, audit) and outcome (lock, write, audit, event, the look for a command
    alert of the device to resolve), then the destinations check after commit: no statement that grows with
    anything, and the adapter kept from an earlier command costs none."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    workspace, integration, device = live_tesla
    command_send(command=new_command(device, key="warm-up"))  # builds the thread's adapter
    command = new_command(device, payload={"operatingMode": "discharge"}, key="k2")
    with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks(execute=True):
        assert command_send(command=command).status == "success"
    statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 10, "\n".join(statements)


def died_mid_call(command, *, applied: bool, steps: int | None = None):
    """A worker claimed the command (status `sent`, its lease) and was killed: after the OEM applied it (or
    the first `steps` of Tesla's POSTs), or before its call left. Its lease then ran out."""
    from datetime import timedelta

    from django.utils import timezone

    from dispatch.services import _commands_claim

    [(locked, integration, reason)] = _commands_claim(command_ids=[command.pk], owner="killed-worker")
    assert reason is None and locked.status == "sent"
    if applied:
        from integrations.adapters import DeviceRef, adapter_for

        device = locked.device
        ref = DeviceRef(serial=device.system_identifier, external_id=device.oem_device_id, oem_data=device.oem_data)
        with adapter_for(integration) as oem:
            if steps is None:
                oem.send_command(ref, locked.slug, locked.input)
            for endpoint, body in oem.command_steps(locked.slug, locked.input, soc=None)[:steps]:
                oem.call("POST", f"/api/1/energy_sites/{ref.external_id}/{endpoint}", json=body)
    Command.objects.filter(pk=command.pk).update(lease_until=timezone.now() - timedelta(seconds=1))


def test_a_command_taken_over_after_its_worker_died_is_not_written_twice(sim, live_tesla):  # noqa: F811
    workspace, integration, device = live_tesla
    command = new_command(device, payload={"operatingMode": "discharge", "minimumBatteryReserve": 25})
    died_mid_call(command, applied=True)
    writes = sim.state.write_counts()
    taken_over = command_send(command=command, owner="another-worker")
    assert taken_over.status == "success" and "not sent again" in taken_over.status_reason
    assert taken_over.attempts == 2  # counted as an attempt, written once
    assert sim.state.write_counts() == writes
    simulated = sim.state.device("tesla", "TG100000000901")
    assert (simulated.mode, simulated.reserve) == ("autonomous", 25)


def test_a_command_whose_worker_died_between_two_writes_gets_only_the_rest(sim, live_tesla):  # noqa: F811
    workspace, integration, device = live_tesla
    command = new_command(device, payload={"operatingMode": "discharge", "minimumBatteryReserve": 25})
    died_mid_call(command, applied=True, steps=1)  # the export rule went out; the mode and reserve did not
    writes = sim.state.write_counts()["writes"]
    taken_over = command_send(command=command, owner="another-worker")
    assert taken_over.status == "success" and "operation, backup" in taken_over.status_reason
    assert sim.state.write_counts() == {"writes": writes + 2, "repeated": 0}
    simulated = sim.state.device("tesla", "TG100000000901")
    assert (simulated.mode, simulated.reserve) == ("autonomous", 25)


def test_a_command_whose_worker_died_before_calling_is_sent_by_the_one_taking_over(sim, live_tesla):  # noqa: F811
    workspace, integration, device = live_tesla
    command = new_command(device, payload={"operatingMode": "discharge", "minimumBatteryReserve": 25})
    died_mid_call(command, applied=False)
    writes = sim.state.write_counts()["writes"]
    taken_over = command_send(command=command, owner="another-worker")
    assert taken_over.status == "success" and "not sent again" not in taken_over.status_reason
    # mode and reserve: the site's export rule was `pv_only` (what a discharge without grid interaction sets)
    assert sim.state.write_counts() == {"writes": writes + 2, "repeated": 0}
    assert sim.state.device("tesla", "TG100000000901").mode == "autonomous"


def test_a_lease_still_running_is_left_to_its_worker(sim, live_tesla):  # noqa: F811
    workspace, integration, device = live_tesla
    command = new_command(device)
    from dispatch.services import _commands_claim

    _commands_claim(command_ids=[command.pk], owner="busy-worker")
    requests = sim.state.request_count
    assert command_send(command=command, owner="another-worker").status == "sent"
    assert sim.state.request_count == requests


def test_a_retry_after_a_transient_error_between_two_writes_sends_only_the_rest(sim, live_tesla, monkeypatch):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    from integrations.adapters import TransientError
    from integrations.tesla.adapter import TeslaAdapter

    workspace, integration, device = live_tesla
    command = new_command(device, payload={"operatingMode": "discharge", "minimumBatteryReserve": 25})
    real_call, posts = TeslaAdapter.call, []

    def call(self, method, path, **kwargs):
        if method == "POST":
            posts.append(path.rsplit("/", 1)[-1])
            if len(posts) == 2:  # the mode change times out after the export rule went through
                raise TransientError("Tesla: read timed out")
        return real_call(self, method, path, **kwargs)

    monkeypatch.setattr(TeslaAdapter, "call", call)
    assert command_send(command=command, owner="task-1").status == "sent"  # leased until its retry
    Command.objects.filter(pk=command.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    retried = command_send(command=command, owner="the-retry")
    assert retried.status == "success" and retried.attempts == 2
    assert posts == ["grid_import_export", "operation", "operation", "backup"]  # the export rule once
    assert sim.state.write_counts()["repeated"] == 0
