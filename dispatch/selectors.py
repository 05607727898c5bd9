"""Reads of dispatch: the devices an event targets (one query, with what classifying them needs), and the
counts of an event's participations."""

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from dispatch.choices import PARTICIPATING, CommandStatus, DispatchEventStatus, ParticipationStatus
from dispatch.models import BatchCommand, Command, DispatchEvent, EventReport, EventReportDevice, Participation
from fleet.models import Device
from integrations.models import WorkspaceIntegration
from programs.models import Enrollment

# What classifying a device needs, read in the one query (the device, its maker, its latest reading).
TARGET_FIELDS = (
    "pk",
    "device_type",
    "state",
    "manufacturer__name",
    "manufacturer__integration_channel",
    "manufacturer__is_read_only",
    "manufacturer__supports_grid_services",
    "grid_services_status",  # as the OEM last showed it (fleet.choices.GridServicesStatus)
    "latest_telemetry__measured_at",
    "latest_telemetry__charge_percentage",
    "latest_telemetry__charge_rate_w",
    "latest_telemetry__backup_reserve_percent",
    "latest_telemetry__strategy",
    "latest_telemetry__charging_state",
    "latest_telemetry__is_storm_mode_active",
    "latest_telemetry__is_plugged_in",
    "latest_telemetry__charge_limit_percent",
)


def event_target_rows(*, event: DispatchEvent) -> list[dict]:
    """Every device the event targets — the program's enrolled devices (whatever their enrollment's status:
    one not approved is targeted and excluded with that reason), narrowed to the event's tags if it has any —
    with its enrollment status, whether its integration is enabled, and whether it takes part in another
    event whose window overlaps this one's. One query, whatever the number of devices."""
    enrollment = Enrollment.objects.filter(device_id=OuterRef("pk"), program_id=event.program_id)
    devices = Device.objects.filter(workspace_id=event.workspace_id).annotate(
        enrollment_status=Subquery(enrollment.values("status")[:1]),
        integration_enabled=Exists(
            WorkspaceIntegration.objects.filter(
                workspace_id=event.workspace_id,
                channel=OuterRef("manufacturer__integration_channel"),
                enabled=True,
            )
        ),
        busy_elsewhere=Exists(
            Participation.objects.filter(
                workspace_id=event.workspace_id,
                device_id=OuterRef("pk"),
                status__in=PARTICIPATING,
                event__status=DispatchEventStatus.IN_PROGRESS,
                event__starts_at__lt=event.ends_at,
                event__ends_at__gt=event.starts_at,
            ).exclude(event_id=event.pk)
        ),
    )
    devices = devices.filter(Exists(enrollment))
    tag_ids = list(event.target_tags.values_list("pk", flat=True))
    if tag_ids:
        devices = devices.filter(
            Exists(Device.tags.through.objects.filter(device_id=OuterRef("pk"), devicetag_id__in=tag_ids))
        )
    return list(
        devices.order_by("pk").values(*TARGET_FIELDS, "enrollment_status", "integration_enabled", "busy_elsewhere")
    )


def event_participations(*, event: DispatchEvent) -> QuerySet[Participation]:
    return Participation.objects.filter(workspace_id=event.workspace_id, event=event)


def _participation_totals() -> dict:
    """The aggregates of an event's live counts (each a column, or a set of statuses, of its participations):
    the Participation changelist's filters (`dispatch.filtersets.ParticipationFilterSet`) select the same rows."""
    return {
        "targeted": Count("pk"),
        "included": Count("pk", filter=Q(included_at__isnull=False)),
        "commanded": Count("pk", filter=Q(commanded_at__isnull=False)),
        "confirmed": Count("pk", filter=Q(confirmed_at__isnull=False)),
        "restored": Count("pk", filter=Q(restored_at__isnull=False)),
        "opted_out": Count("pk", filter=Q(status=ParticipationStatus.OPTED_OUT)),
        "failed": Count("pk", filter=Q(status__in=FAILED_STATUSES)),
        "not_responding": Count("pk", filter=Q(status=ParticipationStatus.NOT_RESPONDING)),
        "excluded": Count("pk", filter=Q(status=ParticipationStatus.EXCLUDED)),
    }


FAILED_STATUSES = [ParticipationStatus.FAILED, ParticipationStatus.RESTORE_FAILED]


