"""Timelines of dispatch: an event's, from scheduled to completed with each device's command roundtrip in
between (`event_timeline_page`), and dispatch's part of a device's (fleet.timeline): its commands, the events
it took part in and its opt-outs (`register`, from DispatchConfig.ready).

Reads only: what the engine and the services recorded (DispatchAction's markers, Participation's times,
Command's statuses and times, the audit rows of the event's status changes, its report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import CharField, Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, TruncMinute
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from dispatch.choices import CommandPurpose, CommandStatus, DispatchEventStatus, ParticipationStatus
from dispatch.models import Command, DispatchAction, DispatchEvent, EventReport, Participation
from fleet.timeline import DeviceTimelineSource, TimelineEntry, device_timeline_source_register, device_zone
from texture_portal.choices import AuditAction
from texture_portal.models import AuditLogEntry
from texture_portal.timezones import abbreviation

COMMAND_TONES = {
    CommandStatus.PENDING: "info",
    CommandStatus.SENT: "info",
    CommandStatus.SUCCESS: "ok",
    CommandStatus.FAILED: "bad",
    CommandStatus.SKIPPED: "warn",
}
PARTICIPATION_TONES = {
    ParticipationStatus.INCLUDED: "info",
    ParticipationStatus.COMMANDED: "info",
    ParticipationStatus.CONFIRMED: "ok",
    ParticipationStatus.RESTORED: "ok",
    ParticipationStatus.EXCLUDED: "warn",
    ParticipationStatus.OPTED_OUT: "warn",
    ParticipationStatus.NOT_RESPONDING: "bad",
    ParticipationStatus.FAILED: "bad",
    ParticipationStatus.RESTORE_FAILED: "bad",
}


def _clock(value: datetime | None, zone=UTC) -> str:
    """'17:04:03 PDT': a time of day with its zone's abbreviation."""
    if value is None:
        return ""
    local = value.astimezone(zone)
    return f"{local:%H:%M:%S} {abbreviation(local)}"


def command_input_label(command: Command) -> str:
    """What the command asked, in a few words: `operatingMode discharge, minimumBatteryReserve 20`."""
    return ", ".join(f"{k} {v}" for k, v in (command.input or {}).items())


def command_roundtrip(command: Command, zone=UTC) -> str:
    """The command's steps as the log shows them: queued for its slot, sent (attempts), and its outcome, with
    their times in `zone`."""
    parts = []
    if command.status == CommandStatus.PENDING:
        parts.append(gettext("waiting for its slot at %(at)s") % {"at": _clock(command.not_before, zone)})
    if command.sent_at:
        attempts = f" (attempt {command.attempts})" if command.attempts > 1 else ""
        parts.append(gettext("sent %(at)s") % {"at": _clock(command.sent_at, zone)} + attempts)
    if command.status == CommandStatus.SENT:
        parts.append(gettext("awaiting the OEM's answer"))
    if command.status == CommandStatus.SUCCESS:
        parts.append(gettext("accepted %(at)s") % {"at": _clock(command.completed_at, zone)})
        if command.oem_reference:
            parts.append(gettext("OEM reference %(ref)s") % {"ref": command.oem_reference})
    if command.status in (CommandStatus.FAILED, CommandStatus.SKIPPED):
        label = gettext("failed") if command.status == CommandStatus.FAILED else gettext("skipped")
        parts.append(
            f"{label} {_clock(command.completed_at, zone)}"
            + (f": {command.status_reason}" if command.status_reason else "")
        )
    return " · ".join(parts)


# -- dispatch's part of a device's timeline ---------------------------------------------------------------------


def device_command_entries(device, since, until, limit: int) -> list[TimelineEntry]:
    """Each command to the device, at the time it went to the OEM (or was asked for, if it never went): one
    query. The OEM's answer, attempts and errors are the entry's detail."""
    rows = Command.objects.filter(workspace_id=device.workspace_id, device_id=device.pk).annotate(
        at=Coalesce("sent_at", "created")
    )
    if since is not None:
        rows = rows.filter(at__gte=since)
    if until is not None:
        rows = rows.filter(at__lte=until)
    rows = rows.select_related("dispatch_event", "requested_by").order_by("-at", "-pk")[:limit]
    zone = device_zone(device)
    entries = []
    for command in rows:
        why = command.get_purpose_display()
        if command.dispatch_event_id:
            why = f"{why}: {command.dispatch_event.name}"
        elif command.requested_by_id:
            why = f"{why}, {command.requested_by.get_username()}"
        asked = command_input_label(command)
        entries.append(
            TimelineEntry(
                at=command.at,
                kind="command",
                title=f"{command.slug}" + (f" ({asked})" if asked else "") + f" — {command.get_status_display()}",
                detail=f"{why} · {command_roundtrip(command, zone)}",
                link=reverse("admin:dispatch_command_change", args=[command.pk]),
                tone=COMMAND_TONES.get(command.status, "info"),
                key=f"command:{command.pk}",
            )
        )
    return entries


