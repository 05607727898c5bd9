"""Telemetry sync benchmark: one full sync cycle of a large fleet against the OEM simulator, with the
floors measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_telemetry .venv/bin/python bench/telemetry_sync.py --fresh --devices 10000

What it does:
1. starts `manage.py run_oem_simulator` in its own process with an N-device fleet (Tesla, FranklinWH,
   Enphase, Emporia in equal shares; a fresh account per OEM);
2. migrates the database, creates a workspace with those N devices, enables the four integrations and binds
   the devices with each adapter's discovery calls (setup, not timed);
3. times one full cycle: `integrations.services.telemetry_sync` for every batch of every integration, the
   integrations side by side in threads as separate workers would run them; prints devices/s, OEM HTTP
   requests/s and readings written/s (time inside `fleet.services.telemetry_ingest`);
4. floors, same run: the same readings written with psycopg COPY into a scratch table, and the simulator's
   own request rate under a bare concurrent `requests` client (no adapter, no database).

Targets (issue 4): a 10,000-device cycle in ≤ 30 s on a 2-core machine; readings ≥ 20,000 rows/s.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "texture_portal.settings")

from database import ensure_database  # noqa: E402 (bench/, after the path is set)

OEMS = [
    ("tesla", "TG2", "battery"),
    ("franklinwh", "10050009", "battery"),
    ("enphase", "ENB", "battery"),
    ("emporia", "AB", "charger"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_fleet(path: Path, devices: int) -> dict[str, list[str]]:
    serials: dict[str, list[str]] = {oem: [] for oem, _, _ in OEMS}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["manufacturerSlug", "systemIdentifier", "deviceType"])
        for i in range(devices):
            oem, prefix, kind = OEMS[i % len(OEMS)]
            serial = f"{prefix}{i:08d}"
            serials[oem].append(serial)
            writer.writerow([oem, serial, kind])
    return serials


def start_simulator(fleet_csv: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "run_oem_simulator", "--port", str(port), "--fleet", str(fleet_csv)],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline()
    if "OEM simulator on" not in line:
        process.kill()
        raise SystemExit(f"simulator did not start: {line}{process.stdout.read()}")
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP threads per integration job")
    parser.add_argument("--batch", type=int, default=2_500, help="devices per telemetry sync task")
    parser.add_argument("--ingest-rounds", type=int, default=5, help="rounds of the ingest-alone measure")
    parser.add_argument(
        "--fresh", action="store_true", help="drop and recreate the benchmark database first (its name must say bench)"
    )
    args = parser.parse_args()
    ensure_database(fresh=args.fresh)

    tmp = Path(tempfile.mkdtemp(prefix="bench-telemetry-"))
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
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("The benchmark needs PostgreSQL (DATABASE_URL=postgres://…): the COPY floor is PostgreSQL's.")
    settings.OEM_SYNC_CONCURRENCY = args.concurrency
    settings.OEM_SYNC_BATCH_SIZE = args.batch
    settings.OEM_RATE_LIMITS = dict.fromkeys(settings.OEM_SLUGS, (100000.0, 100000.0))
    settings.OEM_RATE_LIMIT_REDIS_URL = None
    call_command("migrate", verbosity=0)

    from fleet import services as fleet_services
    from fleet.models import Contact, Device, Manufacturer, Site, TelemetryReading
    from integrations import selectors, services
    from integrations.adapters import adapter_for
    from integrations.adapters.base import TelemetrySnapshot
    from integrations.simulator import DEMO_CREDENTIALS
    from texture_portal.models import Organization, Workspace

    # -- setup (not timed) -------------------------------------------------------------------------------
    t0 = time.perf_counter()
    stamp = int(time.time())
    organization = Organization.objects.create(name=f"Bench {stamp}", slug=f"bench-{stamp}")
    workspace = Workspace.objects.create(organization=organization, name="production", slug=f"bench-{stamp}")
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
    integrations = {}
    for oem, _, kind in OEMS:
        integrations[oem] = services.workspace_integration_save(
            workspace=workspace, channel=oem, actor=None, enabled=True, credentials=DEMO_CREDENTIALS[oem]
        )
        rows = []
        for n, serial in enumerate(serials[oem]):
            site = sites[(n * len(OEMS)) // 100]
            rows.append(
                Device(
                    workspace=workspace,
                    site=site,
                    contact_id=site.contact_id,
                    manufacturer=manufacturers[oem],
                    system_identifier=serial,
                    device_type=kind,
                    state="on_workspace",
                )
            )
        Device.objects.bulk_create(rows, batch_size=2000)
        adapter = adapter_for(integrations[oem], pool_size=args.concurrency)
        found = {d.serial: d for d in adapter.discover(serials[oem])}
        services.integration_credentials_persist(integration=integrations[oem], adapter=adapter)
        devices = list(Device.objects.filter(workspace=workspace, manufacturer=manufacturers[oem]))
        for device in devices:
            device.oem_device_id = found[device.system_identifier].external_id
            device.oem_data = found[device.system_identifier].oem_data
        Device.objects.bulk_update(devices, ["oem_device_id", "oem_data"], batch_size=2000)
        adapter.close()
    print(f"setup: {args.devices} devices bound at the simulator in {time.perf_counter() - t0:.1f} s")

    # -- one full sync cycle -----------------------------------------------------------------------------
    ingest_seconds = [0.0]
    ingest_rows = [0]
    lock = threading.Lock()
    original_ingest = fleet_services.telemetry_ingest

    captured = []

    def timed_ingest(**kwargs):
        captured.append(kwargs)
        started = time.perf_counter()
        result = original_ingest(**kwargs)
        with lock:
            ingest_seconds[0] += time.perf_counter() - started
            ingest_rows[0] += result.readings_written
        return result

    fleet_services.telemetry_ingest = timed_ingest

    def sync_integration(integration):
        from django.db import connection as thread_connection

        runs = []
        ids = selectors.device_ids_for_sync(integration=integration)
        for start in range(0, len(ids), args.batch):
            runs.append(
                services.telemetry_sync(integration=integration, device_ids=ids[start : start + args.batch]).run
            )
        thread_connection.close()
        return runs

    before = TelemetryReading.objects.filter(workspace=workspace).count()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(integrations)) as pool:
        all_runs = [run for runs in pool.map(sync_integration, integrations.values()) for run in runs]
    cycle = time.perf_counter() - started
    fleet_services.telemetry_ingest = original_ingest
    written = TelemetryReading.objects.filter(workspace=workspace).count() - before
    requests_made = sum(r.http_requests for r in all_runs)
    ok = sum(r.devices_ok for r in all_runs)
    failed = sum(r.devices_failed for r in all_runs)
    print(f"\nsync cycle: {args.devices} devices in {cycle:.2f} s ({len(all_runs)} jobs, {ok} read, {failed} failed)")
    print(f"  devices/s          {args.devices / cycle:10,.0f}")
    print(f"  HTTP requests/s    {requests_made / cycle:10,.0f}   ({requests_made} requests)")
    print(
        f"  readings written/s {written / cycle:10,.0f}   ({written} rows over the cycle; "
        f"{ingest_seconds[0]:.2f} s summed inside the 4 concurrent telemetry_ingest calls)"
    )
    per_oem = {}
    for run in all_runs:
        per_oem.setdefault(run.integration.channel, 0)
        per_oem[run.integration.channel] += run.http_requests
    print("  requests per OEM   " + ", ".join(f"{k} {v}" for k, v in sorted(per_oem.items())))

    # -- the ingest alone: the same readings a minute later, round after round, nothing else running -------
    # Round 1 follows the cycle that just moved every device (fresh row versions, no vacuum yet); the next
    # rounds are what a fleet synced every few minutes runs in, so the target is read on their median.
    from dataclasses import replace
    from datetime import timedelta
    from statistics import median

    later = [reading for call in captured for reading in call["readings"]]
    rates = []
    for _ in range(args.ingest_rounds):
        later = [(d, replace(snap, measured_at=snap.measured_at + timedelta(minutes=1))) for d, snap in later]
        started = time.perf_counter()
        for start in range(0, len(later), args.batch):
            result = original_ingest(workspace_id=workspace.pk, readings=later[start : start + args.batch])
            assert result.readings_written == len(later[start : start + args.batch])
        rates.append(len(later) / (time.perf_counter() - started))
    steady = median(rates[1:]) if len(rates) > 1 else rates[0]
    from django.db import transaction

    from fleet.services import readings_insert_postgresql

    again = [(d, replace(snap, measured_at=snap.measured_at + timedelta(minutes=1))) for d, snap in later]
    started = time.perf_counter()
    for start in range(0, len(again), args.batch):
        with transaction.atomic(), connection.cursor() as cursor:
            readings_insert_postgresql(cursor, workspace_id=workspace.pk, readings=again[start : start + args.batch])
    insert_only = time.perf_counter() - started
    print(
        f"  readings INSERT alone:  {len(again) / insert_only:,.0f} readings/s ({len(again)} readings in "
        f"{insert_only:.2f} s: the statement telemetry_ingest writes readings with)"
    )
    print(
        f"  telemetry_ingest alone: {steady:,.0f} readings/s, median of rounds 2-{len(rates)} "
        f"({', '.join(f'{rate:,.0f}' for rate in rates)} per round of {len(later)} readings in batches of "
        f"{args.batch}, incl. latest-snapshot updates and device.updated events; round 1 right after the cycle)"
    )

    # -- floor 1: the same readings with COPY ----------------------------------------------------------------
    columns = ["workspace_id", "device_id", "measured_at", "received_at", *TelemetrySnapshot.READING_FIELDS]
    rows = list(TelemetryReading.objects.filter(workspace=workspace).values_list(*columns)[: args.devices])
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_telemetry_copy")
        cursor.execute(
            # same columns, defaults, constraints and indexes (the unique one included) as the real table
            "CREATE TABLE bench_telemetry_copy (LIKE fleet_telemetryreading INCLUDING DEFAULTS "
            "INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
        raw = cursor.connection
        started = time.perf_counter()
        with raw.cursor() as pg, pg.copy(f"COPY bench_telemetry_copy ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        copy_seconds = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_telemetry_copy")
    print(
        f"\nfloor, COPY of the same {len(rows)} readings: {len(rows) / copy_seconds:,.0f} rows/s ({copy_seconds:.2f} s)"
    )

    # -- floor 2: the simulator under a bare concurrent client ------------------------------------------------
    import requests

    tesla = integrations["tesla"]
    tesla.refresh_from_db()
    token = tesla.credentials["access_token"]
    sites = list(
        Device.objects.filter(workspace=workspace, manufacturer=manufacturers["tesla"]).values_list(
            "oem_device_id", flat=True
        )
    )
    base = f"http://127.0.0.1:{port}/tesla/api/1/energy_sites"
    local = threading.local()

    def fetch(site):
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        return session.get(
            f"{base}/{site}/live_status", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).status_code

    sample = (sites * 3)[: min(len(sites) * 3, 6000)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        statuses = list(pool.map(fetch, sample))
    bare = time.perf_counter() - started
    print(
        f"floor, bare client ({args.concurrency} threads, keep-alive) on the simulator: "
        f"{len(sample) / bare:,.0f} requests/s ({len(sample)} requests, {statuses.count(200)} OK)"
    )
    print(
        f"\ntargets: cycle ≤ 30 s → {'met' if cycle <= 30 else 'NOT met'} ({cycle:.1f} s); "
        f"readings ≥ 20,000 rows/s → INSERT {'met' if len(again) / insert_only >= 20_000 else 'NOT met'}, "
        f"full ingest with snapshot updates and events {'met' if steady >= 20_000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
