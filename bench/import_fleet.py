"""Benchmark: importing a realistic fleet file through the import job (the admin's and CLI's code path).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_import .venv/bin/python bench/import_fleet.py --fresh [--rows 100000]

Needs PostgreSQL (the database is created and migrated if missing). Prints, for N rows: the full import
(read, check, plan, write contacts + sites + devices + enrollments + history + events), its rows/s, the
queries it issued and the process's peak RSS; the re-import of the same, unchanged file; and in the same run
two references: (1) psycopg COPY of the same contacts, sites and devices — the floor; (2) a plain
django-import-export ModelResource with default options on the Device table alone, on a 5,000-row sample —
what a user gets out of the box.
"""

import argparse
import csv
import io
import os
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "texture_portal.settings")

from database import ensure_database  # noqa: E402 (bench/, after the path is set)

FIRST = [
    "Ava",
    "Ben",
    "Carmen",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Imani",
    "Jonas",
    "Keiko",
    "Luis",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
]
LAST = [
    "Alvarez",
    "Brooks",
    "Chen",
    "Dubois",
    "Ellis",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Johansson",
    "Kowalski",
    "Lopez",
    "Morgan",
    "Nguyen",
    "Okafor",
    "Patel",
]
STREETS = ["Cedar", "Juniper", "Ponderosa", "Aspen", "Larch", "Willow", "Tamarack", "Alder", "Birch", "Spruce"]
OEMS = [
    ("tesla", "battery", "TG1{:011d}"),
    ("franklinwh", "battery", "10050{:011d}"),
    ("enphase", "battery", "EN{:010d}"),
    ("emporia", "charger", "A2{:08d}"),
]
COLUMNS = [
    "referenceId",
    "firstName",
    "lastName",
    "email",
    "phone",
    "streetOne",
    "city",
    "state",
    "postalCode",
    "manufacturerSlug",
    "systemIdentifier",
    "deviceType",
    "programSlug",
    "tags",
]


def fleet_rows(count: int, seed: int = 7):
    """One row per device; about 1.25 devices per account, as utility files look."""
    rnd = random.Random(seed)
    import zipcodes

    zips = [z for z in zipcodes.filter_by(state="OR") if z["zip_code_type"] == "STANDARD"][:200]
    rows, account = [], 0
    while len(rows) < count:
        account += 1
        z = rnd.choice(zips)
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        base = {
            "referenceId": f"TRE-{account:08d}",
            "firstName": first,
            "lastName": last,
            "email": f"{first.lower()}.{last.lower()}.{account}@example.com",
            "phone": f"+1541{rnd.randint(2000000, 9999999)}",
            "streetOne": f"{rnd.randint(1, 9999)} {rnd.choice(STREETS)} Ln",
            "city": z["city"].title(),
            "state": "OR",
            "postalCode": z["zip_code"],
            "programSlug": "bench-vpp",
            "tags": f"feeder:{rnd.randint(1, 60)};substation:{rnd.randint(1, 8)}",
        }
        for _ in range(2 if rnd.random() < 0.25 else 1):
            oem, device_type, pattern = OEMS[len(rows) % len(OEMS)]
            rows.append(
                {
                    **base,
                    "manufacturerSlug": oem,
                    "deviceType": device_type,
                    "systemIdentifier": pattern.format(len(rows)),
                }
            )
    return rows[:count]


