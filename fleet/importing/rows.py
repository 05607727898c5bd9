"""Normalizing and checking one record of a fleet file. Every problem becomes a RowError naming the row,
the column, the value and why; nothing here touches the database beyond the lookups handed in."""

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from fleet.importing.columns import REQUIRED, REQUIRED_FOR_NEW_DEVICES
from fleet.importing.rules import (  # noqa: F401 (email_is_valid: imported from here too)
    DEFAULT_COUNTRY,
    MAX_LENGTH,
    REQUIRED_EMPTY,
    REQUIRED_MISSING,
    FieldRuleError,
    check_system_identifier,
    email_is_valid,
    normalize_country,
    normalize_device_type,
    normalize_email,
    normalize_phone,
    normalize_tags,
    resolve_manufacturer,
    resolve_program,
    split_tags,
    too_long,
)

# A North American number as utility files hold it: +1 or 1 (the national prefix) optional, then 10 digits
# whose first is 2-9 (NANP area codes), with the usual punctuation.
NANP_SHAPE = re.compile(r"(?:\+?1)?([2-9][0-9]{9})")  # ASCII digits only: phonenumbers maps the others
NANP_PUNCTUATION = str.maketrans("", "", " ()-.")
NANP_REGIONS = frozenset(phonenumbers.region_codes_for_country_code(1))
# phonenumbers' number types, in the order its `_number_type_helper` tries them
NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
FORMULA_MARK = ("'=", "'+", "'-", "'@")
VALUE_SHOWN_MAX = 120  # characters of a value an error stores and shows (the longest cell allowed is 254)
SHORTEST_LIMIT = min(MAX_LENGTH.values())  # most cells are shorter: no lookup


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        shown = self.value if len(self.value) <= 80 else self.value[:77] + "…"
        return f'row {self.row}, {self.column}: "{shown}" — {self.message}'

    def as_dict(self) -> dict:
        """As the job stores and the API shows it: the value cut to its start (a long cell is never echoed)."""
        value = self.value if len(self.value) <= VALUE_SHOWN_MAX else self.value[: VALUE_SHOWN_MAX - 1] + "…"
        return {"row": self.row, "column": self.column, "value": value, "message": self.message}


@dataclass(slots=True)
class FleetRow:
    """One valid record, normalized. `tags` is None when the file has no tags column (tags left alone)."""

    row: int
    reference_id: str
    first_name: str
    last_name: str
    email: str | None
    phone: str | None
    street_one: str
    street_two: str
    city: str
    state: str
    postal_code: str
    country: str
    site_name: str
    site_reference_id: str
    manufacturer_id: int
    manufacturer_slug: str
    system_identifier: str
    device_type: str
    program_id: int | None  # None: no programSlug (allowed for a device already in the workspace)
    tags: tuple[str, ...] | None

    @property
    def device_key(self) -> tuple[int, str]:
        return (self.manufacturer_id, self.system_identifier)

    site_key: tuple[str, str] = ("", "")

    def __post_init__(self):
        # computed once: every cross-row check and the planner key on it
        if self.site_reference_id:
            self.site_key = (self.reference_id, "ref:" + self.site_reference_id)
        else:
            self.site_key = (self.reference_id, address_key(self.street_one, self.street_two, self.postal_code))


def address_key(street_one: str, street_two: str, postal_code: str) -> str:
    return "addr:" + "|".join(" ".join(part.lower().split()) for part in (street_one, street_two, postal_code))


class Lookups:
    """What rows are checked against: the catalog and the workspace's programs (loaded once per file)."""

    def __init__(self, *, manufacturers, programs):
        self.manufacturer_by_name = {}
        for manufacturer in manufacturers:
            for name in (manufacturer.slug, *manufacturer.aliases):
                self.manufacturer_by_name[name.lower()] = manufacturer
        self.program_by_slug = {program.slug.lower(): program for program in programs}
        self._phones: dict[tuple[str, str], str | None] = {}
        self._known_phones: set[str] = set()

    def manufacturer(self, value: str):
        return self.manufacturer_by_name.get(value.lower())

    def closest_manufacturer(self, value: str) -> str | None:
        matches = difflib.get_close_matches(value.lower(), self.manufacturer_by_name, n=1, cutoff=0.6)
        return self.manufacturer_by_name[matches[0]].slug if matches else None

    def known_phones(self, numbers) -> None:
        """E.164 numbers already validated (stored on contacts): they normalize to themselves."""
        self._known_phones = set(numbers)

    def phone_e164(self, value: str, country: str) -> str | None:
        if value in self._known_phones:
            return value
        key = (value, country)
        if key not in self._phones:
            self._phones[key] = phone_e164(value, country)
        return self._phones[key]


