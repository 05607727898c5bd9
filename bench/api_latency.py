"""API latency at fleet scale: the filtered device list, first page and a page deep in the result.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_api .venv/bin/python bench/api_latency.py

The database is created when missing (bench/database.py).

Seeds (once; re-runs reuse it) a workspace of 100,000 devices (plus a second workspace of 20,000, so the
workspace scope is real), each device that reports with its latest reading, then requests
`GET /v1/devices?state=on_workspace&manufacturer=tesla&perPage=100` through the whole Django stack
(middleware, API-key auth, rate limit, filters, cursor pagination, the bodies, rendering), in-process, calling
the portal's WSGI application (`texture_portal.wsgi`) as a WSGI server does: an environ in, the body read, the
response closed. (Not the test client: its own bookkeeping per request — signals, cookies, `response.json` —
is no part of the API's time and keeps every response alive in a cycle.)

For the first page and a page ~90 % deep it reports p50/p95 over repeated requests and the queries per
request, and after each request replays its bare SQL, the floor: every statement the request sent (Django's
connection health check `SELECT 1`, the key lookup, the page) on the same connection, its rows read with
psycopg's own loaders; interleaved, so that both meet the same load. Finally it checks that the query count
does not change with the page size. Targets: p95 ≤ 100 ms for both pages; each page's p95 within
`--max-ratio` (2×) of its floor's p95 (the same run); query count constant in page size. Exit status 1 when a
target is missed.
"""

import argparse
import base64
import io
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "texture_portal.settings")
os.environ.setdefault("API_RATE_LIMIT", "100000000/minute")  # measure the limiter's cost, not its refusals

from database import ensure_database  # noqa: E402

ensure_database()  # before Django connects: the database may not exist yet

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from fleet.models import Contact, Device, DeviceTag, Manufacturer, Site, TelemetryReading  # noqa: E402
from texture_portal.models import Organization, Workspace  # noqa: E402
from texture_portal.services import api_key_create  # noqa: E402

BATTERY_MAKERS = ["tesla", "franklinwh", "enphase"]
STATES = ["on_workspace"] * 7 + ["offline"] * 2 + ["registered"]
FILTER = {"state": "on_workspace", "manufacturer": "tesla"}


def seed_workspace(slug: str, devices: int, batch: int = 5000) -> Workspace:
    organization, _ = Organization.objects.get_or_create(slug=f"bench-{slug}", defaults={"name": f"Bench {slug}"})
    workspace, created = Workspace.objects.get_or_create(
        slug=f"bench-{slug}", defaults={"organization": organization, "name": slug, "kind": "production"}
    )
    have = Device.objects.filter(workspace=workspace).count()
    if have >= devices:
        return workspace
    rng = random.Random(slug)
    makers = {m.slug: m for m in Manufacturer.objects.filter(slug__in=BATTERY_MAKERS)}
    tags = [DeviceTag.objects.get_or_create(workspace=workspace, name=f"feeder:{n}")[0] for n in range(50)]
    through = Device.tags.through
    started = time.perf_counter()
    for start in range(have, devices, batch):
        n = min(batch, devices - start)
        with transaction.atomic():
            contacts = Contact.objects.bulk_create(
                Contact(
                    workspace=workspace,
                    reference_id=f"{slug.upper()}-{start + i:07d}",
                    first_name="Pat",
                    last_name=f"Customer{start + i}",
                )
                for i in range(n)
            )
            sites = Site.objects.bulk_create(
                Site(
                    workspace=workspace,
                    contact=c,
                    street_one=f"{i} Main St",
                    city="Bend",
                    state="OR",
                    postal_code="97701",
                )
                for i, c in enumerate(contacts)
            )
            made = Device.objects.bulk_create(
                Device(
                    workspace=workspace,
                    contact_id=s.contact_id,
                    site=s,
                    manufacturer=makers[rng.choice(BATTERY_MAKERS)],
                    system_identifier=f"{slug.upper()}-SN-{start + i:08d}",
                    device_type="battery",
                    state=rng.choice(STATES),
                )
                for i, s in enumerate(sites)
            )
            through.objects.bulk_create(
                through(device_id=d.pk, devicetag_id=tags[rng.randrange(len(tags))].pk) for d in made
            )
        print(f"  seeded {start + n:>7,} devices in {slug} ({time.perf_counter() - started:5.1f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return workspace


def seed_latest_readings(workspace: Workspace) -> None:
    """A latest reading for every device that reports (on the workspace or offline; a registered system has
    none), as a real fleet has: the page then carries each body's `latestTelemetry` (times with microseconds,
    a battery's floats, states) and its query joins the readings. Once; set-based."""
    reading, device = TelemetryReading._meta.db_table, Device._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH fresh AS (
                INSERT INTO {reading} (workspace_id, device_id, measured_at, received_at, charge_percentage,
                    charge_rate_w, grid_power_w, solar_power_w, backup_reserve_percent, charging_state, grid_status,
                    strategy, is_storm_mode_enabled, is_storm_mode_active)
                SELECT d.workspace_id, d.id,
                    now() - make_interval(secs => (d.id %% 900) + (d.id %% 7) * 0.123457),
                    now() - make_interval(secs => (d.id %% 900)),
                    round((d.id * 7 %% 1001) / 10.0, 1), round((d.id %% 10001 - 5000) / 2.0, 1),
                    round((d.id * 13 %% 6001 - 3000) / 4.0, 2), (d.id * 11 %% 6000)::float8, 20.0,
                    (ARRAY['charging', 'discharging', 'idle', 'unknown'])[1 + d.id %% 4],
                    (ARRAY['idle', 'importing', 'exporting', 'unknown'])[1 + d.id %% 4],
                    (ARRAY['self_consumption', 'time_of_use', 'backup'])[1 + d.id %% 3],
                    d.id %% 5 = 0, false
                FROM {device} d
                WHERE d.workspace_id = %s AND d.state IN ('on_workspace', 'offline') AND d.latest_telemetry_id IS NULL
                RETURNING id, device_id
            )
            UPDATE {device} d SET latest_telemetry_id = fresh.id FROM fresh WHERE d.id = fresh.device_id
            """,  # noqa: S608 (the models' table names; the one value is a parameter)
            [workspace.pk],
        )
        if cursor.rowcount:
            print(f"  seeded {cursor.rowcount:,} latest readings in {workspace.slug}", flush=True)
            cursor.execute(f"ANALYZE {reading}; ANALYZE {device}")


def cursor_at(position: int) -> str:
    """The cursor DRF's CursorPagination issues for "rows after `position`" (ordering -id)."""
    return base64.b64encode(urlencode({"p": str(position)}).encode("ascii")).decode("ascii")


def percentile(values, pct):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def wsgi_get(application, path: str, headers: dict) -> tuple[str, bytes]:
    """One GET as a WSGI server makes it: an environ in, the body read, the response closed."""
    path, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **headers,
    }
    status = []
    result = application(environ, lambda line, response_headers, exc_info=None: status.append(line))
    try:
        body = b"".join(result)
    finally:
        result.close()
    return status[0], body