def event_participation_counts(*, event: DispatchEvent) -> dict:
    """The event's live counts: targeted, by status, excluded by reason, and the steps reached."""
    rows = event_participations(event=event)
    totals = rows.aggregate(**_participation_totals())
    by_status = dict(rows.values_list("status").annotate(n=Count("pk")).order_by())
    excluded_by_reason = dict(
        rows.filter(status=ParticipationStatus.EXCLUDED).values_list("reason_code").annotate(n=Count("pk")).order_by()
    )
    return {**totals, "by_status": by_status, "excluded_by_reason": excluded_by_reason}


def events_participation_counts(*, workspace_ids: list[int], event_ids: list[int]) -> dict[int, dict]:
    """The live totals of several events (as `event_participation_counts` has them, without the breakdowns),
    in one grouped query: {event id: totals}; an event without participations yet has all zeros."""
    rows = (
        Participation.objects.filter(workspace_id__in=workspace_ids, event_id__in=event_ids)
        .values("event_id")
        .annotate(**_participation_totals())
        .order_by()
    )
    zero = dict.fromkeys(_participation_totals(), 0)
    found = {row.pop("event_id"): row for row in rows}
    return {event_id: found.get(event_id, zero) for event_id in event_ids}


def events_in_progress(*, workspace_ids: list[int], limit: int = 10) -> tuple[list[DispatchEvent], int]:
    """The running events of the workspaces, earliest started first (at most `limit`), and how many there are:
    two queries."""
    running = DispatchEvent.objects.filter(workspace_id__in=workspace_ids, status=DispatchEventStatus.IN_PROGRESS)
    events = list(running.select_related("program").order_by("starts_at", "pk")[:limit])
    return events, running.count()


def commands_failed_since(*, workspace_ids: list[int], since, limit: int = 5) -> tuple[int, list[Command]]:
    """How many commands failed (reached `failed`) at or after `since`, and the latest `limit` of them with
    their device and event: two queries. `CommandFilterSet`'s `status=failed&completedAfter=` lists the same."""
    failed = Command.objects.filter(
        workspace_id__in=workspace_ids, status=CommandStatus.FAILED, completed_at__gte=since
    )
    latest = list(
        failed.select_related("device__manufacturer", "dispatch_event").order_by("-completed_at", "-pk")[:limit]
    )
    return failed.count(), latest


def batch_command_summary(*, batch: BatchCommand) -> dict:
    """A batch's aggregate: its commands by status, the devices skipped, and one overall status (pending while
    any command is not finished; then succeeded, failed, or partly failed)."""
    by_status = dict(batch.commands.values_list("status").annotate(n=Count("pk")).order_by())
    total = sum(by_status.values())
    open_ = by_status.get("pending", 0) + by_status.get("sent", 0)
    failed = by_status.get("failed", 0) + by_status.get("skipped", 0)
    if open_:
        status = "in_progress"
    elif failed == 0:
        status = "succeeded"
    elif failed == total:
        status = "failed"
    else:
        status = "partly_failed"
    return {"status": status, "commands": total, "by_status": by_status, "skipped": len(batch.skipped)}


def event_report_of(*, event: DispatchEvent) -> EventReport | None:
    """The event's stored report (one query), or None before its first compile."""
    return EventReport.objects.filter(workspace_id=event.workspace_id, event_id=event.pk).first()


def event_report_devices(*, report: EventReport) -> QuerySet[EventReportDevice]:
    """The report's device rows, with what their table shows of each device (no query per row)."""
    return EventReportDevice.objects.filter(workspace_id=report.workspace_id, report=report).select_related(
        "device__manufacturer"
    )


REPORT_CSV_COLUMNS = [
    ("deviceId", "device_id"),
    ("systemIdentifier", "device__system_identifier"),
    ("manufacturerSlug", "device__manufacturer__slug"),
    ("status", "status"),
    ("reasonCode", "reason_code"),
    ("commanded", "commanded"),
    ("confirmed", "confirmed"),
    ("restored", "restored"),
    ("optedOut", "opted_out"),
    ("batteryActualKwh", "battery_actual_kwh"),
    ("batteryBaselineKwh", "battery_baseline_kwh"),
    ("batteryDeliveredKwh", "battery_delivered_kwh"),
    ("batteryCoverage", "battery_coverage"),
    ("batteryBaselineDays", "battery_days"),
    ("batteryAdjustment", "battery_factor"),
    ("batteryNoBaseline", "battery_no_baseline"),
    ("netActualKwh", "net_actual_kwh"),
    ("netBaselineKwh", "net_baseline_kwh"),
    ("netDeliveredKwh", "net_delivered_kwh"),
    ("netCoverage", "net_coverage"),
    ("netBaselineDays", "net_days"),
    ("netAdjustment", "net_factor"),
    ("netNoBaseline", "net_no_baseline"),
]


