"""The column contract of docs/domain.md ("Bulk import CSV")."""

REQUIRED = (
    "referenceId",
    "firstName",
    "lastName",
    "streetOne",
    "city",
    "state",
    "postalCode",
    "manufacturerSlug",
    "systemIdentifier",
    "programSlug",
)
# Required only on a row that adds a device (the program it is enrolled in); a device already in the workspace keeps
# its enrollments, so an export of a device no longer enrolled anywhere imports again.
REQUIRED_FOR_NEW_DEVICES = ("programSlug",)
OPTIONAL = ("email", "phone", "streetTwo", "country", "siteName", "siteReferenceId", "deviceType", "tags")
COLUMNS = REQUIRED + OPTIONAL
# Other spellings accepted for a column (after folding case, spaces, `_` and `-`).
ALIASES = {"manufacturerslugs": "manufacturerSlug"}
TAG_SEPARATOR = ";"


def fold(header: str) -> str:
    """`Reference ID`, `reference_id` and `referenceId` all fold to `referenceid`."""
    return "".join(ch for ch in header.strip().lower() if ch not in " _-\ufeff")


CANONICAL = {fold(name): name for name in COLUMNS} | ALIASES