def request_once(application, url, headers, cpu=None):
    started, started_cpu = time.perf_counter(), time.process_time()
    status, body = wsgi_get(application, url, headers)
    elapsed = (time.perf_counter() - started) * 1000
    if cpu is not None:  # this process's CPU: Django, DRF and the driver, not the database's
        cpu.append((time.process_time() - started_cpu) * 1000)
    assert status.startswith("200"), (status, body[:300])
    return elapsed, body


def request_statements(application, url, headers) -> list[str]:
    """The SQL of one request (an untimed one: recording queries costs time of its own)."""
    with CaptureQueriesContext(connection) as ctx:
        request_once(application, url, headers)
    return [q["sql"] for q in ctx.captured_queries]


def psycopg_timestamptz_loader():
    import psycopg
    from psycopg.postgres import types

    return psycopg.adapters.get_loader(types["timestamptz"].oid, psycopg.pq.Format.TEXT)


def replay_once(cursor, statements):
    started = time.perf_counter()
    for statement in statements:
        cursor.execute(statement)
        if cursor.description:
            cursor.fetchall()
    return (time.perf_counter() - started) * 1000


def measure(application, url, headers, repeats, *, floor=True):
    """`repeats` requests of `url`; with `floor`, each followed by its bare SQL sent straight to the database
    (what the page costs without Django and DRF): the page query alone, then all the request's queries.
    Interleaved, so that both see the same load on a shared machine. The queries are counted on untimed
    requests before and after."""
    for _ in range(5):  # warm up: connections, caches, last_used_at write
        request_once(application, url, headers)
    times, rows = [], 0
    floors = {"page query": [], "all statements of the request": [], "API process CPU": []}
    statements = request_statements(application, url, headers)
    counts = {len(statements)}
    # the device page itself (the others: the key, the tags); a last_used_at UPDATE is not part of the page
    page_sql = [next(s for s in statements if s.startswith("SELECT") and "LIMIT" in s and '"fleet_device"' in s)]
    statements = [s for s in statements if s.startswith("SELECT")]
    if connection.health_check_enabled:
        # Django checks a reused connection at the start of each request (CONN_HEALTH_CHECKS): one more
        # statement the request sends, outside the captured queries
        statements.insert(0, "SELECT 1")
    with connection.cursor() as cursor:
        # the floor reads its rows with psycopg's own loaders, as the page does (not Django's Python one for
        # timestamptz, which would make the floor slower than the driver is)
        cursor.cursor.adapters.register_loader("timestamptz", psycopg_timestamptz_loader())
        for _ in range(5 if floor else 0):
            replay_once(cursor, statements)
        for _ in range(repeats):
            elapsed, body = request_once(application, url, headers, floors["API process CPU"])
            times.append(elapsed)
            if floor:
                floors["page query"].append(replay_once(cursor, page_sql))
                floors["all statements of the request"].append(replay_once(cursor, statements))
    rows = len(json.loads(body)["data"])
    counts.add(len(request_statements(application, url, headers)))
    return times, counts, rows, floors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--other-devices", type=int, default=20_000)
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument(
        "--repeats", type=int, default=500, help="requests per page (p95 of 500 is steadier than of 200)"
    )
    parser.add_argument("--target-ms", type=float, default=100.0)
    parser.add_argument("--max-ratio", type=float, default=2.0, help="API p95 / bare SQL p95, at most")
    args = parser.parse_args()

    if connection.vendor != "postgresql":
        print("This benchmark runs on PostgreSQL: set DATABASE_URL=postgres://…", file=sys.stderr)
        return 2
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    call_command("migrate", verbosity=0)
    print("Seeding (reused when present)…", flush=True)
    workspace = seed_workspace("alpha", args.devices)
    other = seed_workspace("beta", args.other_devices)
    for seeded in (workspace, other):
        seed_latest_readings(seeded)
    _, raw = api_key_create(workspace=workspace, name="bench", actor=None)
    headers = {"HTTP_TEXTURE_API_KEY": raw}
    from texture_portal.wsgi import application  # what a WSGI server serves

    matching = Device.objects.filter(
        workspace=workspace, state=FILTER["state"], manufacturer__slug=FILTER["manufacturer"]
    )
    total = matching.count()
    deep_offset = int(total * 0.9)
    deep_position = matching.order_by("-id").values_list("id", flat=True)[deep_offset]
    base = f"/v1/devices?{urlencode({**FILTER, 'perPage': args.per_page})}"
    pages = {
        "first page": base,
        f"deep page (row {deep_offset:,} of {total:,})": f"{base}&cursor={cursor_at(deep_position)}",
    }

    print(
        f"\nPostgreSQL {connection.pg_version}, {Device.objects.filter(workspace=workspace).count():,} devices in the "
        f"workspace, {Device.objects.count():,} in the table; filter {FILTER}; perPage={args.per_page}; "
        f"{args.repeats} requests per page; cache backend {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}\n"
    )
    print(f"{'':<34}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'queries':>9}{'rows':>6}")
    ok = True
    for name, url in pages.items():
        times, counts, rows, floors = measure(application, url, headers, args.repeats)
        p95 = percentile(times, 95)
        ok &= p95 <= args.target_ms and len(counts) == 1
        print(
            f"{'API ' + name:<34}{statistics.median(times):>9.2f}{p95:>9.2f}{max(times):>9.2f}"
            f"{'/'.join(map(str, sorted(counts))):>9}{rows:>6}"
        )
        cpu = floors.pop("API process CPU")
        for label, floor in floors.items():
            print(
                f"{'  bare SQL: ' + label:<34}{statistics.median(floor):>9.2f}{percentile(floor, 95):>9.2f}"
                f"{max(floor):>9.2f}"
            )
        print(f"{'  API process CPU':<34}{statistics.median(cpu):>9.2f}{percentile(cpu, 95):>9.2f}{max(cpu):>9.2f}")
        ratios = {label: p95 / percentile(floor, 95) for label, floor in floors.items()}
        ok &= ratios["all statements of the request"] <= args.max_ratio
        print(
            f"  API p95 / bare SQL p95: {ratios['all statements of the request']:.2f}× all statements of the request "
            f"(target ≤ {args.max_ratio:g}×), {ratios['page query']:.2f}× the page query alone"
        )

    print("\nQueries per request by page size (must not change):")
    per_size = {}
    for size in (10, 100, 500):
        url = f"/v1/devices?{urlencode({**FILTER, 'perPage': size})}"
        _, counts, rows, _ = measure(application, url, headers, 3, floor=False)
        per_size[size] = sorted(counts)
        print(f"  perPage={size:<4} rows={rows:<4} queries={'/'.join(map(str, sorted(counts)))}")
    constant = len({tuple(v) for v in per_size.values()}) == 1
    ok &= constant
    print(
        f"\nTargets: p95 ≤ {args.target_ms:g} ms on both pages, within {args.max_ratio:g}× of their bare SQL; "
        "query count constant in page size → "
        f"{'MET' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
