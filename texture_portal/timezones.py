"""IANA timezones: validating a name, reading a local wall-clock time as one instant, and labelling times.

Everything is stored in UTC. People enter and read times in a place's own zone (a program's), so a local time
the clocks skip (spring forward) or pass twice (fall back) must be refused with why, never shifted silently.
"""

import functools
import zoneinfo
from datetime import UTC, datetime, tzinfo

from django.core.exceptions import ValidationError


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
    it or pass it twice that day: which instant was meant cannot be known."""
    first, second = value.replace(tzinfo=zone, fold=0), value.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    when = f"{value:%Y-%m-%d %H:%M}"
    name = zone_name(zone)
    # Inside a gap, fold=0 reads the time with the offset before the change; it lands on another wall time.
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        raise ValidationError(
            "%(when)s does not exist in %(zone)s: the clocks jump past it when %(before)s changes to %(after)s. "
            "Enter a time before or after the change.",
            code="nonexistent_time",
            params={"when": when, "zone": name, "before": first.tzname(), "after": second.tzname()},
        )
    raise ValidationError(
        "%(when)s happens twice in %(zone)s when the clocks go back: first in %(first)s (%(first_utc)s UTC), then "
        "in %(second)s (%(second_utc)s UTC). Enter a time outside that hour.",
        code="ambiguous_time",
        params={
            "when": when,
            "zone": name,
            "first": first.tzname(),
            "first_utc": f"{first.astimezone(UTC):%H:%M}",
            "second": second.tzname(),
            "second_utc": f"{second.astimezone(UTC):%H:%M}",
        },
    )


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
