"""Dispatch fan-out benchmark: a 10,000-device event across four OEMs, with the floor the OEMs' rate limits set
measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_dispatch .venv/bin/python bench/dispatch_fanout.py --fresh --devices 10000

What it does:
1. starts `manage.py run_oem_simulator` in its own process with an N-device fleet (Tesla, FranklinWH and Enphase
   batteries, Emporia chargers, in equal shares), migrates the database, creates the workspace, the program
   (its strategy: discharge, no ramp), the devices bound at the simulator, enrolled and approved, each with a
   fresh reading (setup, not timed);
2. times the engine's first step of the event as the tick takes it: selecting and classifying every device and
   writing the participations and commands (`dispatch.engine.action_fan_out`), then handing the due commands
   to workers (`commands_queue_due`, the task's `apply_async` replaced by a queue in this process);
3. sends them as workers would (`dispatch.services.command_send`, `--workers` threads taking commands in
   `not_before` order), each OEM held to `--rate` calls per second by the portal's own token bucket, and times
   until every command is acknowledged;
4. reads from the simulator the calls each OEM received and the writes it saw twice (a command sent twice to
   one device), and prints the floor the rate limits set: for each OEM, its calls ÷ its rate; the slowest OEM.

Targets (issue 10): classify + enqueue ≤ 5 s; every command acknowledged within 1.2× the floor; 0 duplicates.
Not measured here yet: a worker killed with `kill -9` mid-fan-out (the Celery workers are threads here).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "texture_portal.settings")

from database import ensure_database  # noqa: E402 (bench/, after the path is set)
from telemetry_sync import OEMS, free_port, start_simulator, write_fleet  # noqa: E402


def sim_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim/stats", timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second each OEM allows (token bucket)")
    parser.add_argument("--workers", type=int, default=32, help="threads sending commands, as workers would")
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the benchmark database first")
    args = parser.parse_args()
    ensure_database(fresh=args.fresh)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    port = free_port()
    serials = write_fleet(tmp / "fleet.csv", args.devices)
    simulator = start_simulator(tmp / "fleet.csv", port)
    os.environ["OEM_SIMULATOR_URL"] = f"http://127.0.0.1:{port}"
    try:
        run(args, serials, port)
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)


def run(args, serials, port) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    if connection.vendor != "postgresql":
        raise SystemExit("The benchmark needs PostgreSQL (DATABASE_URL=postgres://…).")
    settings.OEM_RATE_LIMITS = dict.fromkeys(settings.OEM_SLUGS, (args.rate, args.rate))
    settings.OEM_RATE_LIMIT_REDIS_URL = None  # one process: the in-memory bucket is shared by the threads
    # tasks other than the sends (webhook fan-out of command.* events) run in-process, as without a broker
    call_command("migrate", verbosity=0)

    from dispatch import engine
    from dispatch.choices import DispatchEventStatus
    from dispatch.models import Command, DispatchEvent
    from dispatch.services import command_send, dispatch_event_create
    from dispatch.tasks import command_send_task
    from fleet.models import Contact, Device, Manufacturer, Site, TelemetryReading
    from integrations import services
    from integrations.adapters import adapter_for
    from integrations.simulator import DEMO_CREDENTIALS
    from programs.choices import EnrollmentStatus
    from programs.models import Enrollment
    from programs.services import event_strategy_create_version, program_create
    from texture_portal.models import Organization, Workspace

    # -- setup (not timed) -------------------------------------------------------------------------------
    t0 = time.perf_counter()
    stamp = int(time.time())
    organization = Organization.objects.create(name=f"Bench {stamp}", slug=f"bench-{stamp}")
    workspace = Workspace.objects.create(organization=organization, name="production", slug=f"bench-{stamp}")
    program = program_create(
        workspace=workspace, actor=None, slug="bench-vpp", name="Bench VPP", program_type="battery"
    )
    event_strategy_create_version(
        program=program, data={"allowed_event_types": ["discharge"], "ramp_minutes": 0}, actor=None
    )
    manufacturers = {m.slug: m for m in Manufacturer.objects.all()}
    contacts = Contact.objects.bulk_create(
        [
            Contact(workspace=workspace, reference_id=f"B-{i}", first_name="Bench", last_name=f"{i}")
            for i in range(args.devices // 100 + 1)
        ]
    )
    sites = Site.objects.bulk_create(
        [
            Site(workspace=workspace, contact=c, street_one="1 Main St", city="Bend", state="OR", postal_code="97701")
            for c in contacts
        ]
    )
    now = timezone.now()
    for oem, _, kind in OEMS:
        integration = services.workspace_integration_save(
            workspace=workspace, channel=oem, actor=None, enabled=True, credentials=DEMO_CREDENTIALS[oem]
        )
        adapter = adapter_for(integration, pool_size=16)
        found = {d.serial: d for d in adapter.discover(serials[oem])}
        services.integration_credentials_persist(integration=integration, adapter=adapter)
        adapter.close()
        rows = []
        for n, serial in enumerate(serials[oem]):
            site = sites[(n * len(OEMS)) // 100]
            rows.append(
                Device(
                    workspace=workspace, site=site, contact_id=site.contact_id, manufacturer=manufacturers[oem],
                    system_identifier=serial, device_type=kind, state="on_workspace",
                    oem_device_id=found[serial].external_id, oem_data=found[serial].oem_data,
                )
            )  # fmt: skip
        devices = Device.objects.bulk_create(rows, batch_size=2000)
        Enrollment.objects.bulk_create(
            [
                Enrollment(workspace=workspace, device=d, program=program, status=EnrollmentStatus.APPROVED)
                for d in devices
            ],
            batch_size=2000,
        )
        readings = TelemetryReading.objects.bulk_create(
            [
                TelemetryReading(
                    workspace=workspace, device=d, measured_at=now, charge_percentage=70.0, charge_rate_w=0.0,
                    backup_reserve_percent=20.0, strategy="self_consumption", charging_state="idle",
                    is_storm_mode_active=False,
                )
                for d in devices
            ],
            batch_size=2000,
        )  # fmt: skip
        for device, reading in zip(devices, readings, strict=True):
            device.latest_telemetry_id, device.last_seen_at = reading.pk, now
        Device.objects.bulk_update(devices, ["latest_telemetry", "last_seen_at"], batch_size=2000)
    start = timezone.now() - timedelta(seconds=5)
    event = dispatch_event_create(
        program=program, name="Bench fan-out", starts_at=start, ends_at=start + timedelta(hours=1), actor=None,
        actions=[{"action_type": "discharge", "starts_at": start, "ends_at": start + timedelta(hours=1)}],
    )  # fmt: skip
    DispatchEvent.objects.filter(pk=event.pk).update(status=DispatchEventStatus.IN_PROGRESS)
    event = DispatchEvent.objects.select_related("strategy", "program").get(pk=event.pk)
    print(f"setup: {args.devices} devices bound, enrolled and reporting in {time.perf_counter() - t0:.1f} s")
    before = sim_stats(port)

    # -- classify and write, then enqueue ------------------------------------------------------------------
    started = time.perf_counter()
    with transaction.atomic():
        outcome = engine.action_fan_out(event=event, action=event.actions.get(), now=timezone.now())
    classified = time.perf_counter() - started
    due: queue.Queue[int] = queue.Queue()
    command_send_task.apply_async = lambda args, **kwargs: due.put(args[0])
    started = time.perf_counter()
    handed = 0
    while True:
        queued = engine.commands_queue_due(now=timezone.now())
        handed += queued
        if queued < 5000:
            break
    enqueued = time.perf_counter() - started
    print(
        f"classify + write participation: {classified:.2f} s ({outcome['targeted']} targeted, "
        f"{outcome['included']} included, {outcome['commands']} commands)"
    )
    print(f"enqueue (hand to workers):      {enqueued:.2f} s ({handed} commands)")

    # -- send, as workers would ---------------------------------------------------------------------------
    from django.db import connections

    errors = []

    def worker(number: int) -> None:
        try:
            while True:
                try:
                    pk = due.get_nowait()
                except queue.Empty:
                    return
                command_send(command=Command.objects.get(pk=pk), owner=f"bench-{number}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = time.perf_counter() - started
    after = sim_stats(port)
    statuses = dict(
        Command.objects.filter(dispatch_event=event).values_list("status").annotate(n=django.db.models.Count("pk"))
    )
    resent = Command.objects.filter(dispatch_event=event, attempts__gt=1).count()
    calls = {oem: after["requestsByOem"].get(oem, 0) - before["requestsByOem"].get(oem, 0) for oem, _, _ in OEMS}
    floor = max(n / args.rate for n in calls.values())
    slowest = max(calls, key=calls.get)
    repeated = after["writes"]["repeated"] - before["writes"]["repeated"]
    print(f"every command acknowledged:     {sent:.1f} s ({statuses}; {len(errors)} errors)")
    print(f"OEM calls: {calls} at {args.rate:g}/s each")
    print(f"floor (calls ÷ rate, slowest OEM {slowest}): {floor:.1f} s; sending took {sent / floor:.2f}× the floor")
    print(f"duplicates: {repeated} writes the simulator received twice; {resent} commands sent more than once")
    print(
        "targets: classify + enqueue ≤ 5 s → "
        f"{'met' if classified + enqueued <= 5 else 'MISSED'} ({classified + enqueued:.2f} s); "
        f"acknowledged within 1.2× the floor → {'met' if sent <= 1.2 * floor else 'MISSED'}; "
        f"0 duplicates → {'met' if repeated == 0 and resent == 0 else 'MISSED'}"
    )
    if errors:
        print(f"errors: {errors[:3]}")


if __name__ == "__main__":
    main()
