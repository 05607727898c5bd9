"""IANA timezones: validating a name, reading a local wall-clock time as one instant, and labelling times.

Everything is stored in UTC. People enter and read times in a place's own zone (a program's), so a local time
the clocks skip (spring forward) or pass twice (fall back) must be refused with why, never shifted silently.
"""

import functools
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString


@functools.cache
def timezone_names() -> frozenset[str]:
    """The IANA names this machine's timezone database knows."""
    return frozenset(zoneinfo.available_timezones())


def validate_timezone_name(name: str) -> None:
    """A model field validator: an IANA name such as America/Los_Angeles (not an abbreviation, an offset or a
    path)."""
    if name not in timezone_names():
        raise ValidationError(
            "“%(name)s” is not an IANA timezone name: use one such as America/Los_Angeles or Europe/Berlin.",
            code="invalid_timezone",
            params={"name": name},
        )


def zone_or_utc(name: str | None) -> zoneinfo.ZoneInfo:
    """The zone by name; UTC for an empty or unknown one (a stored name was validated when it was saved)."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


def local_to_aware(value: datetime, zone: tzinfo) -> datetime:
    """The instant a naive local wall-clock time means in `zone`. Refused (ValidationError) when the clocks skip
    it or pass it twice that day: which instant was meant cannot be known, so the message names both."""
    first, second = value.replace(tzinfo=zone, fold=0), value.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    when = f"{value:%Y-%m-%d %H:%M}"
    name = zone_name(zone)
    # Inside a gap, fold=0 reads the time with the offset before the change; it lands on another wall time.
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        # Read with the offset after the change it is the earlier instant (a wall time before the jump), with
        # the offset before it the later one (after the jump).
        earlier, later = second.astimezone(UTC), first.astimezone(UTC)
        jump = _change_between(earlier, later, zone)
        raise ValidationError(
            "%(when)s does not exist in %(zone)s: the clocks jump from %(jump_from)s to %(jump_to)s when "
            "%(before)s changes to %(after)s (%(jump_utc)s), so it could mean %(earlier)s or %(later)s. "
            "Enter a time before or after the change.",
            code="nonexistent_time",
            params={
                "when": when,
                "zone": name,
                "before": abbreviation(first),
                "after": abbreviation(second),
                "jump_from": f"{jump.astimezone(zone) - (second.utcoffset() - first.utcoffset()):%H:%M}",
                "jump_to": f"{jump.astimezone(zone):%H:%M}",
                "jump_utc": _utc_text(jump, value),
                "earlier": f"{short_time(earlier, zone)} ({_utc_text(earlier, value)})",
                "later": f"{short_time(later, zone)} ({_utc_text(later, value)})",
            },
        )
    raise ValidationError(
        "%(when)s happens twice in %(zone)s when the clocks go back: first in %(first)s (%(first_utc)s UTC), then "
        "in %(second)s (%(second_utc)s UTC). Enter a time outside that hour.",
        code="ambiguous_time",
        params={
            "when": when,
            "zone": name,
            "first": abbreviation(first),
            "first_utc": _utc_text(first, value).removesuffix(" UTC"),
            "second": abbreviation(second),
            "second_utc": _utc_text(second, value).removesuffix(" UTC"),
        },
    )


def _change_between(earlier: datetime, later: datetime, zone: tzinfo) -> datetime:
    """The first whole minute, from `earlier` to `later` (UTC), that has the offset `later` has in `zone`: when
    the clocks changed. zoneinfo does not list its transitions; a gap is at most a few hours, so this is a dozen
    steps of bisection."""
    target = later.astimezone(zone).utcoffset()
    low, high = earlier, later  # low has the old offset, high the new one
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle <= low:
            break
        if middle.astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high


def _utc_text(instant: datetime, local: datetime) -> str:
    """'09:30 UTC', with the date when it is not the local one's."""
    utc = instant.astimezone(UTC)
    return f"{utc:%H:%M} UTC" if utc.date() == local.date() else f"{utc:%Y-%m-%d %H:%M} UTC"


def local_label(value: datetime | None, zone: tzinfo) -> str:
    """'2026-07-14 17:00 America/Los_Angeles (PDT)'."""
    if value is None:
        return "—"
    local = value.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {zone_name(zone)} ({local.tzname()})"


def local_window_label(starts_at: datetime, ends_at: datetime, zone: tzinfo) -> str:
    """'2026-07-14 17:00–20:00 America/Los_Angeles (PDT)'; the end's date when it is another day, both
    abbreviations when the window crosses a change ('(PDT → PST)')."""
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    names = start.tzname() if start.tzname() == end.tzname() else f"{start.tzname()} → {end.tzname()}"
    return f"{_span(start, end)} {zone_name(zone)} ({names})"


def utc_window_label(starts_at: datetime, ends_at: datetime) -> str:
    """'2026-07-15 00:00–03:00 UTC'."""
    return f"{_span(starts_at.astimezone(UTC), ends_at.astimezone(UTC))} UTC"


def _span(start: datetime, end: datetime) -> str:
    end_text = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M}–{end_text}"


# -- the admin's times: the active zone (the user's workspace's, see texture_portal.middleware) ----------------


def zone_for_workspaces(names: Iterable[str]) -> zoneinfo.ZoneInfo:
    """The zone a person who works in workspaces of these timezones reads times in: the one they all share;
    UTC when they differ (or there are none), and every time says so with its label."""
    distinct = set(names)
    return zone_or_utc(distinct.pop()) if len(distinct) == 1 else zoneinfo.ZoneInfo("UTC")


def abbreviation(local: datetime) -> str:
    """'PDT'; 'UTC-03' for a zone whose abbreviation is only its offset (tzdata writes '-03')."""
    name = local.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name


def short_time(value: datetime, zone: tzinfo) -> str:
    """'01:30 PST'."""
    local = value.astimezone(zone)
    return f"{local:%H:%M} {abbreviation(local)}"


def short_label(value: datetime, zone: tzinfo | None = None) -> str:
    """'2026-07-15 16:00 PDT' in `zone` (the active one when None)."""
    local = value.astimezone(zone or timezone.get_current_timezone())
    return f"{local:%Y-%m-%d %H:%M} {abbreviation(local)}"


def time_html(value: datetime, zone: tzinfo | None = None) -> SafeString:
    """A time as the admin shows it: in `zone` (the active one when None), labelled with the abbreviation of
    that day, and the UTC instant in the markup and on hover:
    `<time datetime="2026-07-15T23:00:00Z" title="2026-07-15 23:00:00 UTC">2026-07-15 16:00 PDT</time>`."""
    zone = zone or timezone.get_current_timezone()
    utc = value.astimezone(UTC)
    shown_in = "" if zone_name(zone) == "UTC" else f" · shown in {zone_name(zone)}"
    return format_html(
        '<time class="local-time" datetime="{}" title="{} UTC{}">{}</time>',
        f"{utc:%Y-%m-%dT%H:%M:%S}Z",
        f"{utc:%Y-%m-%d %H:%M:%S}",
        shown_in,
        short_label(value, zone),
    )