# The steps of a participation a device's timeline shows, each at its own time (commanded is the command's).
_STEPS = [
    ("included", "included_at", Q(included_at__isnull=False)),
    ("confirmed", "confirmed_at", Q(confirmed_at__isnull=False)),
    ("restored", "restored_at", Q(restored_at__isnull=False)),
    ("opted_out", "opted_out_at", Q(opted_out_at__isnull=False)),
    # an outcome with no time of its own: when the participation last changed
    (
        "outcome",
        "last_updated",
        Q(
            status__in=[
                ParticipationStatus.EXCLUDED,
                ParticipationStatus.NOT_RESPONDING,
                ParticipationStatus.FAILED,
                ParticipationStatus.RESTORE_FAILED,
            ]
        ),
    ),
]


def device_participation_entries(device, since, until, limit: int) -> list[TimelineEntry]:
    """The events the device was targeted by, each step at its time (included, confirmed by telemetry,
    restored, opted out, and an exclusion, a failure or not responding): one query (a UNION of the steps)."""
    base = Participation.objects.filter(workspace_id=device.workspace_id, device_id=device.pk)
    parts = []
    for step, column, condition in _STEPS:
        rows = base.filter(condition)
        if since is not None:
            rows = rows.filter(**{f"{column}__gte": since})
        if until is not None:
            rows = rows.filter(**{f"{column}__lte": until})
        parts.append(
            rows.order_by()
            .annotate(step=Value(step, output_field=CharField()), at=F(column))
            .values_list(
                "at",
                "step",
                "pk",
                "event_id",
                "event__name",
                "status",
                "reason_code",
                "reason",
                "opted_out_by__username",
            )
        )
    union = parts[0].union(*parts[1:], all=True).order_by("-at", "-pk", "step")[:limit]
    entries = []
    for at, step, pk, event_id, event_name, status, _code, reason, opted_out_by in union:
        link = reverse("admin:dispatch_dispatchevent_timeline", args=[event_id]) + f"?device={device.pk}"
        status_label = ParticipationStatus(status).label
        if step == "included":
            title, tone, detail = gettext("Included in “%(event)s”") % {"event": event_name}, "info", ""
        elif step == "confirmed":
            title, tone, detail = gettext("Confirmed by its telemetry in “%(event)s”") % {"event": event_name}, "ok", ""
        elif step == "restored":
            title, tone, detail = gettext("Restored after “%(event)s”") % {"event": event_name}, "ok", ""
        elif step == "opted_out":
            title = gettext("Opted out of “%(event)s”") % {"event": event_name}
            tone, detail = "warn", " · ".join(p for p in (reason, opted_out_by or "") if p)
        else:
            title = f"{status_label}: “{event_name}”"
            tone, detail = PARTICIPATION_TONES.get(status, "info"), reason
        entries.append(
            TimelineEntry(
                at=at,
                kind="opt_out" if step == "opted_out" else "event",
                title=title,
                detail=detail,
                link=link,
                tone=tone,
                key=f"participation:{pk}:{step}",
            )
        )
    return entries


# -- an event's timeline ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Milestone:
    """A step of the event as a whole (created, scheduled, started, an action's start and restore, completed,
    its report), or a planned time (`kind` "plan": the window opening and closing)."""

    at: datetime
    kind: str
    title: str
    detail: str = ""
    tone: str = "info"
    link: str = ""


STATUS_STEPS = {
    DispatchEventStatus.DRAFT: (_("Back to draft"), "info"),
    DispatchEventStatus.SCHEDULED: (_("Scheduled"), "info"),
    DispatchEventStatus.IN_PROGRESS: (_("Started"), "ok"),
    DispatchEventStatus.COMPLETED: (_("Completed"), "ok"),
    DispatchEventStatus.CANCELLED: (_("Cancelled"), "bad"),
}


