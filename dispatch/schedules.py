"""Recurring dispatch schedules (writes, and the occurrences they produce).

A schedule's rule is RFC 5545 (`python-dateutil`'s rrule) over *local* wall-clock times in the schedule's
timezone: "weekdays at 17:00" is 17:00 in Los Angeles in June and in December, whatever UTC says. The engine's
tick calls `schedules_materialize`, which creates each occurrence's event `lead_hours` ahead, once (a unique
constraint on the schedule and the occurrence makes a second tick's attempt a no-op).
"""

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from dateutil.rrule import rrulestr
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch.choices import DispatchTrigger
from dispatch.models import DispatchEvent, DispatchSchedule
from fleet.services import device_tags_get_or_create
from programs.models import Program
from programs.selectors import program_current_strategy
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction, AuditSource
from texture_portal.exceptions import ApplicationError

# How far ahead a new schedule is checked for occurrences (a rule that never fires in this horizon is refused).
CHECK_HORIZON = timedelta(days=400)


@dataclass(frozen=True)
class Occurrence:
    starts_at: datetime  # UTC
    ends_at: datetime
    local_date: date


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ApplicationError(f"“{name}” is not a timezone (use an IANA name such as America/Chicago).") from exc


def _rule(schedule: DispatchSchedule):
    first = datetime.combine(schedule.valid_from, schedule.start_time)  # naive: local wall-clock time
    text = schedule.rrule.strip().removeprefix("RRULE:")
    try:
        rule = rrulestr(f"RRULE:{text}", dtstart=first)
    except (ValueError, TypeError) as exc:
        raise ApplicationError(f"The recurrence “{schedule.rrule}” is not an RFC 5545 rule: {exc}.") from exc
    return rule


def schedule_occurrences(*, schedule: DispatchSchedule, after: datetime, before: datetime) -> list[Occurrence]:
    """The occurrences that start in [after, before), in UTC, skipping the skip dates and the days past
    `valid_until`. Local times are resolved in the schedule's timezone (a time a spring-forward skips is taken
    with the offset before the change, as Python's zoneinfo does)."""
    zone = _zone(schedule.timezone)
    rule = _rule(schedule)
    skip = {str(d) for d in schedule.skip_dates or ()}
    # search in local time, a day wider on each side, then filter in UTC
    local_after = after.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    local_before = before.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    found = []
    for local_start in rule.between(local_after, local_before, inc=True):
        if schedule.valid_until and local_start.date() > schedule.valid_until:
            continue
        if local_start.date().isoformat() in skip:
            continue
        starts = local_start.replace(tzinfo=zone).astimezone(UTC)
        if after <= starts < before:
            found.append(
                Occurrence(
                    starts_at=starts,
                    ends_at=starts + timedelta(minutes=schedule.duration_minutes),
                    local_date=local_start.date(),
                )
            )
    return found


def dispatch_schedule_problems(*, schedule: DispatchSchedule, now: datetime | None = None) -> list[str]:
    """What keeps an (unsaved) schedule from working: every problem, in words (empty: it can be saved)."""
    try:
        _zone(schedule.timezone)
        _rule(schedule)
    except ApplicationError as exc:
        return [exc.message]
    return _schedule_problems(schedule, now=now or timezone.now())


def _schedule_problems(schedule: DispatchSchedule, *, now: datetime) -> list[str]:
    strategy = program_current_strategy(program=schedule.program)
    problems = []
    if strategy is None:
        return [f"{schedule.program} has no event strategy."]
    if schedule.action_type not in strategy.allowed_event_types:
        problems.append(f"“{schedule.get_action_type_display()}” is not an event type the strategy allows.")
    if schedule.duration_minutes > strategy.max_event_duration_minutes:
        problems.append(
            f"Its events would last {schedule.duration_minutes} minutes; the strategy allows at most "
            f"{strategy.max_event_duration_minutes}."
        )
    bad_dates = [d for d in schedule.skip_dates or () if not _is_date(d)]
    if bad_dates:
        problems.append(f"Skip dates must be YYYY-MM-DD: {', '.join(map(str, bad_dates))}.")
    if problems:
        return problems
    start = max(now, datetime.combine(schedule.valid_from, schedule.start_time, tzinfo=UTC) - timedelta(days=1))
    upcoming = schedule_occurrences(schedule=schedule, after=start, before=start + CHECK_HORIZON)
    if not upcoming:
        problems.append("The rule never fires in the coming year: no event would ever be created.")
    for earlier, later in zip(upcoming, upcoming[1:], strict=False):
        if later.starts_at < earlier.ends_at:
            problems.append(
                f"It fires more often than its events last: {earlier.starts_at:%Y-%m-%d %H:%M} UTC and the next "
                f"overlap."
            )
            break
        if later.local_date == earlier.local_date:
            problems.append("It fires more than once a day; a schedule makes at most one event a day.")
            break
    return problems


def _is_date(value) -> bool:
    try:
        date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


