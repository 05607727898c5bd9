"""How values are written in the envelope and in every event's `data` (apps' payload builders use these)."""


def iso(value) -> str | None:
    """A time as integrators get it in every payload: ISO 8601 in UTC, with a Z (None stays None)."""
    return value.isoformat().replace("+00:00", "Z") if value else None