# Where a milestone goes among others at the same instant: the window's planned edges first, then the order the
# engine takes its steps in.
MILESTONE_RANK = {"plan": 0, "created": 1, "status": 2, "action": 3, "restore": 4, "report": 5, "now": 6}


def event_milestones(*, event: DispatchEvent, zone=UTC) -> list[Milestone]:
    """The event's own steps in time order, from its audit rows (created, each status change with its reason
    and who), its actions' markers (devices selected and commanded, restore started, with the engine's note)
    and its report: three queries.

    The engine stamps a tick's steps with the tick's clock (an action's `fanned_out_at`, its participations'
    `included_at`) while an audit row takes the moment it is written, a few milliseconds later: the start of
    an event is placed no later than its first action's commanding (they happen in the same tick)."""
    actions = list(
        DispatchAction.objects.filter(workspace_id=event.workspace_id, event_id=event.pk).order_by("starts_at", "pk")
    )
    first_fan_out = min((a.fanned_out_at for a in actions if a.fanned_out_at), default=None)
    milestones = [
        Milestone(event.starts_at, "plan", gettext("Window opens")),
        Milestone(event.ends_at, "plan", gettext("Window closes")),
    ]
    audit = AuditLogEntry.objects.filter(
        workspace_id=event.workspace_id,
        content_type__app_label="dispatch",
        content_type__model="dispatchevent",
        object_id=str(event.pk),
    ).order_by("event_time", "pk")
    restores: dict[int, int] = {}
    for row in audit.only("event_time", "action", "actor_label", "source", "changes", "reason"):
        who = row.actor_label or row.get_source_display()
        if row.action == AuditAction.DISPATCH_EVENT_CREATED:
            milestones.append(Milestone(row.event_time, "created", gettext("Created"), who))
        elif row.action == AuditAction.DISPATCH_EVENT_STATUS_CHANGED:
            after = (row.changes.get("status") or [None, None])[1]
            title, tone = STATUS_STEPS.get(after, (after, "info"))
            detail = " · ".join(p for p in (row.reason, who) if p)
            at = row.event_time
            if after == DispatchEventStatus.IN_PROGRESS and first_fan_out is not None:
                at = min(at, first_fan_out)
            milestones.append(Milestone(at, "status", str(title), detail, tone))
        elif row.action == AuditAction.DISPATCH_ACTION_RESTORING:
            restores[row.changes.get("action")] = row.changes.get("restores", 0)
    for action in actions:
        label = action.get_action_type_display()
        start, end = action.starts_at.astimezone(zone), action.ends_at.astimezone(zone)
        window = f"{start:%H:%M}–{end:%H:%M} {abbreviation(end)}"
        if action.fanned_out_at:
            milestones.append(
                Milestone(
                    action.fanned_out_at,
                    "action",
                    gettext("%(action)s %(window)s: devices selected and commanded")
                    % {"action": label, "window": window},
                    action.note,
                )
            )
        if action.restore_started_at:
            n = restores.get(action.pk)
            detail = gettext("%(n)s devices being restored.") % {"n": n} if n is not None else action.note
            milestones.append(
                Milestone(
                    action.restore_started_at,
                    "restore",
                    gettext("%(action)s %(window)s ended: restoring") % {"action": label, "window": window},
                    detail,
                )
            )
    report = EventReport.objects.filter(workspace_id=event.workspace_id, event_id=event.pk).only("compiled_at").first()
    if report is not None:
        milestones.append(
            Milestone(
                report.compiled_at,
                "report",
                gettext("Report compiled"),
                link=reverse("admin:dispatch_dispatchevent_report", args=[event.pk]),
                tone="ok",
            )
        )
    return milestones_sorted(milestones)


def milestones_sorted(milestones: list[Milestone]) -> list[Milestone]:
    return sorted(milestones, key=lambda m: (m.at, MILESTONE_RANK.get(m.kind, 9)))


