"""A device's timeline: what happened to it, from every app that knows something, in one time-ordered, paged
list (newest first).

The fleet knows its own part (state changes, readings); other apps add theirs without the fleet knowing them
(fleet imports nothing of dispatch or alerts): each registers, in its `AppConfig.ready()`, a source

    device_timeline_source_register(
        DeviceTimelineSource(key="commands", label=_("Commands"), entries=device_command_entries)
    )

whose `entries(device, since, until, limit)` returns the device's entries with `since <= at <= until` (either
bound may be None: open), newest first, at most `limit`, ties in the same order on every call. It should cost
one or two queries whatever the device's history. A page asks each chosen source once.

Paging is by time: a page ends at an instant (`until`, inclusive) and says how many entries at exactly that
instant the newer pages already showed (`skip`), so entries sharing a timestamp are neither lost nor shown
twice. Entries at the same instant keep the sources' registration order, then each source's own order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Max, Min
from django.db.models.functions import TruncHour
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from fleet.choices import DeviceState
from fleet.models import Device, DeviceStateChange, TelemetryReading

MAX_PAGE = 200


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to a device. `tone` colours it (ok, info, warn, bad); `key` names it uniquely
    (e.g. "command:42"); `link` goes to the row behind it."""

    at: datetime
    kind: str  # e.g. state, readings, command, event, opt_out, alert
    title: str
    detail: str = ""
    link: str = ""
    tone: str = "info"
    key: str = ""
    source: str = ""  # filled in by the timeline: the source's key


@dataclass(frozen=True)
class DeviceTimelineSource:
    key: str
    label: Any
    entries: Callable[[Device, datetime | None, datetime | None, int], list[TimelineEntry]]
    order: int = 100


@dataclass
class _Registry:
    sources: list[DeviceTimelineSource] = field(default_factory=list)


_registry = _Registry()


def device_timeline_source_register(source: DeviceTimelineSource) -> None:
    if any(s.key == source.key for s in _registry.sources):
        return  # ready() may run twice (tests); the first registration stands
    _registry.sources.append(source)


def device_timeline_sources() -> list[DeviceTimelineSource]:
    return sorted(_registry.sources, key=lambda s: (s.order, s.key))


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    # the next (older) page's cursor, None on the last page
    next_until: datetime | None
    next_skip: int


def device_timeline_page(
    *,
    device: Device,
    until: datetime | None = None,
    skip: int = 0,
    since: datetime | None = None,
    limit: int = 50,
    sources: list[str] | None = None,
) -> TimelinePage:
    """One page of the device's timeline, newest first: the `limit` newest entries at or before `until` (after
    the `skip` first ones at exactly `until`), from the chosen sources (all by default)."""
    limit = max(1, min(limit, MAX_PAGE))
    skip = max(0, skip) if until is not None else 0
    merged: list[TimelineEntry] = []
    for source in device_timeline_sources():
        if sources is not None and source.key not in sources:
            continue
        found = source.entries(device, since, until, limit + skip + 1)
        merged += [_with_source(entry, source.key) for entry in found[: limit + skip + 1]]
    # stable: entries at the same instant keep the sources' order, then each source's own
    merged.sort(key=lambda entry: entry.at, reverse=True)
    if until is not None:
        merged = merged[skip:]  # the first `skip` are at exactly `until`: the newer page showed them
    page = merged[:limit]
    if len(merged) <= limit:
        return TimelinePage(entries=page, next_until=None, next_skip=0)
    last = page[-1].at
    shown_at_last = sum(1 for entry in page if entry.at == last) + (skip if last == until else 0)
    return TimelinePage(entries=page, next_until=last, next_skip=shown_at_last)


KIND_LABELS = {
    "state": _("State"),
    "readings": _("Readings"),
    "command": _("Command"),
    "event": _("Event"),
    "opt_out": _("Opt-out"),
    "alert": _("Alert"),
}


def timeline_kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind) or kind.replace("_", " ").capitalize())


def _with_source(entry: TimelineEntry, key: str) -> TimelineEntry:
    if entry.source == key:
        return entry
    return TimelineEntry(**{**entry.__dict__, "source": key})


def _in_range(queryset, column: str, since: datetime | None, until: datetime | None):
    if since is not None:
        queryset = queryset.filter(**{f"{column}__gte": since})
    if until is not None:
        queryset = queryset.filter(**{f"{column}__lte": until})
    return queryset


# -- the fleet's own sources ---------------------------------------------------------------------------------

STATE_TONES = {DeviceState.ON_WORKSPACE: "ok", DeviceState.OFFLINE: "bad", DeviceState.REGISTERED: "info"}


