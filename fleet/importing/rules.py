"""The per-field rules of a fleet record: one rule set for the bulk import (`rows.normalize_row`) and the API's
writes (`fleet/api/inputs.py`). Each rule takes the stripped value and returns it normalized, or raises
`FieldRuleError` with the text both paths show for that field (docs/domain.md, "Bulk import CSV")."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from fleet.choices import DeviceType
from fleet.importing.columns import TAG_SEPARATOR

SCIENTIFIC = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
COUNTRY_CODE = re.compile(r"[A-Z]{2}")
DEVICE_TYPES = frozenset(DeviceType.values)
DEFAULT_COUNTRY = "US"
MAX_TAG_LENGTH = 100
# A subset of what Django's EmailValidator accepts: dot-atom local part, labels of a dotted domain, a TLD.
PLAIN_EMAIL = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.IGNORECASE
)
MAX_LENGTH = {
    "referenceId": 100,
    "firstName": 100,
    "lastName": 100,
    "email": 254,
    "phone": 32,
    "streetOne": 200,
    "streetTwo": 200,
    "city": 100,
    "state": 50,
    "postalCode": 20,
    "siteName": 200,
    "siteReferenceId": 100,
    "systemIdentifier": 100,
}

REQUIRED_EMPTY = "required, but empty"
REQUIRED_MISSING = "required column is missing from the file"  # the file's wording; the API says REQUIRED_EMPTY
PROGRAM_REQUIRED = "required for a device not yet in the workspace, but empty"
COUNTRY_INVALID = "not a two-letter country code (ISO 3166-1, e.g. US)"
EMAIL_INVALID = "not a valid e-mail address"
SERIAL_SCIENTIFIC = (
    "looks like a serial a spreadsheet turned into a number in scientific notation; "
    "format the column as text and export again"
)


class FieldRuleError(ValueError):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def too_long(column: str, value: str) -> str | None:
    """The error text when `value` is longer than `column` allows, else None."""
    limit = MAX_LENGTH.get(column)
    return f"longer than {limit} characters" if limit is not None and len(value) > limit else None


def check_length(column: str, value: str) -> str:
    message = too_long(column, value)
    if message:
        raise FieldRuleError(message)
    return value


def normalize_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code, upper case; empty means US."""
    country = (value or DEFAULT_COUNTRY).upper()
    if not COUNTRY_CODE.fullmatch(country):
        raise FieldRuleError(COUNTRY_INVALID)
    return country


def email_is_valid(value: str) -> bool:
    """Django's `validate_email`, with the common plain address (ASCII dot-atom at a dotted domain, which
    Django always accepts) recognized by one regular expression first."""
    if len(value) <= 254 and PLAIN_EMAIL.fullmatch(value):
        return True
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def normalize_email(value: str) -> str:
    if value and not email_is_valid(value):
        raise FieldRuleError(EMAIL_INVALID)
    return value


def normalize_phone(value: str, country: str, e164=None) -> str:
    """E.164, read as dialled from `country`; `e164` is the (cached) parser, `rows.phone_e164` by default."""
    if not value:
        return value
    if e164 is None:
        from fleet.importing.rows import phone_e164 as e164
    normalized = e164(value, country)
    if normalized is None:
        raise FieldRuleError(f"not a valid phone number for {country}")
    return normalized


def check_system_identifier(value: str) -> str:
    if value and SCIENTIFIC.match(value):
        raise FieldRuleError(SERIAL_SCIENTIFIC)
    return value


def resolve_manufacturer(value: str, lookups):
    """The catalog's manufacturer of this slug or alias (any case)."""
    manufacturer = lookups.manufacturer(value)
    if manufacturer is None:
        suggestion = lookups.closest_manufacturer(value)
        raise FieldRuleError("unknown manufacturer" + (f'; did you mean "{suggestion}"?' if suggestion else ""))
    return manufacturer


def resolve_program(value: str, lookups):
    """The workspace's program of this slug (any case)."""
    program = lookups.program_by_slug.get(value.lower())
    if program is None:
        known = ", ".join(sorted(p.slug for p in lookups.program_by_slug.values())[:5]) or "none"
        raise FieldRuleError(f"no program with this slug in this workspace (programs: {known})")
    return program


def normalize_device_type(value: str, manufacturer) -> str:
    """Lower case; empty means the manufacturer's first type."""
    device_type = value.lower()
    if not device_type:
        return manufacturer.device_types[0]
    if device_type not in DEVICE_TYPES:
        raise FieldRuleError(f"unknown device type (one of {', '.join(DeviceType.values)})")
    if device_type not in manufacturer.device_types:
        raise FieldRuleError(f"{manufacturer.name} makes no devices of this type")
    return device_type


def split_tags(value: str) -> list[str]:
    return value.split(TAG_SEPARATOR)


def normalize_tags(names) -> tuple[str, ...]:
    """Stripped, blanks dropped, duplicates dropped (first order kept); each at most 100 characters."""
    tags = tuple(dict.fromkeys(name for name in (name.strip() for name in names) if name))
    for name in tags:
        if len(name) > MAX_TAG_LENGTH:
            raise FieldRuleError(f"tag “{name[:20]}…” is longer than {MAX_TAG_LENGTH} characters")
    return tags
