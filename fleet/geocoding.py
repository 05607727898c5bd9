"""Offline coordinates for a site: the centroid of its postal code, from the `zipcodes` package, which ships
the US ZIP code table (latitude, longitude, timezone) inside the package, so the site map works without
internet. Other countries: no offline source yet (the importer says so as a warning)."""

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Centroid:
    latitude: float
    longitude: float
    timezone: str


@lru_cache(maxsize=65536)
def postal_code_centroid(postal_code: str, country: str = "US") -> Centroid | None:
    if country.upper() != "US":
        return None
    five = postal_code.strip()[:5]
    if len(five) != 5 or not five.isdigit():
        return None
    import zipcodes

    matches = zipcodes.matching(five)
    if not matches:
        return None
    match = matches[0]
    return Centroid(latitude=float(match["lat"]), longitude=float(match["long"]), timezone=match.get("timezone") or "")