def to_csv(rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


class QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def fresh_workspace(name: str):
    from programs.services import program_create
    from texture_portal.models import Organization, Workspace

    organization, _ = Organization.objects.get_or_create(slug="bench", defaults={"name": "Bench Co-op"})
    slug = f"bench-{name}-{int(time.time() * 1000)}"
    workspace = Workspace.objects.create(organization=organization, name=slug, slug=slug, kind="sandbox")
    program_create(workspace=workspace, actor=None, slug="bench-vpp", name="Bench VPP", program_type="battery")
    return workspace


def run_import(workspace, data: bytes):
    from django.db import connection

    from fleet.importing.services import import_job_apply, import_job_create, import_job_validate

    counter = QueryCounter()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        job = import_job_create(workspace=workspace, filename="bench.csv", data=data, actor=None)
        plan = import_job_validate(job=job)  # as `manage.py import_fleet` does
        job.refresh_from_db()
        assert job.status == "validated", job.errors[:5]
        job = import_job_apply(job=job, actor=None, plan=plan)
    job.refresh_from_db()
    return time.perf_counter() - started, counter.count, job


def copy_floor(rows) -> float:
    """The same contacts, sites and devices written with psycopg COPY (ids drawn from the sequences)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from fleet.models import Manufacturer

    workspace = fresh_workspace("copy")
    manufacturers = dict(Manufacturer.objects.values_list("slug", "pk"))
    now = timezone.now()
    started = time.perf_counter()
    with transaction.atomic():
        pg = connection.cursor().connection
        with pg.cursor() as cur:
            accounts = list(dict.fromkeys(r["referenceId"] for r in rows))
            cur.execute("SELECT nextval('fleet_contact_id_seq') FROM generate_series(1, %s)", [len(accounts)])
            contact_ids = dict(zip(accounts, (r[0] for r in cur.fetchall()), strict=True))
            cur.execute("SELECT nextval('fleet_site_id_seq') FROM generate_series(1, %s)", [len(accounts)])
            site_ids = dict(zip(accounts, (r[0] for r in cur.fetchall()), strict=True))
            first = {}
            for r in rows:
                first.setdefault(r["referenceId"], r)
            with cur.copy(
                "COPY fleet_contact (id, created, last_updated, workspace_id, reference_id, first_name, last_name, email, phone) FROM STDIN"
            ) as copy:
                for ref, r in first.items():
                    copy.write_row(
                        (
                            contact_ids[ref],
                            now,
                            now,
                            workspace.pk,
                            ref,
                            r["firstName"],
                            r["lastName"],
                            r["email"],
                            r["phone"],
                        )
                    )
            with cur.copy(
                "COPY fleet_site (id, created, last_updated, workspace_id, contact_id, site_name, site_reference_id, street_one, street_two, city, state, postal_code, country, timezone) FROM STDIN"
            ) as copy:
                for ref, r in first.items():
                    copy.write_row(
                        (
                            site_ids[ref],
                            now,
                            now,
                            workspace.pk,
                            contact_ids[ref],
                            "",
                            "",
                            r["streetOne"],
                            "",
                            r["city"],
                            r["state"],
                            r["postalCode"],
                            "US",
                            "",
                        )
                    )
            with cur.copy(
                "COPY fleet_device (created, last_updated, workspace_id, contact_id, site_id, manufacturer_id, system_identifier, device_type, name, state, state_changed_at, state_reason, oem_device_id, oem_data) FROM STDIN"
            ) as copy:
                for r in rows:
                    ref = r["referenceId"]
                    copy.write_row(
                        (
                            now,
                            now,
                            workspace.pk,
                            contact_ids[ref],
                            site_ids[ref],
                            manufacturers[r["manufacturerSlug"]],
                            r["systemIdentifier"],
                            r["deviceType"],
                            "",
                            "registered",
                            now,
                            "",
                            "",
                            "{}",
                        )
                    )
    return time.perf_counter() - started


def default_resource(sample: int = 5000) -> float:
    """django-import-export out of the box: a ModelResource on Device, default options, new rows."""
    import tablib
    from import_export import resources

    from fleet.models import Device, Manufacturer, Site

    class DeviceResource(resources.ModelResource):
        class Meta:
            model = Device
            fields = ("id", "workspace", "contact", "site", "manufacturer", "system_identifier", "device_type", "state")

    workspace = fresh_workspace("default-resource")
    copy_rows = fleet_rows(sample, seed=11)
    # the contacts and sites it links to exist already (written quickly; not timed)
    from fleet.importing.services import import_job_apply, import_job_create, import_job_validate

    job = import_job_create(workspace=workspace, filename="seed.csv", data=to_csv(copy_rows), actor=None)
    import_job_validate(job=job)
    import_job_apply(job=job, actor=None)
    sites = list(Site.objects.filter(workspace=workspace).values_list("pk", "contact_id"))
    tesla = Manufacturer.objects.get(slug="tesla").pk
    dataset = tablib.Dataset(
        headers=["id", "workspace", "contact", "site", "manufacturer", "system_identifier", "device_type", "state"]
    )
    for index in range(sample):
        site_id, contact_id = sites[index % len(sites)]
        dataset.append(["", workspace.pk, contact_id, site_id, tesla, f"DEFAULT-{index:08d}", "battery", "registered"])
    started = time.perf_counter()
    result = DeviceResource().import_data(dataset, dry_run=False)
    elapsed = time.perf_counter() - started
    assert not result.has_errors() and not result.has_validation_errors(), "default resource import failed"
    return sample / elapsed


def child_import(path: str, workspace_slug: str) -> None:
    """Run in a fresh process, so its peak RSS is the import's alone (not the generated test data's)."""
    import json

    import django

    django.setup()
    from texture_portal.models import Workspace

    workspace = Workspace.objects.get(slug=workspace_slug)
    elapsed, queries, job = run_import(workspace, Path(path).read_bytes())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"elapsed": elapsed, "queries": queries, "peak_mb": peak_mb, "timings": job.timings, "counts": job.counts}
    print(json.dumps(result))


def import_in_child(path: Path, workspace) -> dict:
    import json
    import subprocess

    command = [sys.executable, __file__, "--child-import", str(path), workspace.slug]
    out = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603 (our own script)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--fresh", action="store_true", help="drop and recreate the benchmark database first (its name must say bench)"
    )
    parser.add_argument("--child-import", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ensure_database(fresh=args.fresh and not args.child_import)
    if args.child_import:
        child_import(*args.child_import)
        return
    import tempfile

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    rows = fleet_rows(args.rows)
    data = to_csv(rows)
    accounts = len({r["referenceId"] for r in rows})
    print(f"fleet file: {args.rows:,} rows, {len(data) / 1e6:.1f} MB, {accounts:,} accounts")
    path = Path(tempfile.mkdtemp()) / "fleet.csv"
    path.write_bytes(data)

    workspace = fresh_workspace("import")
    first = import_in_child(path, workspace)
    elapsed, peak_mb = first["elapsed"], first["peak_mb"]
    print(
        f"import:            {elapsed:6.2f} s  {args.rows / elapsed:9,.0f} rows/s  {first['queries']:,} queries  "
        f"peak RSS {peak_mb:,.0f} MB"
    )
    print(f"  timings (s):     {first['timings']}")
    print(f"  counts:          {first['counts']}")
    second = import_in_child(path, workspace)
    again = second["elapsed"]
    print(
        f"re-import (same):  {again:6.2f} s  {args.rows / again:9,.0f} rows/s  {second['queries']:,} queries  "
        f"peak RSS {second['peak_mb']:,.0f} MB  -> {second['counts']['unchanged']:,} unchanged"
    )

    floor = copy_floor(rows)
    print(
        f"reference COPY:    {floor:6.2f} s  (contacts + sites + devices, psycopg COPY)  import is {elapsed / floor:.1f}x the floor"
    )
    default_rate = default_resource()
    print(
        f"reference default: {default_rate:9,.0f} rows/s (django-import-export ModelResource, defaults, Device only, 5,000 rows)"
    )
    print(f"                   import is {args.rows / elapsed / default_rate:.1f}x the default resource's rows/s")
    targets = [
        ("100k import <= 20 s", args.rows < 100_000 or elapsed <= 20),
        ("within 5x COPY", elapsed <= 5 * floor),
        (">= 10x default resource", args.rows / elapsed >= 10 * default_rate),
        ("peak RSS <= 600 MB", peak_mb <= 600),
        ("re-import <= 10 s", args.rows < 100_000 or again <= 10),
    ]
    print("targets: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in targets))


if __name__ == "__main__":
    main()
