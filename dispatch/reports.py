"""Event reports: the energy an event's devices delivered against their own baselines, and what became of each
targeted device, compiled set-based in SQL over the 15-minute telemetry rollups.

The method is `dispatch.baselines` (X of Y, high X of Y, the day-of adjustment), which stays the plain-Python
reference this module is tested against. Here it runs as a few statements over every participant at once,
whatever their number:

1. Python lays out the intervals (`report_slots`): the event's 15-minute intervals keyed by their local
   wall-clock start (minutes after the event day's local midnight, in the program's timezone), the adjustment
   window's, and the same wall-clock intervals on every candidate day of the lookback (same kind of day, no
   event of the program), each with its UTC instants: a fall-back day's repeated hour gives an interval two
   instants (averaged), a spring-forward day's missing hour none.
2. `rpt_read`, in one statement that reads the participants' rollups once (held in memory for the statement
   in a materialized WITH, not written to a table): per device and metric, the candidate days with readings for
   enough of the event's intervals, the Y most recent of them, and which are used (the highest X by load over
   the event's intervals, or all: `rpt_days`), as bits of an integer per device when the lookback fits one; and
   per device and interval (the event's and the adjustment window's), in one grouping, the event day's values
   beside the unadjusted baseline, both metrics averaged over the device's chosen days (`rpt_side`). The two
   are views of `rpt_read`'s rows of each kind.
3. `rpt_verdict`: per device and metric, the adjustment (factor or offset) from the window before the event,
   or why there is no baseline.
4. `rpt_cells`: per device and event interval, each metric's actual and adjusted baseline; the device rows are
   inserted from them in one INSERT … SELECT, and the fleet's totals are the sums of those rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from dispatch.baselines import ADDITIVE, MULTIPLICATIVE, NO_ADJUSTMENT, BaselineMethod, baseline_method_of
from dispatch.choices import DispatchEventStatus
from dispatch.events import DispatchEventType, dispatch_event_data
from dispatch.models import DispatchEvent, EventReport, EventReportDevice, Participation
from dispatch.selectors import event_participation_counts
from texture_portal.events.services import event_emit

SLOT_MINUTES = 15  # the rollups' interval
HOURS_PER_SLOT = SLOT_MINUTES / 60
METRICS = ("battery", "net_at_meter")
# what "delivering" means for each metric's series: battery power is + discharging (more output delivers),
# the site's grid power is + importing (less import delivers); as dispatch.baselines.DELIVERY_SIGN
SIGN = {"battery": 1.0, "net_at_meter": -1.0}
REFRESH_AT_COMPLETION = timedelta(hours=1)
REPORT_WORK_MEM = "256MB"
TIMELINE_POINTS = 120  # at most this many points on the participation chart
NULL_FLOAT = "CAST(NULL AS DOUBLE PRECISION)"  # typed, for the temporary tables' columns on PostgreSQL
_TEMP_TABLES = ("rpt_read", "rpt_verdict", "rpt_cells")
_TEMP_VIEWS = ("rpt_side", "rpt_days")  # parts of rpt_read
MASK_DAYS = 62  # a lookback up to this many days: each device's chosen days as bits of one integer


@dataclass(frozen=True)
class ReportSlots:
    """Where the report looks: `rows` are (day_no, slot, UTC instant, role, action_no) — day 0 is the event's
    day, role E an event interval, W the adjustment window's — and the event's intervals in order."""

    rows: list[tuple[int, int, datetime, str, int]]
    event_slots: list[int]
    slot_instants: dict[int, datetime]  # each event interval's (first) UTC start, for the charts
    excluded_days: list[date]


def _floor(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % SLOT_MINUTES, second=0, microsecond=0)


def _wall_clock_instants(day: date, slot: int, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the local wall clock reads `slot` minutes after `day`'s midnight: one, two
    (the repeated hour of a fall-back day) or none (the skipped hour of a spring-forward day)."""
    naive = datetime.combine(day, datetime.min.time()) + timedelta(minutes=slot)
    instants = []
    for fold in (0, 1):
        at = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if at.astimezone(zone).replace(tzinfo=None) == naive and at not in instants:
            instants.append(at)
    return instants