@transaction.atomic
def dispatch_schedule_create(
    *,
    program: Program,
    name: str,
    action_type: str,
    rrule: str,
    start_time,
    duration_minutes: int,
    valid_from: date,
    actor,
    timezone_name: str | None = None,
    valid_until: date | None = None,
    skip_dates: list[str] = (),
    lead_hours: int = 24,
    schedule_events: bool = True,
    is_test: bool = True,
    target_tags: list[str] = (),
    source: AuditSource | str = AuditSource.SERVICE,
) -> DispatchSchedule:
    """A recurring schedule, refused with every problem at once when its rule is not RFC 5545, never fires,
    fires more often than its events last or more than once a day, or breaks the program's strategy."""
    if not is_test and not program.production_dispatch_enabled:
        raise ApplicationError(f"{program} is not launched for production dispatch: only test events may run.")
    schedule = DispatchSchedule(
        workspace_id=program.workspace_id,
        program=program,
        name=name,
        action_type=action_type,
        rrule=rrule.strip().removeprefix("RRULE:"),
        timezone=timezone_name or program.timezone,  # the program's, unless given another
        start_time=start_time,
        duration_minutes=duration_minutes,
        valid_from=valid_from,
        valid_until=valid_until,
        skip_dates=sorted({str(d) for d in skip_dates}),
        lead_hours=lead_hours,
        schedule_events=schedule_events,
        is_test=is_test,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    schedule.full_clean()
    problems = dispatch_schedule_problems(schedule=schedule)
    if problems:
        raise ApplicationError(f"“{name}” cannot be saved: " + " ".join(problems), extra={"problems": problems})
    schedule.save()
    if target_tags:
        schedule.target_tags.set(device_tags_get_or_create(workspace=program.workspace, names=target_tags))
    audit_record(actor=actor, action=AuditAction.OBJECT_CREATED, target=schedule, source=source)
    return schedule


def schedule_next_occurrences(*, schedule: DispatchSchedule, count: int = 5, now: datetime | None = None) -> list:
    """The next occurrences of a schedule (for the admin's and the API's preview)."""
    now = now or timezone.now()
    found = []
    window = timedelta(days=31)
    after = now
    while len(found) < count and after < now + CHECK_HORIZON:
        found += schedule_occurrences(schedule=schedule, after=after, before=after + window)
        after += window
    return found[:count]


@transaction.atomic
def dispatch_schedule_set_active(
    *, schedule: DispatchSchedule, active: bool, actor, source=AuditSource.SERVICE
) -> None:
    """Pause or resume a schedule (events it already created stay as they are)."""
    locked = DispatchSchedule.objects.select_for_update().get(pk=schedule.pk)
    if locked.is_active == active:
        return
    locked.is_active = active
    locked.save(update_fields=["is_active", "last_updated"])
    audit_record(
        actor=actor,
        action=AuditAction.OBJECT_CHANGED,
        target=locked,
        source=source,
        changes={"is_active": [not active, active]},
    )
    schedule.refresh_from_db()


def schedules_materialize(*, now: datetime | None = None) -> list[int]:
    """Create the events of every active schedule whose occurrence starts within its lead time, once each;
    scheduled at once when the schedule says so (left a draft, with why, when the strategy refuses it)."""
    from dispatch.services import dispatch_event_create, dispatch_event_schedule

    now = now or timezone.now()
    created = []
    schedules = (
        DispatchSchedule.objects.filter(is_active=True).select_related("program").prefetch_related("target_tags")
    )
    for schedule in schedules:
        horizon = now + timedelta(hours=schedule.lead_hours)
        known = set(schedule.events.filter(occurrence_start__gte=now).values_list("occurrence_start", flat=True))
        for occurrence in schedule_occurrences(schedule=schedule, after=now, before=horizon):
            if occurrence.starts_at in known:
                continue
            try:
                with transaction.atomic():
                    event = dispatch_event_create(
                        program=schedule.program,
                        name=f"{schedule.name} — {occurrence.local_date:%a %Y-%m-%d}",
                        starts_at=occurrence.starts_at,
                        ends_at=occurrence.ends_at,
                        actor=None,
                        is_test=schedule.is_test,
                        trigger=DispatchTrigger.SCHEDULE,
                        target_tags=[tag.name for tag in schedule.target_tags.all()],
                        actions=[
                            {
                                "action_type": schedule.action_type,
                                "starts_at": occurrence.starts_at,
                                "ends_at": occurrence.ends_at,
                            }
                        ],
                        source=AuditSource.TASK,
                    )
                    DispatchEvent.objects.filter(pk=event.pk).update(
                        schedule=schedule, occurrence_start=occurrence.starts_at
                    )
            except IntegrityError:
                continue  # another tick created this occurrence first
            except ApplicationError as exc:  # the program no longer allows it (e.g. production not launched)
                schedule.is_active = False
                schedule.save(update_fields=["is_active", "last_updated"])
                audit_record(
                    actor=None,
                    action=AuditAction.OBJECT_CHANGED,
                    target=schedule,
                    source=AuditSource.TASK,
                    changes={"is_active": [True, False]},
                    reason=f"Stopped: {exc.message}",
                )
                break
            if schedule.schedule_events:
                try:
                    dispatch_event_schedule(event=event, actor=None, source=AuditSource.TASK)
                except ApplicationError as exc:
                    DispatchEvent.objects.filter(pk=event.pk).update(status_reason=exc.message[:300])
            created.append(event.pk)
    return created