def state_change_entries(device: Device, since, until, limit: int) -> list[TimelineEntry]:
    """Each state change, with why and who (one query)."""
    rows = _in_range(
        DeviceStateChange.objects.filter(workspace_id=device.workspace_id, device_id=device.pk),
        "changed_at",
        since,
        until,
    )
    entries = []
    for change in rows.select_related("actor").order_by("-changed_at", "-pk")[:limit]:
        before = DeviceState(change.from_state).label if change.from_state else None
        after = DeviceState(change.to_state).label
        who = change.actor.get_username() if change.actor else change.get_source_display()
        entries.append(
            TimelineEntry(
                at=change.changed_at,
                kind="state",
                title=f"{before} → {after}" if before else gettext("Became %(state)s") % {"state": after},
                detail=" · ".join(part for part in (change.reason, str(who)) if part),
                tone=STATE_TONES.get(change.to_state, "info"),
                key=f"state:{change.pk}",
            )
        )
    return entries


def reading_hour_entries(device: Device, since, until, limit: int) -> list[TimelineEntry]:
    """The device's readings summarized per UTC hour (one grouped query): how many, the state of charge's
    range and the mean powers. A reading every minute or five would bury the commands and state changes
    under hundreds of lines a day; an hour is one line that still shows whether a command moved the device
    (the device page's chart and the telemetry list have every reading, a click away).

    An hour's entry stands at the hour's start and sums the whole hour, so a page's end never cuts an hour in
    two: the hours whose start lies in [since, until]."""
    rows = TelemetryReading.objects.filter(workspace_id=device.workspace_id, device_id=device.pk)
    if since is not None:
        start = _hour(since)
        rows = rows.filter(measured_at__gte=start if start == since else start + timedelta(hours=1))
    if until is not None:
        rows = rows.filter(measured_at__lt=_hour(until) + timedelta(hours=1))
    hours = (
        rows.annotate(hour=TruncHour("measured_at", tzinfo=UTC))
        .values("hour")
        .annotate(
            n=Count("pk"),
            first=Min("measured_at"),
            last=Max("measured_at"),
            soc_min=Min("charge_percentage"),
            soc_max=Max("charge_percentage"),
            rate=Avg("charge_rate_w"),
            grid=Avg("grid_power_w"),
            solar=Avg("solar_power_w"),
            charger=Avg("charger_wattage_w"),
        )
        .order_by("-hour")[:limit]
    )
    readings_url = reverse("admin:fleet_telemetryreading_changelist")
    zone = device_zone(device)
    entries = []
    for hour in hours:
        first, last = hour["first"].astimezone(UTC), hour["last"].astimezone(UTC)
        parts = []
        if hour["soc_min"] is not None:
            low, high = round(hour["soc_min"]), round(hour["soc_max"])
            parts.append(f"SoC {low} %" if low == high else f"SoC {low}–{high} %")
        for label, value, signed in (
            (gettext("battery (+ discharging)"), hour["rate"], True),
            (gettext("grid (+ importing)"), hour["grid"], True),
            (gettext("solar"), hour["solar"], False),
            (gettext("charger"), hour["charger"], False),
        ):
            if value is not None:
                parts.append(f"{label} {value / 1000:+.2f} kW" if signed else f"{label} {value / 1000:.2f} kW")
        count = hour["n"]
        local_first, local_last = first.astimezone(zone), last.astimezone(zone)
        if count == 1:
            title = gettext("1 reading at %(last)s") % {"last": f"{local_last:%H:%M}"}
        else:
            title = gettext("%(n)s readings, %(first)s–%(last)s") % {
                "n": count,
                "first": f"{local_first:%H:%M}",
                "last": f"{local_last:%H:%M}",
            }
        query = urlencode(
            {
                "device__id__exact": device.pk,
                "measured_at__gte": first.isoformat(),
                "measured_at__lte": last.isoformat(),
            }
        )
        entries.append(
            TimelineEntry(
                at=_aware_hour(hour["hour"]),
                kind="readings",
                title=title,
                detail=" · ".join(parts) + (gettext(" (means over the hour)") if count > 1 and parts else ""),
                link=f"{readings_url}?{query}",
                tone="info",
                key=f"readings:{first:%Y%m%d%H}",
            )
        )
    return entries


def device_zone(device: Device):
    """The zone the device's timeline is read in: the admin's active one (the user's workspace's, see
    texture_portal.middleware), as every other admin time."""
    return timezone.get_current_timezone()


def _hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _aware_hour(value) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def register() -> None:
    device_timeline_source_register(
        DeviceTimelineSource(key="state", label=_("State changes"), entries=state_change_entries, order=10)
    )
    device_timeline_source_register(
        DeviceTimelineSource(key="readings", label=_("Readings (per hour)"), entries=reading_hour_entries, order=90)
    )