def report_slots(
    *,
    starts_at: datetime,
    ends_at: datetime,
    actions: list[tuple[datetime, datetime]],
    zone: ZoneInfo,
    method: BaselineMethod,
    excluded_days: set[date] = frozenset(),
) -> ReportSlots:
    """The intervals a report reads (see the module's docstring). `actions` are the action windows, in order:
    an event interval belongs to the action whose window holds its start (-1: between actions)."""
    event_day = starts_at.astimezone(zone).date()
    rows: list[tuple[int, int, datetime, str, int]] = []
    slot_instants: dict[int, datetime] = {}
    at = _floor(starts_at)
    while at < ends_at:
        local = at.astimezone(zone)
        slot = (local.date() - event_day).days * 1440 + local.hour * 60 + local.minute
        action_no = next(
            (i for i, (a_start, a_end) in enumerate(actions) if _floor(a_start) <= at < a_end),
            -1,
        )
        rows.append((0, slot, at, "E", action_no))
        slot_instants.setdefault(slot, at)
        at += timedelta(minutes=SLOT_MINUTES)
    event_slots = sorted(slot_instants)
    window: list[int] = []
    if method.adjustment != NO_ADJUSTMENT and event_slots:
        start, end = method.window_minutes
        first = event_slots[0]
        # as the reference: the window's intervals on the event's own day only
        window = [s for s in range(first - start, first - end, SLOT_MINUTES) if s >= 0]
    for slot in window:
        rows.extend((0, slot, at, "W", -1) for at in _wall_clock_instants(event_day, slot, zone) if at < starts_at)
    weekend = event_day.weekday() >= 5
    for day_no in range(1, method.lookback_days + 1):
        day = event_day - timedelta(days=day_no)
        if day in excluded_days or (method.same_day_type and (day.weekday() >= 5) != weekend):
            continue
        for role, slots in (("E", event_slots), ("W", window)):
            for slot in slots:
                rows.extend((day_no, slot, at, role, -1) for at in _wall_clock_instants(day, slot, zone))
    return ReportSlots(
        rows=rows, event_slots=event_slots, slot_instants=slot_instants, excluded_days=sorted(excluded_days)
    )


def _program_event_days(event: DispatchEvent, zone: ZoneInfo, lookback_days: int) -> set[date]:
    """The local days on which another of the program's events ran: not the devices' usual behaviour."""
    since = event.starts_at - timedelta(days=lookback_days + 2)
    others = (
        DispatchEvent.objects.filter(
            workspace_id=event.workspace_id,
            program_id=event.program_id,
            status__in=[DispatchEventStatus.IN_PROGRESS, DispatchEventStatus.COMPLETED],
            starts_at__lt=event.starts_at,
            ends_at__gt=since,
        )
        .exclude(pk=event.pk)
        .values_list("starts_at", "ends_at")
    )
    days: set[date] = set()
    for starts, ends in others:
        day, last = starts.astimezone(zone).date(), ends.astimezone(zone).date()
        while day <= last:
            days.add(day)
            day += timedelta(days=1)
    return days


# -- the SQL ---------------------------------------------------------------------------------------------


def _clamp(expression: str, low: str, high: str) -> str:
    if connection.vendor == "postgresql":
        return f"LEAST(GREATEST({expression}, {low}), {high})"
    return f"min(max({expression}, {low}), {high})"


def _analyze(cursor, table: str) -> None:
    """PostgreSQL plans the next statements with the temporary table's real size (it keeps no statistics of
    its own for them): without it, joins over millions of rows become nested loops."""
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {table}")


def _drop_temp_tables(cursor) -> None:
    for view in _TEMP_VIEWS:
        cursor.execute(f"DROP VIEW IF EXISTS {view}")
    for table in _TEMP_TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def _values(event: DispatchEvent, rows: list[tuple]) -> tuple[str, str, list]:
    """The participants' rollups on the given intervals, as (device_id, day_no, slot, b, n):
    the WITH clauses to put before a statement, the SELECT, and their parameters in order. An interval with two
    instants (a fall-back day's repeated hour) is averaged; every other has one, so its rollup is taken as it
    is, without grouping millions of rows that are already one each."""
    adapt = connection.ops.adapt_datetimefield_value
    instants: dict[tuple[int, int, str], int] = {}
    for day_no, slot, *_ in rows:
        instants[(day_no, slot)] = instants.get((day_no, slot), 0) + 1
    single = [row for row in rows if instants[(row[0], row[1])] == 1]
    repeated = [row for row in rows if instants[(row[0], row[1])] > 1]
    members = "SELECT device_id FROM dispatch_participation WHERE event_id = %s AND included_at IS NOT NULL"
    tables, parts, params, tail = [], [], [], []
    for name, subset, grouped in (("single", single, False), ("repeated", repeated, True)):
        if not subset:
            continue
        placeholders = ", ".join(["(%s, %s, %s)"] * len(subset))
        tables.append(f"{name}(day_no, slot, at) AS (VALUES {placeholders})")
        for day_no, slot, at, *_ in subset:
            params += [day_no, slot, adapt(at)]
        means = (
            "avg(r.charge_rate_w) AS b, avg(r.grid_power_w) AS n"
            if grouped
            else ("r.charge_rate_w AS b, r.grid_power_w AS n")
        )
        group = " GROUP BY r.device_id, s.day_no, s.slot" if grouped else ""
        at_instants = ""
        instants_params = []
        if connection.vendor == "postgresql":
            # the instants themselves, as the floor's aggregate reads them: a hashed lookup in the scan, so only
            # the rows read reach the join (not every rollup of the lookback)
            at_instants = " AND r.interval_start = ANY(%s)"
            instants_params = [sorted({row[2] for row in subset})]
        parts.append(
            f"""
            SELECT r.device_id AS device_id, s.day_no AS day_no, s.slot AS slot, {means}
            FROM fleet_telemetryrollup r
            JOIN {name} s ON s.at = r.interval_start
            WHERE r.workspace_id = %s AND r.interval_start >= %s AND r.interval_start <= %s{at_instants}
              AND r.device_id IN ({members}){group}
            """  # noqa: S608 - placeholders and this module's SQL
        )
        tail += [
            event.workspace_id,
            adapt(min(row[2] for row in subset)),
            adapt(max(row[2] for row in subset)),
            *instants_params,
            event.pk,
        ]
    if not parts:  # nothing to read (no candidate day): an empty source of the same shape
        tables.append("nothing(x) AS (VALUES (0))")
        parts.append(
            "SELECT 0 AS device_id, 0 AS day_no, 0 AS slot, "  # noqa: S608
            f"{NULL_FLOAT} AS b, {NULL_FLOAT} AS n FROM nothing WHERE 1 = 0"
        )
    return ", ".join(tables), " UNION ALL ".join(parts), params + tail