def event_timeline_participations(
    *, event: DispatchEvent, outcome: str = "", device_id: int | None = None, serial: str = ""
):
    """The event's targeted devices in the order their roundtrip began (their first action command's sending,
    else their inclusion, else when they were classified), filtered by outcome (a participation status, or
    `commanded` / `confirmed`: the step reached), device, or serial (from its start)."""
    first_sent = (
        Command.objects.filter(participation_id=OuterRef("pk"), purpose=CommandPurpose.ACTION, sent_at__isnull=False)
        .order_by("sent_at", "pk")
        .values("sent_at")[:1]
    )
    rows = Participation.objects.filter(workspace_id=event.workspace_id, event_id=event.pk)
    if outcome == "commanded":
        rows = rows.filter(commanded_at__isnull=False)
    elif outcome == "confirmed":
        rows = rows.filter(confirmed_at__isnull=False)
    elif outcome == "failed":
        rows = rows.filter(status__in=[ParticipationStatus.FAILED, ParticipationStatus.RESTORE_FAILED])
    elif outcome:
        rows = rows.filter(status=outcome)
    if device_id is not None:
        rows = rows.filter(device_id=device_id)
    if serial:
        rows = rows.filter(device__system_identifier__startswith=serial)
    return rows.annotate(at=Coalesce(Subquery(first_sent), "included_at", "created")).order_by("at", "device_id")


@dataclass
class DeviceRoundtrip:
    participation: Participation
    at: datetime
    steps: list[tuple[datetime | None, str, str]] = field(default_factory=list)  # (time, text, tone)


def _roundtrip(participation: Participation, commands: list[Command], zone=UTC) -> DeviceRoundtrip:
    steps: list[tuple[datetime | None, str, str]] = []
    p = participation
    if p.included_at:
        steps.append((p.included_at, gettext("included"), "info"))
    for command in commands:
        if command.purpose == CommandPurpose.RESTORE:
            what = gettext("restore")
        elif command.action is not None:
            what = command.action.get_action_type_display().lower()
        else:
            what = gettext("command")
        asked = command_input_label(command)
        steps.append(
            (
                command.sent_at or command.not_before,
                f"{what} — {command.slug}" + (f" ({asked})" if asked else "") + f": {command_roundtrip(command, zone)}",
                COMMAND_TONES.get(command.status, "info"),
            )
        )
    if p.confirmed_at:
        steps.append((p.confirmed_at, gettext("confirmed by its telemetry"), "ok"))
    if p.restored_at:
        steps.append((p.restored_at, gettext("restored"), "ok"))
    if p.opted_out_at:
        who = p.opted_out_by.get_username() if p.opted_out_by_id and p.opted_out_by else ""
        why = f": {p.reason}" if p.reason else ""
        steps.append((p.opted_out_at, gettext("opted out") + (f" ({who})" if who else "") + why, "warn"))
    if p.status in (
        ParticipationStatus.EXCLUDED,
        ParticipationStatus.NOT_RESPONDING,
        ParticipationStatus.FAILED,
        ParticipationStatus.RESTORE_FAILED,
    ):
        label = str(ParticipationStatus(p.status).label)
        # the engine's reason says it in full; the code's label stands in when there is none
        why = p.reason or (p.get_reason_code_display() if p.reason_code else "")
        steps.append(
            (
                p.last_updated,
                f"{label}: {why}" if why and not why.startswith(label) else (why or label),
                PARTICIPATION_TONES[p.status],
            )
        )
    steps.sort(key=lambda step: step[0] or p.created)
    return DeviceRoundtrip(participation=p, at=p.at, steps=steps)


@dataclass
class EventTimelinePage:
    items: list  # ("milestone", Milestone) | ("device", DeviceRoundtrip), in time order
    number: int
    pages: int
    count: int