def event_report_csv_rows(*, report: EventReport, queryset=None):
    """The device table as CSV rows (a header, then one row per device), read in chunks: numbers written in
    full (repr), so the CSV reads back to the same floats."""
    yield [header for header, _ in REPORT_CSV_COLUMNS]
    rows = (queryset if queryset is not None else event_report_devices(report=report)).order_by("device_id")
    for values in rows.values_list(*(field for _, field in REPORT_CSV_COLUMNS)).iterator(chunk_size=2000):
        yield [
            "" if v is None else (str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, float) else v)
            for v in values
        ]


# -- program rollups ---------------------------------------------------------------------------------------


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def program_dispatch_history(*, program) -> list[dict]:
    """The program's events that have a report, oldest first, each with its participation, opt-outs and energy
    delivered (both metrics): one query over the stored reports (their chart series left unread)."""
    reports = (
        EventReport.objects.filter(workspace_id=program.workspace_id, event__program_id=program.pk)
        .select_related("event")
        .defer("series", "actions", "method")
        .order_by("event__starts_at", "event_id")
    )
    history = []
    for report in reports:
        counts, totals, event = report.counts, report.totals, report.event
        history.append(
            {
                "eventId": event.pk,
                "name": event.name,
                "startsAt": event.starts_at,
                "isTest": event.is_test,
                "status": event.status,
                "targeted": counts.get("targeted", 0),
                "included": counts.get("included", 0),
                "commanded": counts.get("commanded", 0),
                "confirmed": counts.get("confirmed", 0),
                "optedOut": counts.get("opted_out", 0),
                "optOutShare": _share(counts.get("opted_out", 0), counts.get("included", 0)),
                "takingPartShare": _share(counts.get("included", 0), counts.get("targeted", 0)),
                "respondingShare": _share(counts.get("confirmed", 0), counts.get("commanded", 0)),
                "netDeliveredKwh": totals.get("net_at_meter", {}).get("delivered_kwh"),
                "batteryDeliveredKwh": totals.get("battery", {}).get("delivered_kwh"),
                "noBaseline": totals.get("battery", {}).get("no_baseline"),
            }
        )
    return history


def program_enrollment_over_time(*, program) -> list[dict]:
    """The program's approved enrollments, cumulated by the local day they were approved (one query): the
    devices enrolled today, by when they joined (an unenrolled device leaves the whole curve)."""
    from django.db.models.functions import Coalesce, TruncDate

    from programs.choices import EnrollmentStatus

    per_day = (
        Enrollment.objects.filter(
            workspace_id=program.workspace_id, program_id=program.pk, status=EnrollmentStatus.APPROVED
        )
        .annotate(day=TruncDate(Coalesce("decided_at", "submitted_at"), tzinfo=program.zone))
        .values_list("day")
        .annotate(n=Count("pk"))
        .order_by("day")
    )
    total, points = 0, []
    for day, n in per_day:
        total += n
        points.append({"day": day, "enrolled": total, "threshold": program.launch_threshold})
    return points


def program_health_over_time(*, program, days: int = 90) -> list[dict]:
    """The program's daily health rows (`programs.ProgramHealthDay`) of the last `days` days, oldest first, with
    the shares online and reporting: one query."""
    from programs.models import ProgramHealthDay

    rows = ProgramHealthDay.objects.filter(workspace_id=program.workspace_id, program_id=program.pk).order_by("-day")
    points = [
        {
            "day": row.day,
            "enrolled": row.enrolled,
            "online": row.online,
            "reporting": row.reporting,
            "onlineShare": _share(row.online, row.enrolled),
            "reportingShare": _share(row.reporting, row.enrolled),
        }
        for row in rows[:days]
    ]
    return points[::-1]