def _compute(cursor, *, event: DispatchEvent, report_id: int, slots: ReportSlots, method: BaselineMethod) -> None:
    """Steps 2–4 of the module's docstring: the device rows of report `report_id`."""
    members = "SELECT device_id FROM dispatch_participation WHERE event_id = %s AND included_at IS NOT NULL"
    need = max(1, math.ceil(method.min_coverage * len(slots.event_slots) - 1e-9))
    highest = method.highest or method.days
    if method.lookback_days <= MASK_DAYS:
        # each device's chosen days as the bits of one integer per metric, joined to one small row per device
        # instead of to each of their days (bits of a 64-bit 1: PostgreSQL's 32-bit 1 << 40 is 1 << 8)
        chosen = """
        masks AS (
            SELECT device_id,
                   CAST(sum(CASE WHEN metric = 'battery' AND chosen = 1 THEN CAST(1 AS BIGINT) << day_no ELSE 0 END)
                        AS BIGINT) AS mb,
                   CAST(sum(CASE WHEN metric = 'net_at_meter' AND chosen = 1 THEN CAST(1 AS BIGINT) << day_no
                                 ELSE 0 END) AS BIGINT) AS mn
            FROM days GROUP BY device_id
        ),
        side AS (
            SELECT v.device_id, v.slot, {today},
                   avg(CASE WHEN v.day_no > 0 AND (m.mb >> v.day_no) & 1 = 1 THEN v.b END) AS ub,
                   avg(CASE WHEN v.day_no > 0 AND (m.mn >> v.day_no) & 1 = 1 THEN v.n END) AS un
            FROM v LEFT JOIN masks m ON m.device_id = v.device_id
            GROUP BY v.device_id, v.slot
        )"""
    else:
        chosen = """
        side AS (
            SELECT v.device_id, v.slot, {today},
                   avg(CASE WHEN cb.day_no IS NOT NULL THEN v.b END) AS ub,
                   avg(CASE WHEN cn.day_no IS NOT NULL THEN v.n END) AS un
            FROM v
            LEFT JOIN days cb ON cb.device_id = v.device_id AND cb.day_no = v.day_no AND cb.metric = 'battery'
                              AND cb.chosen = 1
            LEFT JOIN days cn ON cn.device_id = v.device_id AND cn.day_no = v.day_no
                              AND cn.metric = 'net_at_meter' AND cn.chosen = 1
            WHERE v.day_no = 0 OR cb.day_no IS NOT NULL OR cn.day_no IS NOT NULL
            GROUP BY v.device_id, v.slot
        )"""
    # the event day's values beside the usual ones, interval by interval: one grouping of the rows read serves both
    chosen = chosen.replace(
        "{today}",
        """count(CASE WHEN v.day_no = 0 THEN 1 END) AS today,
                   avg(CASE WHEN v.day_no = 0 THEN v.b END) AS tb, avg(CASE WHEN v.day_no = 0 THEN v.n END) AS tn""",
    )
    # X of Y with X < Y ranks the Y days by load; all of Y takes every one of them (no ordering to pay for)
    by_load = "row_number() OVER (PARTITION BY device_id, metric ORDER BY load DESC, day_no)"
    load_rank = by_load if highest < method.days else "1"
    # the rollups read once, held in memory for the statement (a materialized WITH, not a table): the event's
    # day as it is, the candidate days' coverage of the event's intervals and load over them, which of them are
    # chosen, and the unadjusted baseline, each chosen day's values averaged interval by interval
    ctes, source, params = _values(event, slots.rows)
    # the window's intervals all come before the event's: an interval's role is which side of the first it is on
    first_event_slot = int(slots.event_slots[0])
    slot_actions: dict[int, int] = {}
    for day_no, slot, _, role, action_no in slots.rows:
        if day_no == 0 and role == "E":
            slot_actions.setdefault(slot, action_no)
    cursor.execute(
        f"""
        CREATE TEMP TABLE rpt_read AS
        WITH {ctes},
        v AS MATERIALIZED ({source}),
        stats AS (
            SELECT device_id, day_no, count(b) AS nb, avg(b) AS lb, count(n) AS nn, avg(n) AS ln
            FROM v WHERE day_no > 0 AND slot >= {first_event_slot}
            GROUP BY device_id, day_no
        ),
        eligible AS (
            SELECT device_id, 'battery' AS metric, day_no, lb AS load FROM stats WHERE nb >= %s
            UNION ALL
            SELECT device_id, 'net_at_meter' AS metric, day_no, ln AS load FROM stats WHERE nn >= %s
        ),
        recent AS (
            SELECT device_id, metric, day_no, load,
                   row_number() OVER (PARTITION BY device_id, metric ORDER BY day_no) AS recent_rank
            FROM eligible
        ),
        ranked AS (
            SELECT device_id, metric, day_no,
                   count(*) OVER (PARTITION BY device_id, metric) AS eligible_days,
                   {load_rank} AS load_rank
            FROM recent WHERE recent_rank <= %s
        ),
        days AS MATERIALIZED (
            SELECT device_id, metric, day_no, eligible_days,
                   CASE WHEN eligible_days >= %s AND load_rank <= %s THEN 1 ELSE 0 END AS chosen
            FROM ranked
        ),
        {chosen}
        SELECT 'S' AS kind, device_id, CAST(NULL AS INTEGER) AS day_no, slot, today, tb, tn, ub, un,
               CAST(NULL AS TEXT) AS metric, CAST(NULL AS INTEGER) AS eligible_days, CAST(NULL AS INTEGER) AS chosen
        FROM side WHERE today > 0 OR ub IS NOT NULL OR un IS NOT NULL
        UNION ALL
        SELECT 'D', device_id, day_no, NULL, NULL, NULL, NULL, NULL, NULL, metric, eligible_days, chosen FROM days
        """,  # noqa: S608 - placeholders and this module's SQL
        [*params, need, need, method.days, method.min_days, highest],
    )
    _analyze(cursor, "rpt_read")
    # what the next statements read of it
    cursor.execute(
        f"""
        CREATE TEMP VIEW rpt_side AS
        SELECT device_id, slot, CASE WHEN slot >= {first_event_slot} THEN 'E' ELSE 'W' END AS role,
               today, tb, tn, ub, un
        FROM rpt_read WHERE kind = 'S'
        """  # noqa: S608 - the interpolated part is an integer
    )
    cursor.execute(
        "CREATE TEMP VIEW rpt_days AS "
        "SELECT device_id, metric, day_no, eligible_days, chosen FROM rpt_read WHERE kind = 'D'"
    )
    # the day-of adjustment, from the window's intervals with both a reading today and a usual value
    if method.adjustment == MULTIPLICATIVE:
        low_f, high_f = method.factor_limits
        factor = (
            f"CASE WHEN p.pairs IS NULL OR abs(p.usual) < 1e-9 THEN NULL "
            f"ELSE {_clamp('p.seen / p.usual', repr(float(low_f)), repr(float(high_f)))} END"
        )
        raw_factor = "CASE WHEN p.pairs IS NULL OR abs(p.usual) < 1e-9 THEN NULL ELSE p.seen / p.usual END"
        offset = NULL_FLOAT
    elif method.adjustment == ADDITIVE:
        factor = raw_factor = NULL_FLOAT
        offset = "p.seen - p.usual"
        if method.offset_limit is not None:
            limit = repr(float(method.offset_limit))
            offset = _clamp(offset, f"-{limit}", limit)
        offset = f"CASE WHEN p.pairs IS NULL THEN NULL ELSE {offset} END"
    else:
        factor = raw_factor = offset = NULL_FLOAT
    window_missing = "p.pairs IS NULL" if method.adjustment != NO_ADJUSTMENT else "1 = 0"
    pair_b, pair_n = "s.ub IS NOT NULL AND s.tb IS NOT NULL", "s.un IS NOT NULL AND s.tn IS NOT NULL"
    cursor.execute(
        f"""
        CREATE TEMP TABLE rpt_verdict AS
        WITH metrics(metric) AS (VALUES ('battery'), ('net_at_meter')),
        counts AS (
            SELECT device_id, metric, max(eligible_days) AS eligible_days, sum(chosen) AS used_days
            FROM rpt_days GROUP BY device_id, metric
        ),
        both_pairs AS (
            SELECT s.device_id,
                   avg(CASE WHEN {pair_b} THEN s.tb END) AS seen_b, avg(CASE WHEN {pair_b} THEN s.ub END) AS usual_b,
                   sum(CASE WHEN {pair_b} THEN 1 ELSE 0 END) AS pairs_b,
                   avg(CASE WHEN {pair_n} THEN s.tn END) AS seen_n, avg(CASE WHEN {pair_n} THEN s.un END) AS usual_n,
                   sum(CASE WHEN {pair_n} THEN 1 ELSE 0 END) AS pairs_n
            FROM rpt_side s
            WHERE s.role = 'W'
            GROUP BY s.device_id
        ),
        pairs AS (
            SELECT device_id, 'battery' AS metric, seen_b AS seen, usual_b AS usual, pairs_b AS pairs
            FROM both_pairs WHERE pairs_b > 0
            UNION ALL
            SELECT device_id, 'net_at_meter' AS metric, seen_n AS seen, usual_n AS usual, pairs_n AS pairs
            FROM both_pairs WHERE pairs_n > 0
        ),
        joined AS (
            SELECT m.device_id, x.metric, coalesce(c.eligible_days, 0) AS eligible_days,
                   coalesce(c.used_days, 0) AS used_days, p.seen, p.usual, p.pairs
            FROM ({members}) m
            CROSS JOIN metrics x
            LEFT JOIN counts c ON c.device_id = m.device_id AND c.metric = x.metric
            LEFT JOIN pairs p ON p.device_id = m.device_id AND p.metric = x.metric
        )
        SELECT p.device_id, p.metric, p.eligible_days, p.used_days,
               {factor} AS factor, {raw_factor} AS raw_factor, {offset} AS "offset",
               CASE
                 WHEN p.used_days = 0 THEN
                   CAST(p.eligible_days AS TEXT)
                   || CASE WHEN p.eligible_days = 1 THEN ' eligible day' ELSE ' eligible days' END
                   || ' in the {method.lookback_days} before the event; the method needs at least {method.min_days}.'
                 WHEN {window_missing} THEN 'No readings in the adjustment window before the event.'
                 ELSE ''
               END AS no_baseline
        FROM joined p
        """,  # noqa: S608 - the interpolated parts are numbers and this module's SQL
        [event.pk],
    )
    _analyze(cursor, "rpt_verdict")
    baselines = []
    for usual, alias in (("v.ub", "vb"), ("v.un", "vn")):
        if method.adjustment == MULTIPLICATIVE:
            adjusted = f"{usual} * coalesce({alias}.factor, 1.0)"
        elif method.adjustment == ADDITIVE:
            adjusted = f'{usual} + {alias}."offset"'
        else:
            adjusted = usual
        baselines.append(f"CASE WHEN {alias}.no_baseline = '' THEN {adjusted} END")
    cursor.execute(
        f"""
        CREATE TEMP TABLE rpt_cells AS
        WITH actions(slot, action_no) AS (VALUES {", ".join(["(%s, %s)"] * len(slot_actions))})
        SELECT v.device_id, v.slot, a.action_no, v.tb AS actual_b, {baselines[0]} AS baseline_b,
               v.tn AS actual_n, {baselines[1]} AS baseline_n
        FROM rpt_side v
        JOIN actions a ON a.slot = v.slot
        JOIN rpt_verdict vb ON vb.device_id = v.device_id AND vb.metric = 'battery'
        JOIN rpt_verdict vn ON vn.device_id = v.device_id AND vn.metric = 'net_at_meter'
        WHERE v.today > 0
        """,  # noqa: S608
        [value for pair in slot_actions.items() for value in pair],
    )
    _analyze(cursor, "rpt_cells")
    intervals = len(slots.event_slots) or 1
    per_metric = []
    for prefix, suffix in (("battery", "b"), ("net", "n")):
        covered = _covered(suffix)
        per_metric.append(
            f"""
            sum(CASE WHEN {covered} THEN c.actual_{suffix} END) * {HOURS_PER_SLOT / 1000!r} AS {prefix}_actual,
            sum(CASE WHEN {covered} THEN c.baseline_{suffix} END) * {HOURS_PER_SLOT / 1000!r} AS {prefix}_baseline,
            sum(CASE WHEN {covered} THEN 1 ELSE 0 END) AS {prefix}_covered"""
        )
    device_columns = []
    selects = []
    for metric, prefix, alias in (("battery", "battery", "vb"), ("net_at_meter", "net", "vn")):
        device_columns += [
            f"{prefix}_actual_kwh",
            f"{prefix}_baseline_kwh",
            f"{prefix}_delivered_kwh",
            f"{prefix}_coverage",
            f"{prefix}_days",
            f"{prefix}_factor",
            f"{prefix}_no_baseline",
        ]
        has = f"{alias}.no_baseline = ''"
        selects += [
            f"CASE WHEN {has} THEN coalesce(a.{prefix}_actual, 0) END",
            f"CASE WHEN {has} THEN coalesce(a.{prefix}_baseline, 0) END",
            f"CASE WHEN {has} THEN {SIGN[metric]!r} * (coalesce(a.{prefix}_actual, 0) - "
            f"coalesce(a.{prefix}_baseline, 0)) END",
            f"CASE WHEN {has} THEN coalesce(a.{prefix}_covered, 0) * 1.0 / {intervals} END",
            f"CASE WHEN {alias}.device_id IS NOT NULL THEN {alias}.used_days END",
            f'CASE WHEN {has} THEN coalesce({alias}.factor, {alias}."offset") END',
            f"coalesce({alias}.no_baseline, '')",
        ]
    cursor.execute(
        f"""
        INSERT INTO dispatch_eventreportdevice (
            workspace_id, report_id, device_id, status, reason_code, commanded, confirmed, restored, opted_out,
            {", ".join(device_columns)}
        )
        SELECT p.workspace_id, %s, p.device_id, p.status, p.reason_code,
               p.commanded_at IS NOT NULL, p.confirmed_at IS NOT NULL, p.restored_at IS NOT NULL,
               p.opted_out_at IS NOT NULL,
               {", ".join(selects)}
        FROM dispatch_participation p
        LEFT JOIN (SELECT c.device_id, {",".join(per_metric)} FROM rpt_cells c GROUP BY c.device_id) a
               ON a.device_id = p.device_id
        LEFT JOIN rpt_verdict vb ON vb.device_id = p.device_id AND vb.metric = 'battery'
        LEFT JOIN rpt_verdict vn ON vn.device_id = p.device_id AND vn.metric = 'net_at_meter'
        WHERE p.event_id = %s
        """,  # noqa: S608 - the interpolated parts are this module's SQL and numbers
        [report_id, event.pk],
    )


