"""Metrics API latency over a realistic rollup table: `GET /v1/metrics` for one device, a site, 100 and 500
devices, through the whole Django stack (API-key auth, rate limit, validation, the one metric statement).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/h_metrics_bench .venv/bin/python bench/metrics_latency.py

PostgreSQL only. Seeds (once; re-runs reuse it) a workspace of 2,000 batteries (bench/api_latency.py's
seeding) with 35 days of 15-minute rollups each (6.7 million rows, written by `generate_series` in the
database), then reports p50/p95 and the queries per request. Targets: p95 ≤ 150 ms for one device or one site
over 30 days; the query count is the same for 1 and 500 devices. Exit status 1 when a target is missed.

Measured (2 cores, PostgreSQL 15, 2026-12-05), p50 / p95: one device 1d 15 min 1.8 / 2.0 ms; one site 30d DAY
in Denver 4.1 / 4.5 ms; one device 30d HOUR storage 6.6 / 9.2 ms; 100 devices 7d HOUR (16,800 points)
186 / 354 ms; 500 devices 30d DAY by site (1.44 million rollups read) 1.2 / 1.9 s. With the device ids as a
sub-select instead of a list, PostgreSQL scanned the whole rollup table: 609 ms for the 100 devices.
2 queries a request: the key, then the metric.
"""

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_latency import percentile, seed_workspace  # noqa: E402  (sets up Django)
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from fleet.models import Device, TelemetryRollup  # noqa: E402
from texture_portal.services import api_key_create  # noqa: E402

DEVICES = 2_000
DAYS = 35


def seed_rollups(workspace, end: datetime) -> None:
    ids = list(Device.objects.filter(workspace=workspace).order_by("pk").values_list("pk", flat=True)[:DEVICES])
    if TelemetryRollup.objects.filter(device_id=ids[-1]).exists():
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO fleet_telemetryrollup (workspace_id, device_id, interval_start, samples, charge_rate_w,
                                               grid_power_w, solar_power_w, charger_wattage_w, charge_percentage)
            SELECT %s, d, t, 3, 2000 * sin(extract(epoch FROM t) / 7200 + d), 800 - 10 * (d %% 100),
                   greatest(0, 3000 * sin(extract(epoch FROM t) / 13751)), NULL, 20 + (d %% 70)
            FROM unnest(%s::bigint[]) AS d,
                 generate_series(%s::timestamptz, %s::timestamptz, interval '15 minutes') AS t
            ON CONFLICT DO NOTHING
            """,
            [workspace.pk, ids, end - timedelta(days=DAYS), end - timedelta(minutes=15)],
        )
        cursor.execute("ANALYZE fleet_telemetryrollup")
    print(f"  seeded {len(ids) * DAYS * 96:,} rollups in {time.perf_counter() - started:.1f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("PostgreSQL only: set DATABASE_URL=postgres://…", file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0)
    workspace = seed_workspace("metrics", DEVICES)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    seed_rollups(workspace, end)
    ids = list(Device.objects.filter(workspace=workspace).order_by("pk").values_list("pk", "site_id")[:DEVICES])
    _, raw = api_key_create(workspace=workspace, name="metrics bench", actor=None)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client, headers = Client(), {"HTTP_TEXTURE_API_KEY": raw}

    def ids_of(n):
        return ",".join(str(pk) for pk, _ in ids[:n])

    cases = [
        ("1 device, 1d, 15 min", f"metric=consumption&filterDeviceId={ids[7][0]}", 150),
        (
            "1 site, 30d, DAY, Denver",
            f"metric=grid-energy&filterSiteId={ids[7][1]}&filterRangeRelative=30d"
            "&windowSize=DAY&timezone=America/Denver",
            150,
        ),
        (
            "1 device, 30d, HOUR, storage",
            f"metric=storage&filterDeviceId={ids[7][0]}&filterRangeRelative=30d&windowSize=HOUR",
            150,
        ),
        (
            "100 devices, 7d, HOUR",
            f"metric=production&filterDeviceId={ids_of(100)}&filterRangeRelative=7d&windowSize=HOUR",
            None,
        ),
        (
            "500 devices, 30d, DAY by site",
            f"metric=consumption&filterDeviceId={ids_of(500)}&filterRangeRelative=30d&windowSize=DAY&groupBy=SITE",
            None,
        ),
    ]
    failed, counts_seen = False, set()
    print(f"{'request':34} {'points':>7} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8}  target")
    for label, query, target in cases:
        url = f"/v1/metrics?{query}"
        for _ in range(3):
            assert client.get(url, **headers).status_code == 200
        times, counts, points = [], set(), 0
        for _ in range(args.repeats):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url, **headers)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:300]
            points = len(response.json()["data"])
            # the key's once-a-minute `last_used_at` write is the authentication's, not the metric's
            counts.add(sum(not q["sql"].startswith("UPDATE") for q in captured.captured_queries))
        p95 = percentile(times, 95)
        ok = target is None or p95 <= target
        failed |= not ok
        counts_seen |= counts
        verdict = f"≤ {target} ms {'ok' if ok else 'MISSED'}" if target else "—"
        print(
            f"{label:34} {points:>7,} {'/'.join(map(str, sorted(counts))):>7} {statistics.median(times):8.1f} "
            f"{p95:8.1f}  {verdict}"
        )
    if len(counts_seen) != 1:
        print(f"query count varies with the device count: {sorted(counts_seen)}")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
