"""The demo's rehearsal: yesterday's test event, really run, so every role's page has a finished event to show.

`make demo` must show a finished test event with its report from the first minute, but an event takes its
window to run. So the seed runs one in the past: the OEM simulator (the same one `make serve` starts, same seed,
served over HTTP on a free port) and the portal's clock (time-machine, a dev dependency `make demo` installs)
are set to yesterday afternoon in the program's zone and moved forward together a minute at a time, while the
real services do what beat and the workers would: discovery (with each device's history), telemetry every five
minutes, and the engine's tick every minute. The event is scheduled, starts, commands go out over HTTP, devices
confirm or do not, it restores and completes, and its report is compiled when it completes, as in production.
Ten minutes in, a customer calls and support opts their battery out; after the event, one EV charger's Wi-Fi
drops (the simulator takes it offline) and the offline sweep notices. Nothing is written by hand: what the
pages show is what the code did.

Idempotent: skipped when the program already has a completed test event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

REHEARSAL_EVENT_NAME = "Rehearsal: yesterday's afternoon discharge"
SIMULATOR_SEED = 7  # run_oem_simulator's default: the rehearsal's devices are the ones `make serve` serves


@dataclass
class RehearsalResult:
    ran: bool
    event_id: int | None = None
    status: str = ""
    note: str = ""
    mails: list = None  # (subject, recipients) of the alert e-mails the rules sent during the rehearsal


def rehearsal_start(program, *, now: datetime | None = None) -> datetime:
    """Yesterday 15:30 in the program's zone (the event runs 16:00–16:30 local), in UTC (the simulator's clock)."""
    zone = program.zone
    local_now = (now or timezone.now()).astimezone(zone)
    yesterday = (local_now - timedelta(days=1)).date()
    return datetime(yesterday.year, yesterday.month, yesterday.day, 15, 30, tzinfo=zone).astimezone(UTC)


def demo_rehearsal_run(*, program, actor, fleet_csv, support_user=None) -> RehearsalResult:
    """Run yesterday's test event end to end against the simulator (see the module's docstring)."""
    from dispatch.choices import DispatchEventStatus
    from dispatch.models import DispatchEvent

    done = DispatchEvent.objects.filter(program=program, is_test=True, status=DispatchEventStatus.COMPLETED)
    if done.exists():
        return RehearsalResult(ran=False, note="a completed test event is already there")
    try:
        import time_machine
    except ImportError:  # a production install without the dev extras: no rehearsal, the scheduled event runs
        return RehearsalResult(ran=False, note="time-machine is not installed (pip install -e '.[dev]')")

    from dispatch import engine
    from dispatch.services import dispatch_event_create, dispatch_event_schedule
    from integrations import services as integration_services
    from integrations.models import WorkspaceIntegration
    from integrations.ratelimit import rate_limiter
    from integrations.simulator import SimClock, SimState, SimulatorServer, add_accounts
    from texture_portal.choices import AuditSource

    start = rehearsal_start(program)
    event_starts, event_ends = start + timedelta(minutes=30), start + timedelta(minutes=60)
    names = ("OEM_BASE_URLS", "OEM_RATE_LIMIT_REDIS_URL", "OEM_RATE_LIMITS", "EMAIL_BACKEND")
    saved = {name: getattr(settings, name) for name in names}
    from django.core import mail

    real_now = timezone.now()
    quiet = _Quiet()
    with quiet, time_machine.travel(start, tick=False) as traveller:
        state = SimState(seed=SIMULATOR_SEED, clock=SimClock(frozen_at=start))
        state.load_fleet_csv(str(fleet_csv))
        add_accounts(state)
        with SimulatorServer(state) as server:
            try:
                # the alert e-mails the rules send are kept, and listed one line each in the seed's log
                settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
                mail.outbox = []
                settings.OEM_BASE_URLS = server.base_urls()
                # The portal's own pacing of OEM calls waits in real seconds, while the rehearsal's minutes pass
                # in milliseconds: off here. The simulator still enforces each OEM's limits on its own clock.
                settings.OEM_RATE_LIMIT_REDIS_URL, settings.OEM_RATE_LIMITS = None, {}
                rate_limiter.cache_clear()
                integrations = list(
                    WorkspaceIntegration.objects.filter(workspace_id=program.workspace_id, enabled=True)
                )
                for integration in integrations:
                    integration_services.discovery_run(integration=integration)
                event = dispatch_event_create(
                    program=program,
                    name=REHEARSAL_EVENT_NAME,
                    starts_at=event_starts,
                    ends_at=event_ends,
                    actor=actor,
                    actions=[{"action_type": "discharge", "starts_at": event_starts, "ends_at": event_ends}],
                    source=AuditSource.COMMAND,
                )
                dispatch_event_schedule(event=event, actor=actor, source=AuditSource.COMMAND)
                now = start
                opt_out_at, offline_at = event_starts + timedelta(minutes=10), event_ends + timedelta(minutes=5)
                dropped = _device_to_drop(program)
                limit = event_ends + timedelta(hours=1)
                while now < limit:
                    if now == opt_out_at:
                        _customer_opts_out(event, actor=support_user or actor)
                    if now == offline_at and dropped is not None:
                        state.set_online(dropped.manufacturer.integration_channel, dropped.system_identifier, False)
                    if now.minute % 5 == 0:
                        for integration in integrations:
                            integration_services.telemetry_sync(integration=integration)
                        integration_services.offline_sweep(now=now)
                    with transaction.atomic():  # the tick's on-commit work (commands, the report) runs as it commits
                        engine.dispatch_tick(now=now)
                    event.refresh_from_db(fields=["status"])
                    if event.status == DispatchEventStatus.COMPLETED and (dropped is None or _is_offline(dropped)):
                        break
                    now += timedelta(minutes=1)
                    traveller.move_to(now)
                    state.clock.advance(60)
                # back to the present: one telemetry round now, so the fleet is live and fresh when the demo opens
                # (the dropped charger stays offline: the simulator still has it off)
                traveller.move_to(real_now)
                state.clock.advance((real_now - now).total_seconds())
                for integration in integrations:
                    integration_services.telemetry_sync(integration=integration)
            finally:
                for name, value in saved.items():
                    setattr(settings, name, value)
                rate_limiter.cache_clear()
    event.refresh_from_db()
    sent = [(message.subject, list(message.to)) for message in getattr(mail, "outbox", [])]
    return RehearsalResult(ran=True, event_id=event.pk, status=event.status, note=event.status_reason or "", mails=sent)


def _device_to_drop(program):
    """The charger whose Wi-Fi drops after the event (the support call the demo shows): the one the demo's
    simulator keeps offline afterwards too (`run_oem_simulator`, DEMO_OFFLINE_DEVICES)."""
    from fleet.models import Device
    from texture_portal.demo.seed import DEMO_OFFLINE_DEVICES

    serials = [serial for _, serial in DEMO_OFFLINE_DEVICES]
    return (
        Device.objects.filter(workspace_id=program.workspace_id, system_identifier__in=serials)
        .select_related("manufacturer")
        .first()
    )


def _is_offline(device) -> bool:
    device.refresh_from_db(fields=["state"])
    return device.state == "offline"


def _customer_opts_out(event, *, actor) -> None:
    """A customer calls during the event: support opts their battery out (the first one taking part)."""
    from dispatch.choices import ParticipationStatus
    from dispatch.engine import participation_opt_out
    from dispatch.models import Participation
    from texture_portal.choices import AuditSource

    taking_part = (
        Participation.objects.filter(event=event, status=ParticipationStatus.CONFIRMED)
        .order_by("device__system_identifier")
        .first()
    )
    if taking_part is not None:
        participation_opt_out(
            participation=taking_part,
            reason="The customer called: they need the battery full tonight (a medical device at home).",
            actor=actor,
            source=AuditSource.ADMIN,
        )


class _Quiet:
    """The rehearsal's services log every discovery, sync and command at INFO: the seed's output keeps only
    warnings, so the login lines stand out."""

    def __enter__(self):
        self._level = logging.root.manager.disable
        logging.disable(logging.INFO)
        return self

    def __exit__(self, *exc):
        logging.disable(self._level)
        return False