def phone_e164(value: str, country: str) -> str | None:
    """`value` in E.164 when it is a valid number (read as dialled from `country`), else None.

    The same answer as phonenumbers' `parse` + `is_valid_number` (a test compares them), faster for the
    North American numbers that fill utility files: their shape is split without the general parser, and
    validity is first checked against the file's own region instead of each of the 25 NANP regions in turn.
    """
    nanp = country in NANP_REGIONS
    match = NANP_SHAPE.fullmatch(value.translate(NANP_PUNCTUATION)) if nanp or value.startswith("+1") else None
    if match is not None:
        national = match.group(1)
        if nanp and _valid_in_region(country)(national):
            return "+1" + national
        if phonenumbers.is_valid_number(phonenumbers.PhoneNumber(country_code=1, national_number=int(national))):
            return "+1" + national
        return None
    try:
        number = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=64)
def _valid_in_region(region: str):
    """phonenumbers' `is_valid_number_for_region` for a national number of `region`, with the region's
    patterns compiled once (phonenumbers looks each one up in `re`'s cache on every call): valid when the
    number fits the region's general pattern and one of its number types, lengths included."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    descs = [getattr(metadata, name) for name in ("general_desc", *NUMBER_TYPES)]
    compiled = [
        (frozenset(desc.possible_length), re.compile(desc.national_number_pattern))
        if desc is not None and desc.national_number_pattern
        else None
        for desc in descs
    ]
    general, types = compiled[0], [desc for desc in compiled[1:] if desc is not None]

    def fits(national: str, desc) -> bool:
        lengths, pattern = desc
        return (not lengths or len(national) in lengths) and pattern.fullmatch(national) is not None

    def valid(national: str) -> bool:
        return general is not None and fits(national, general) and any(fits(national, desc) for desc in types)

    return valid


def normalize_row(record: dict[str, str], row: int, lookups: Lookups, errors: list[RowError]) -> FleetRow | None:
    """A FleetRow, or None after appending every problem of the record to `errors`. The per-field rules are
    `fleet.importing.rules`, shared with the API's writes."""
    found: list[RowError] = []
    value = {name: text.strip() for name, text in record.items()}
    for name, text in value.items():
        # undo the apostrophe our exports put before cells a spreadsheet would run as formulas
        if text[:1] == "'" and text[:2] in FORMULA_MARK:
            value[name] = text[1:]

    def fail(column: str, message: str) -> None:
        found.append(RowError(row, column, record.get(column, "").strip(), message))

    for column in REQUIRED:
        if not value.get(column) and column not in REQUIRED_FOR_NEW_DEVICES:  # those: the planner
            fail(column, REQUIRED_EMPTY if column in record else REQUIRED_MISSING)
    for column, text in value.items():
        if len(text) > SHORTEST_LIMIT and (message := too_long(column, text)):
            fail(column, message)

    # each rule called directly (no helper frame per call): this runs for every row of 100k-row files
    try:
        country = normalize_country(value.get("country", ""))
    except FieldRuleError as error:
        fail("country", error.message)
        country = DEFAULT_COUNTRY
    email = value.get("email") if "email" in record else None
    if email:
        try:
            normalize_email(email)
        except FieldRuleError as error:
            fail("email", error.message)
    phone = value.get("phone") if "phone" in record else None
    if phone:
        try:
            phone = normalize_phone(phone, country, lookups.phone_e164)
        except FieldRuleError as error:
            fail("phone", error.message)
            phone = None
    serial = value.get("systemIdentifier", "")
    try:
        check_system_identifier(serial)
    except FieldRuleError as error:
        fail("systemIdentifier", error.message)

    manufacturer = None
    slug = value.get("manufacturerSlug", "")
    if slug:
        try:
            manufacturer = resolve_manufacturer(slug, lookups)
        except FieldRuleError as error:
            fail("manufacturerSlug", error.message)

    program = None
    program_slug = value.get("programSlug", "")
    if program_slug:
        try:
            program = resolve_program(program_slug, lookups)
        except FieldRuleError as error:
            fail("programSlug", error.message)

    device_type = value.get("deviceType", "").lower()
    if manufacturer is not None:
        try:
            device_type = normalize_device_type(device_type, manufacturer)
        except FieldRuleError as error:
            fail("deviceType", error.message)

    tags = None
    if "tags" in record:
        try:
            tags = normalize_tags(split_tags(value.get("tags", "")))
        except FieldRuleError as error:
            fail("tags", error.message)

    if found:
        errors.extend(found)
        return None
    return FleetRow(
        row=row,
        reference_id=value["referenceId"],
        first_name=value["firstName"],
        last_name=value["lastName"],
        email=email,
        phone=phone,
        street_one=value["streetOne"],
        street_two=value.get("streetTwo", ""),
        city=value["city"],
        state=value["state"],
        postal_code=value["postalCode"],
        country=country,
        site_name=value.get("siteName", ""),
        site_reference_id=value.get("siteReferenceId", ""),
        manufacturer_id=manufacturer.pk,
        manufacturer_slug=manufacturer.slug,
        system_identifier=serial,
        device_type=device_type,
        program_id=program.pk if program is not None else None,
        tags=tags,
    )