def _covered(suffix: str) -> str:
    """A cell of `rpt_cells` counts for a metric (b or n) when it has both a reading and a baseline."""
    return f"c.actual_{suffix} IS NOT NULL AND c.baseline_{suffix} IS NOT NULL"


def _series(cursor, *, slots: ReportSlots, zone: ZoneInfo) -> tuple[dict, dict[int, dict]]:
    """The fleet's power per event interval against its baseline (devices with a baseline and a reading in
    that interval), and the totals per action, from `rpt_cells`."""
    sums = []
    for suffix in ("b", "n"):
        covered = _covered(suffix)
        sums.append(
            f"sum(CASE WHEN {covered} THEN c.actual_{suffix} END), "
            f"sum(CASE WHEN {covered} THEN c.baseline_{suffix} END), "
            f"sum(CASE WHEN {covered} THEN 1 ELSE 0 END)"
        )
    cursor.execute(f"SELECT c.slot, {', '.join(sums)} FROM rpt_cells c GROUP BY c.slot")  # noqa: S608
    points = {}
    for slot, *sums_of_slot in cursor.fetchall():
        for i, metric in enumerate(METRICS):
            actual, baseline, n = sums_of_slot[3 * i : 3 * i + 3]
            if n:
                points[(metric, slot)] = (actual, baseline, n)
    series: dict = {
        "intervals": [slots.slot_instants[s].isoformat() for s in slots.event_slots],
        "labels": [slots.slot_instants[s].astimezone(zone).strftime("%H:%M") for s in slots.event_slots],
    }
    for metric in METRICS:
        rows = [points.get((metric, s)) for s in slots.event_slots]
        series[metric] = {
            "actual_kw": [round(r[0] / 1000, 3) if r else None for r in rows],
            "baseline_kw": [round(r[1] / 1000, 3) if r else None for r in rows],
            "devices": [r[2] if r else 0 for r in rows],
        }
    cursor.execute(f"SELECT c.action_no, {', '.join(sums)} FROM rpt_cells c GROUP BY c.action_no")  # noqa: S608
    per_action: dict[int, dict] = {}
    for action_no, *sums_of_action in cursor.fetchall():
        for i, metric in enumerate(METRICS):
            actual, baseline, n = sums_of_action[3 * i : 3 * i + 3]
            if n:
                kwh = HOURS_PER_SLOT / 1000  # as the device rows' sums are scaled
                per_action.setdefault(action_no, {})[metric] = _energy(actual * kwh, baseline * kwh, SIGN[metric])
    return series, per_action


