"""IANA names, local wall-clock times read as one instant (or refused with why), and the labels staff read."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from texture_portal.timezones import (
    local_label,
    local_to_aware,
    local_window_label,
    utc_window_label,
    validate_timezone_name,
    zone_or_utc,
)

LA = zone_or_utc("America/Los_Angeles")


@pytest.mark.parametrize("name", ["America/Los_Angeles", "Europe/Berlin", "UTC", "Australia/Lord_Howe"])
def test_iana_names_pass(name):
    validate_timezone_name(name)


@pytest.mark.parametrize("name", ["PST", "GMT-8 ", "+02:00", "/etc/localtime", "../zoneinfo/UTC", "Mars/Olympus"])
def test_anything_else_is_refused_with_an_example(name):
    with pytest.raises(ValidationError, match="not an IANA timezone name: use one such as America/Los_Angeles"):
        validate_timezone_name(name)


def test_an_unknown_stored_name_reads_as_utc():
    assert str(zone_or_utc("Mars/Olympus")) == "UTC" and str(zone_or_utc("")) == "UTC"


def wall(text: str) -> datetime:
    """A local wall-clock time, as a person enters it (naive on purpose)."""
    return datetime.fromisoformat(text)


def test_local_times_become_one_instant_or_a_clear_refusal():
    assert local_to_aware(wall("2026-07-14 17:00"), LA).astimezone(UTC) == datetime(2026, 7, 15, 0, 0, tzinfo=UTC)
    assert local_to_aware(wall("2026-01-14 17:00"), LA).astimezone(UTC) == datetime(2026, 1, 15, 1, 0, tzinfo=UTC)
    with pytest.raises(
        ValidationError, match="2026-03-08 02:30 does not exist in America/Los_Angeles.*PST changes to PDT"
    ):
        local_to_aware(wall("2026-03-08 02:30"), LA)
    with pytest.raises(
        ValidationError, match=r"happens twice in America/Los_Angeles.*PDT \(08:30 UTC\).*PST \(09:30 UTC\)"
    ):
        local_to_aware(wall("2026-11-01 01:30"), LA)
    # just outside the changes is fine
    assert local_to_aware(wall("2026-03-08 03:00"), LA).tzname() == "PDT"
    assert local_to_aware(wall("2026-11-01 02:00"), LA).tzname() == "PST"


def test_labels_name_the_zone_and_its_abbreviation_of_the_day():
    july = datetime(2026, 7, 15, 0, 0, tzinfo=UTC)
    assert local_label(july, LA) == "2026-07-14 17:00 America/Los_Angeles (PDT)"
    assert local_label(datetime(2026, 1, 15, 1, 0, tzinfo=UTC), LA) == "2026-01-14 17:00 America/Los_Angeles (PST)"
    ends = datetime(2026, 7, 15, 3, 0, tzinfo=UTC)
    assert local_window_label(july, ends, LA) == "2026-07-14 17:00–20:00 America/Los_Angeles (PDT)"
    # across the fall-back night: the end's date and both abbreviations
    starts, ends = datetime(2026, 11, 1, 6, 0, tzinfo=UTC), datetime(2026, 11, 1, 11, 0, tzinfo=UTC)
    assert local_window_label(starts, ends, LA) == "2026-10-31 23:00–2026-11-01 03:00 America/Los_Angeles (PDT → PST)"
    assert utc_window_label(starts, ends) == "2026-11-01 06:00–11:00 UTC"