def event_timeline_page(
    *,
    event: DispatchEvent,
    page: int = 1,
    per_page: int = 50,
    outcome: str = "",
    device_id: int | None = None,
    serial: str = "",
    milestones: list[Milestone] | None = None,
    zone=UTC,
) -> EventTimelinePage:
    """One page of the event's timeline: `per_page` devices' roundtrips in the order they began, with the
    event's milestones placed among them by time (a milestone goes on the page whose devices began around it:
    before the first device of page 2, on page 1; after the last device, on the last page). A constant number
    of queries: the count, the page's ids in order (one more, to know where the page ends), their rows, their
    commands."""
    rows = event_timeline_participations(event=event, outcome=outcome, device_id=device_id, serial=serial)
    count = rows.count()
    pages = max(1, -(-count // per_page))
    page = min(max(1, page), pages)
    offset = (page - 1) * per_page
    # the page's ids first (a narrow sort), then their rows: sorting 10,000 whole rows with their joins spilled
    # to disk
    keys = list(rows.values_list("pk", "at")[offset : offset + per_page + 1])
    following_at = keys[per_page][1] if len(keys) > per_page else None
    keys = keys[:per_page]
    by_pk = (
        Participation.objects.filter(pk__in=[pk for pk, _at in keys])
        .select_related("device__manufacturer", "device__contact", "opted_out_by")
        .in_bulk()
    )
    found = []
    for pk, at in keys:
        participation = by_pk[pk]
        participation.at = at
        found.append(participation)
    commands: dict[int, list[Command]] = {}
    for command in (
        Command.objects.filter(workspace_id=event.workspace_id, participation_id__in=[p.pk for p in found])
        .select_related("action")
        .order_by("not_before", "pk")
    ):
        commands.setdefault(command.participation_id, []).append(command)
    devices = [_roundtrip(p, commands.get(p.pk, []), zone) for p in found]
    if milestones is None:
        milestones = event_milestones(event=event, zone=zone)
    low = devices[0].at if devices and page > 1 else None
    high = following_at
    shown = [m for m in milestones if (low is None or m.at >= low) and (high is None or m.at < high)]
    items = [(m.at, 0, "milestone", m) for m in shown] + [(d.at, 1, "device", d) for d in devices]
    items.sort(key=lambda item: (item[0], item[1]))
    return EventTimelinePage(
        items=[(kind, obj) for _at, _order, kind, obj in items], number=page, pages=pages, count=count
    )


PROGRESS_STEPS = [("commanded", "commanded_at"), ("confirmed", "confirmed_at"), ("restored", "restored_at")]


def event_progress_series(*, event: DispatchEvent, now: datetime) -> dict:
    """Participation over time for the chart: per minute from the window's start (or the first step, if
    earlier) to the last step or now, the devices commanded, confirmed and restored so far, and the action
    commands failed so far (cumulative). Two grouped queries whatever the number of devices."""
    base = Participation.objects.filter(workspace_id=event.workspace_id, event_id=event.pk)
    parts = [
        base.filter(**{f"{column}__isnull": False})
        .annotate(step=Value(step, output_field=CharField()), minute=TruncMinute(column, tzinfo=UTC))
        .values_list("step", "minute")
        .annotate(n=Count("pk"))
        .order_by()
        for step, column in PROGRESS_STEPS
    ]
    counts: dict[tuple[str, datetime], int] = {}
    for step, minute, n in parts[0].union(*parts[1:], all=True):
        counts[(step, _aware(minute))] = n
    failed = (
        Command.objects.filter(
            workspace_id=event.workspace_id,
            dispatch_event_id=event.pk,
            purpose=CommandPurpose.ACTION,
            status=CommandStatus.FAILED,
        )
        .annotate(minute=TruncMinute("completed_at", tzinfo=UTC))
        .values_list("minute")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for minute, n in failed:
        counts[("failed", _aware(minute))] = n
    if not counts:
        return {"labels": [], "series": {}}
    start = min([_minute(event.starts_at), *(minute for _step, minute in counts)])
    last = max(minute for _step, minute in counts)
    end = max(last, min(_minute(now), _minute(event.ends_at) + timedelta(minutes=30)))
    end = min(end, start + timedelta(hours=36))  # the chart's width stays readable
    labels, series = [], {step: [] for step in ("commanded", "confirmed", "failed", "restored")}
    totals = dict.fromkeys(series, 0)
    minute = start
    while minute <= end:
        labels.append(minute.isoformat())
        for step in series:
            totals[step] += counts.get((step, minute), 0)
            series[step].append(totals[step])
        minute += timedelta(minutes=1)
    return {"labels": labels, "series": series}


def _minute(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def _aware(value) -> datetime:
    if isinstance(value, str):  # SQLite hands back text from a UNION
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def register() -> None:
    device_timeline_source_register(
        DeviceTimelineSource(key="commands", label=_("Commands"), entries=device_command_entries, order=30)
    )
    device_timeline_source_register(
        DeviceTimelineSource(
            key="events", label=_("Events and opt-outs"), entries=device_participation_entries, order=40
        )
    )