def _energy(actual, baseline, sign) -> dict:
    actual, baseline = actual or 0.0, baseline or 0.0
    return {
        "actual_kwh": round(actual, 4),
        "baseline_kwh": round(baseline, 4),
        "delivered_kwh": round(sign * (actual - baseline), 4),
    }


def _participation_timeline(cursor, *, event: DispatchEvent, zone: ZoneInfo) -> dict:
    """How many devices were commanded, confirmed, opted out and restored by each moment of the event and
    its restore: one query over the participations."""
    cursor.execute(
        "SELECT max(restored_at) FROM dispatch_participation WHERE event_id = %s",
        [event.pk],
    )
    restored_last = cursor.fetchone()[0]
    if isinstance(restored_last, str):
        restored_last = datetime.fromisoformat(restored_last).replace(tzinfo=UTC)
    end = max(event.ends_at, restored_last or event.ends_at)
    span = (end - event.starts_at).total_seconds()
    step = max(60, math.ceil(span / TIMELINE_POINTS / 60) * 60)
    moments = []
    at = event.starts_at
    while at <= end + timedelta(seconds=step):
        moments.append(at)
        at += timedelta(seconds=step)
    adapt = connection.ops.adapt_datetimefield_value
    values = ", ".join(["(%s, %s)"] * len(moments))
    params: list = []
    for i, moment in enumerate(moments):
        params += [i, adapt(moment)]
    cursor.execute(
        f"""
        WITH moments(i, at) AS (VALUES {values})
        SELECT m.i,
               sum(CASE WHEN p.commanded_at <= m.at THEN 1 ELSE 0 END),
               sum(CASE WHEN p.confirmed_at <= m.at THEN 1 ELSE 0 END),
               sum(CASE WHEN p.opted_out_at <= m.at THEN 1 ELSE 0 END),
               sum(CASE WHEN p.restored_at <= m.at THEN 1 ELSE 0 END)
        FROM moments m CROSS JOIN dispatch_participation p
        WHERE p.event_id = %s
        GROUP BY m.i ORDER BY m.i
        """,  # noqa: S608 - placeholders only
        [*params, event.pk],
    )
    rows = {i: (c, f, o, r) for i, c, f, o, r in cursor.fetchall()}
    return {
        "moments": [m.isoformat() for m in moments],
        "labels": [m.astimezone(zone).strftime("%H:%M") for m in moments],
        "commanded": [rows.get(i, (0, 0, 0, 0))[0] for i in range(len(moments))],
        "confirmed": [rows.get(i, (0, 0, 0, 0))[1] for i in range(len(moments))],
        "opted_out": [rows.get(i, (0, 0, 0, 0))[2] for i in range(len(moments))],
        "restored": [rows.get(i, (0, 0, 0, 0))[3] for i in range(len(moments))],
    }


def _totals(report: EventReport) -> dict:
    """Each metric's fleet totals: the sums of the device rows (so they always agree)."""
    devices = EventReportDevice.objects.filter(report=report)
    totals = {}
    for metric, prefix in (("battery", "battery"), ("net_at_meter", "net")):
        agg = devices.aggregate(
            actual=Sum(f"{prefix}_actual_kwh"),
            baseline=Sum(f"{prefix}_baseline_kwh"),
            delivered=Sum(f"{prefix}_delivered_kwh"),
            measured=Count("pk", filter=Q(**{f"{prefix}_delivered_kwh__isnull": False})),
            no_baseline=Count("pk", filter=~Q(**{f"{prefix}_no_baseline": ""})),
            coverage=Sum(f"{prefix}_coverage"),
        )
        measured = agg["measured"]
        totals[metric] = {
            "actual_kwh": round(agg["actual"] or 0.0, 4),
            "baseline_kwh": round(agg["baseline"] or 0.0, 4),
            "delivered_kwh": round(agg["delivered"] or 0.0, 4),
            "devices": measured,
            "no_baseline": agg["no_baseline"],
            "coverage": round((agg["coverage"] or 0.0) / measured, 4) if measured else None,
        }
    return totals


@transaction.atomic
def event_report_compile(
    *, event: DispatchEvent, now: datetime | None = None, full_refresh: bool = False
) -> EventReport:
    """Compile (or recompile) the event's report: its device rows and totals, replacing any earlier one, and
    announce it (`program_event.report_compiled`). The rollups of the event's last hour (`full_refresh`: of its
    whole day) are refreshed from the raw readings first, so readings that arrived since the periodic refresh
    count."""
    from fleet.services import telemetry_rollups_refresh

    started = time.monotonic()
    now = now or timezone.now()
    event = DispatchEvent.objects.select_for_update().select_related("program", "strategy").get(pk=event.pk)
    zone = event.program.zone
    method = baseline_method_of(event.strategy)
    actions = list(event.actions.order_by("starts_at").values_list("pk", "action_type", "starts_at", "ends_at"))
    slots = report_slots(
        starts_at=event.starts_at,
        ends_at=event.ends_at,
        actions=[(a_start, a_end) for _, _, a_start, a_end in actions],
        zone=zone,
        method=method,
        excluded_days=_program_event_days(event, zone, method.lookback_days),
    )
    member_ids = Participation.objects.filter(event=event, included_at__isnull=False).values_list(
        "device_id", flat=True
    )
    # readings that came in since the periodic refresh (beat's fleet-telemetry-rollups, every 5 minutes over
    # the last two hours): the event's last hour at completion; its whole day (the adjustment window and the
    # intervals) when compiled again on demand, for readings that arrived late
    day_of = event.starts_at - timedelta(minutes=method.window_minutes[0] + SLOT_MINUTES)
    telemetry_rollups_refresh(
        since=day_of if full_refresh else max(day_of, event.ends_at - REFRESH_AT_COMPLETION),
        until=min(now, event.ends_at + timedelta(minutes=SLOT_MINUTES)),
        device_ids=list(member_ids),
    )
    EventReport.objects.filter(event=event).delete()
    report = EventReport.objects.create(
        workspace_id=event.workspace_id,
        event=event,
        compiled_at=now,
        method={**asdict(method), "min_intervals": len(slots.event_slots)},
        method_description=method.describe()[:400],
        timezone=str(zone),
        counts=event_participation_counts(event=event),
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # a few million rows grouped and joined in memory rather than spilled to disk (this transaction only)
            cursor.execute(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")
            # compiling plans for a few statements costs more than it saves on them
            cursor.execute("SET LOCAL jit = off")
            # the one read of the rollups in parallel workers too: priced at the default, handing its rows to the
            # statement (estimated at the whole lookback, not the instants read) looks dearer than it is
            cursor.execute("SET LOCAL parallel_tuple_cost = 0.01")
        _drop_temp_tables(cursor)
        if slots.event_slots:
            _compute(cursor, event=event, report_id=report.pk, slots=slots, method=method)
            series, per_action = _series(cursor, slots=slots, zone=zone)
        else:
            series, per_action = {}, {}
        series["participation"] = _participation_timeline(cursor, event=event, zone=zone)
        # on an error the transaction's rollback takes them away (DDL is transactional in both databases)
        _drop_temp_tables(cursor)
    report.totals = _totals(report)
    report.actions = [
        {
            "id": action_id,
            "type": action_type,
            "startsAt": a_start.isoformat(),
            "endsAt": a_end.isoformat(),
            **{metric: per_action.get(i, {}).get(metric, _energy(0, 0, SIGN[metric])) for metric in METRICS},
        }
        for i, (action_id, action_type, a_start, a_end) in enumerate(actions)
    ]
    report.series = series
    report.compile_ms = int((time.monotonic() - started) * 1000)
    report.save(update_fields=["totals", "actions", "series", "compile_ms", "last_updated"])
    event_emit(
        workspace_id=event.workspace_id,
        type=DispatchEventType.PROGRAM_EVENT_REPORT_COMPILED,
        key=f"program_event.report_compiled:{event.pk}:{now.isoformat()}",
        data={
            **dispatch_event_data(event),
            "report": {
                "compiledAt": now.isoformat(),
                "deliveredKwh": report.totals["battery"]["delivered_kwh"],
                "baselineKwh": report.totals["battery"]["baseline_kwh"],
                "netDeliveredKwh": report.totals["net_at_meter"]["delivered_kwh"],
                "devices": report.counts["targeted"],
                "noBaseline": report.totals["battery"]["no_baseline"],
            },
        },
        timestamp=now,
    )
    return report


def event_report_recompile(*, event: DispatchEvent, actor=None) -> EventReport:
    """On demand (staff, an integrator): compile again, e.g. after late telemetry or history came in. Only an
    event that ran has anything to report."""
    from texture_portal.exceptions import InvalidTransition

    if event.status not in (DispatchEventStatus.IN_PROGRESS, DispatchEventStatus.COMPLETED) and not (
        event.status == DispatchEventStatus.CANCELLED and event.participations.exists()
    ):
        raise InvalidTransition(
            f"“{event.name}” has not run ({event.get_status_display().lower()}): there is nothing to report yet."
        )
    return event_report_compile(event=event, full_refresh=True)
