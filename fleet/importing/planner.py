"""Planning an import: every row checked, every existing record it refers to loaded with one query per
model (chunked), and every create / update decided in memory. Nothing is written here, so a preview is a
plan, not a rolled-back import."""

from collections import defaultdict
from dataclasses import dataclass, field

from fleet.geocoding import postal_code_centroid
from fleet.importing.reader import FleetFile
from fleet.importing.rows import FleetRow, Lookups, RowError, address_key, normalize_row
from fleet.importing.rules import PROGRAM_REQUIRED, REQUIRED_MISSING
from fleet.models import Contact, Device, Manufacturer, Site
from programs.choices import EnrollmentStatus
from programs.models import Enrollment, Program

CHUNK = 5000  # ids per IN (…): under SQLite's and PostgreSQL's parameter limits
CONTACT_FIELDS = ("first_name", "last_name", "email", "phone")
SITE_FIELDS = ("site_name", "site_reference_id", "street_one", "street_two", "city", "state", "postal_code", "country")

NEW, UPDATE, UNCHANGED, ERROR = "new", "update", "unchanged", "error"


@dataclass
class RowStatus:
    row: int
    status: str
    reference_id: str
    system_identifier: str

    def as_list(self) -> list:
        return [self.row, self.status, self.reference_id, self.system_identifier]


@dataclass
class FleetImportPlan:
    """What an import would do. `errors` empty ⇔ it may be applied."""

    workspace_id: int
    rows: list[RowStatus] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # creations, keyed by natural key
    contacts_new: dict[str, dict] = field(default_factory=dict)
    sites_new: dict[tuple, dict] = field(default_factory=dict)
    devices_new: dict[tuple, dict] = field(default_factory=dict)
    # updates of existing rows: {pk: {field: (old, new)}}
    contacts_changed: dict[int, dict] = field(default_factory=dict)
    sites_changed: dict[int, dict] = field(default_factory=dict)
    devices_changed: dict[int, dict] = field(default_factory=dict)
    # device key → new tag set, for devices whose tags change (new devices included)
    tags: dict[tuple, tuple[str, ...]] = field(default_factory=dict)
    tags_before: dict[tuple, tuple[str, ...]] = field(default_factory=dict)
    enrollments_new: dict[tuple[tuple, int], None] = field(default_factory=dict)  # ordered set
    # natural key → existing pk, for linking new rows to existing ones
    contact_ids: dict[str, int] = field(default_factory=dict)
    site_ids: dict[tuple, int] = field(default_factory=dict)
    device_ids: dict[tuple, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict:
        by_status = defaultdict(int)
        for status in self.rows:
            by_status[status.status] += 1
        return {
            "rows": len(self.rows),
            "new": by_status[NEW],
            "updated": by_status[UPDATE],
            "unchanged": by_status[UNCHANGED],
            "errors": by_status[ERROR],
            "contacts": {"new": len(self.contacts_new), "updated": len(self.contacts_changed)},
            "sites": {"new": len(self.sites_new), "updated": len(self.sites_changed)},
            "devices": {"new": len(self.devices_new), "updated": len(self.devices_changed)},
            "enrollments": {"new": len(self.enrollments_new)},
        }

    def summary(self) -> str:
        c = self.counts()
        return f"{c['new']} new, {c['updated']} updated, {c['unchanged']} unchanged, {len(self.errors)} errors"


def preload(queryset, field: str, keys, *, file_rows: int, workspace_rows: int):
    """Rows of `queryset` whose `field` is in `keys`. When the workspace holds at most about twice what the
    file names, one scan of the workspace beats thousands of parameters in IN (…) lists."""
    if workspace_rows <= 2 * file_rows + 1000:
        yield from queryset
        return
    for chunk in chunked(keys):
        yield from queryset.filter(**{f"{field}__in": chunk})


def chunked(items, size=CHUNK):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def plan_fleet_import(*, workspace, fleet_file: FleetFile, progress=None) -> FleetImportPlan:
    """Check every row and decide what importing the file would create and update in `workspace`.

    `progress(done, total)` is called as rows are checked. Never writes.
    """
    plan = FleetImportPlan(workspace_id=workspace.pk, warnings=list(fleet_file.warnings))
    lookups = Lookups(
        manufacturers=list(Manufacturer.objects.all()), programs=list(Program.objects.filter(workspace=workspace))
    )
    # Phones the workspace stores were validated and normalized to E.164 then: no need to parse them again.
    lookups.known_phones(Contact.objects.filter(workspace=workspace).exclude(phone="").values_list("phone", flat=True))
    total = len(fleet_file.records)
    rows: list[FleetRow] = []
    failed_rows: set[int] = set()
    # cells the reader refused (NUL, too long): their row fails, and their error replaces what the check of
    # the emptied cell would say
    refused_cells = {(error.row, error.column) for error in fleet_file.cell_errors}
    refused_rows = {row for row, _ in refused_cells}
    for index, (record, row_number) in enumerate(zip(fleet_file.records, fleet_file.row_numbers, strict=True)):
        normalized = normalize_row(record, row_number, lookups, plan.errors)
        if normalized is None or row_number in refused_rows:
            failed_rows.add(row_number)
        else:
            rows.append(normalized)
        if progress and (index + 1) % 2000 == 0:
            progress(index + 1, total)
    if refused_cells:
        plan.errors = [e for e in plan.errors if (e.row, e.column) not in refused_cells] + fleet_file.cell_errors
    _check_rows_agree(rows, plan, failed_rows)
    _check_owners_of_failed_rows(fleet_file, lookups, plan, failed_rows)
    # The raw records are the largest thing held (a dict of strings per row): keep what the row list needs
    # of them and let them go before the database half of the plan.
    raw_keys = {
        row_number: (record.get("referenceId", "").strip(), record.get("systemIdentifier", "").strip())
        for record, row_number in zip(fleet_file.records, fleet_file.row_numbers, strict=True)
        if row_number in failed_rows
    }
    columns, row_numbers = list(fleet_file.columns), list(fleet_file.row_numbers)
    fleet_file.records = []
    _plan_against_database(workspace, rows, plan, failed_rows, columns, total)
    if progress:
        progress(total, total)
    # the row list, in file order, with every failed row marked
    status_by_row = {status.row: status for status in plan.rows}
    normalized_keys = {row.row: (row.reference_id, row.system_identifier) for row in rows}
    ordered = []
    for row_number in row_numbers:
        status = status_by_row.get(row_number)
        if status is None or row_number in failed_rows:
            reference_id, serial = raw_keys.get(row_number) or normalized_keys[row_number]
            status = RowStatus(row_number, ERROR, reference_id, serial)
        ordered.append(status)
    plan.rows = ordered
    plan.errors.sort(key=lambda e: (e.row, e.column))
    return plan


def _check_rows_agree(rows: list[FleetRow], plan: FleetImportPlan, failed_rows: set[int]) -> None:
    """Rows that describe the same contact, site or device must say the same thing about it."""
    first_contact: dict[str, FleetRow] = {}
    first_site: dict[tuple, FleetRow] = {}
    first_device: dict[tuple, FleetRow] = {}
    seen_pairs: set[tuple] = set()
    for row in rows:
        contact = first_contact.setdefault(row.reference_id, row)
        for attr, column in (
            ("first_name", "firstName"),
            ("last_name", "lastName"),
            ("email", "email"),
            ("phone", "phone"),
        ):
            if getattr(row, attr) != getattr(contact, attr):
                plan.errors.append(
                    RowError(
                        row.row,
                        column,
                        getattr(row, attr) or "",
                        f"referenceId {row.reference_id} has “{getattr(contact, attr) or ''}” on row {contact.row}; "
                        "rows of one contact must agree",
                    )
                )
                failed_rows.add(row.row)
        site = first_site.setdefault(row.site_key, row)
        for attr, column in (("city", "city"), ("state", "state"), ("site_name", "siteName"), ("country", "country")):
            if getattr(row, attr) != getattr(site, attr):
                plan.errors.append(
                    RowError(
                        row.row,
                        column,
                        getattr(row, attr),
                        f"the same site has “{getattr(site, attr)}” on row {site.row}",
                    )
                )
                failed_rows.add(row.row)
        device = first_device.setdefault(row.device_key, row)
        if device is not row:
            label = f"{row.manufacturer_slug} {row.system_identifier}"
            if device.reference_id != row.reference_id:
                for culprit in (device, row):
                    plan.errors.append(
                        RowError(
                            culprit.row,
                            "systemIdentifier",
                            culprit.system_identifier,
                            f"device {label} is listed on rows {device.row} and {row.row} with different owners "
                            f"(referenceId {device.reference_id} and {row.reference_id})",
                        )
                    )
                    failed_rows.add(culprit.row)
            elif device.site_key != row.site_key:
                plan.errors.append(
                    RowError(
                        row.row,
                        "streetOne",
                        row.street_one,
                        f"device {label} is at another address on row {device.row}",
                    )
                )
                failed_rows.add(row.row)
            elif device.tags != row.tags or device.device_type != row.device_type:
                plan.errors.append(
                    RowError(
                        row.row,
                        "tags",
                        ";".join(row.tags or ()),
                        f"device {label} has other tags or type on row {device.row}",
                    )
                )
                failed_rows.add(row.row)
            elif (row.device_key, row.program_id) in seen_pairs:
                plan.warnings.append(f"Row {row.row} repeats row {device.row} (device {label}); imported once.")
        seen_pairs.add((row.device_key, row.program_id))


def _check_owners_of_failed_rows(fleet_file: FleetFile, lookups: Lookups, plan: FleetImportPlan, failed_rows) -> None:
    """One device listed for two owners is an error even when one of the rows also fails on its own, so
    that fixing the row's other errors does not uncover a new one (every error, not only the first)."""
    owners: dict[tuple, list[tuple[int, str]]] = defaultdict(list)
    for record, row_number in zip(fleet_file.records, fleet_file.row_numbers, strict=True):
        slug, serial = record.get("manufacturerSlug", "").strip(), record.get("systemIdentifier", "").strip()
        reference = record.get("referenceId", "").strip()
        if serial and reference:
            manufacturer = lookups.manufacturer(slug)
            owners[(manufacturer.pk if manufacturer else slug.lower(), serial)].append((row_number, reference))
    reported = {(e.row, e.column) for e in plan.errors if "different owners" in e.message}
    for (_, serial), listed in owners.items():
        if len({ref for _, ref in listed}) < 2 or not any(row in failed_rows for row, _ in listed):
            continue
        rows_text = ", ".join(str(row) for row, _ in listed)
        refs_text = " and ".join(sorted({ref for _, ref in listed}))
        for row, _ in listed:
            if (row, "systemIdentifier") not in reported:
                plan.errors.append(
                    RowError(
                        row,
                        "systemIdentifier",
                        serial,
                        f"device {serial} is listed on rows {rows_text} with different owners "
                        f"(referenceId {refs_text})",
                    )
                )
                failed_rows.add(row)


def _plan_against_database(
    workspace, rows, plan: FleetImportPlan, failed_rows: set[int], columns: list[str], file_rows: int
) -> None:
    good = [row for row in rows if row.row not in failed_rows]
    references = {row.reference_id for row in good}
    workspace_rows = Device.objects.filter(workspace=workspace).count()

    def load(queryset, field, keys):
        return preload(queryset, field, keys, file_rows=file_rows, workspace_rows=workspace_rows)

    contacts = {}
    contact_values = Contact.objects.filter(workspace=workspace).values("id", "reference_id", *CONTACT_FIELDS)
    for values in load(contact_values, "reference_id", references):
        if values["reference_id"] in references:
            contacts[values["reference_id"]] = values
    plan.contact_ids = {ref: values["id"] for ref, values in contacts.items()}

    sites_by_key = {}
    site_ref_owner = {}
    site_reference_ids = {row.site_reference_id for row in good if row.site_reference_id}
    known_contacts = {c["id"] for c in contacts.values()}
    site_values = Site.objects.filter(workspace=workspace).values(
        "id", "contact_id", "contact__reference_id", "latitude", *SITE_FIELDS
    )
    site_rows = {}
    for values in load(site_values, "contact_id", known_contacts):
        site_rows[values["id"]] = values
    for values in load(site_values, "site_reference_id", site_reference_ids) if site_reference_ids else ():
        site_rows[values["id"]] = values
    for values in site_rows.values():
        if values["contact_id"] not in known_contacts and values["site_reference_id"] not in site_reference_ids:
            continue
        ref = values["contact__reference_id"]
        if values["site_reference_id"]:
            site_ref_owner[values["site_reference_id"]] = values
            sites_by_key[(ref, "ref:" + values["site_reference_id"])] = values
        sites_by_key.setdefault(
            (ref, address_key(values["street_one"], values["street_two"], values["postal_code"])), values
        )

    devices = {}
    wanted_keys = {row.device_key for row in good}
    device_values = Device.objects.filter(workspace=workspace).values(
        "id", "manufacturer_id", "system_identifier", "contact__reference_id", "site_id", "device_type"
    )
    for values in load(device_values, "system_identifier", {serial for _, serial in wanted_keys}):
        key = (values["manufacturer_id"], values["system_identifier"])
        if key in wanted_keys:
            devices[key] = values
    plan.device_ids = {key: values["id"] for key, values in devices.items()}

    existing_tags: dict[int, tuple] = defaultdict(tuple)
    enrollments: dict[tuple[int, int], str] = {}
    known = set(plan.device_ids.values())
    tag_values = Device.tags.through.objects.filter(device__workspace=workspace).values_list(
        "device_id", "devicetag__name"
    )
    for device_id, name in load(tag_values, "device_id", known):
        if device_id in known:
            existing_tags[device_id] = (*existing_tags[device_id], name)
    enrollment_values = Enrollment.objects.filter(workspace=workspace).values_list("device_id", "program_id", "status")
    for device_id, program_id, status in load(enrollment_values, "device_id", known):
        if device_id in known:
            enrollments[(device_id, program_id)] = status

    has = set(columns)
    planned_sites: set[tuple] = set()
    for row in good:
        changed = False
        # contact
        contact = contacts.get(row.reference_id)
        if contact is None:
            plan.contacts_new.setdefault(
                row.reference_id,
                {
                    "reference_id": row.reference_id,
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "email": row.email or "",
                    "phone": row.phone or "",
                },
            )
        else:
            diff = {}
            for attr in CONTACT_FIELDS:
                new = getattr(row, attr)
                if new is None:  # column absent: leave it
                    continue
                if contact[attr] != new:
                    diff[attr] = (contact[attr], new)
            if diff:
                plan.contacts_changed[contact["id"]] = diff
                changed = True
        # site
        site = sites_by_key.get(row.site_key)
        if row.site_reference_id and site is None and row.site_reference_id in site_ref_owner:
            owner = site_ref_owner[row.site_reference_id]["contact__reference_id"]
            plan.errors.append(
                RowError(row.row, "siteReferenceId", row.site_reference_id, f"this site belongs to referenceId {owner}")
            )
            failed_rows.add(row.row)
            continue
        if site is None:
            if row.site_key not in plan.sites_new:
                fields = {attr: getattr(row, attr) for attr in SITE_FIELDS}
                centroid = postal_code_centroid(row.postal_code, row.country)
                if centroid is None:
                    plan.warnings.append(
                        f"Row {row.row}: no offline coordinates for postal code {row.postal_code} ({row.country}); "
                        "the site has no map position."
                    )
                else:
                    fields |= {
                        "latitude": centroid.latitude,
                        "longitude": centroid.longitude,
                        "timezone": centroid.timezone,
                    }
                plan.sites_new[row.site_key] = {"contact_ref": row.reference_id, **fields}
            changed = True
        else:
            plan.site_ids[row.site_key] = site["id"]
            if row.site_key not in planned_sites:
                diff = {}
                for attr in SITE_FIELDS:
                    column = {
                        "site_name": "siteName",
                        "site_reference_id": "siteReferenceId",
                        "street_two": "streetTwo",
                        "country": "country",
                    }.get(attr)
                    if column and column not in has:
                        continue
                    new = getattr(row, attr)
                    if site[attr] != new:
                        diff[attr] = (site[attr], new)
                if "postal_code" in diff or (site["latitude"] is None and diff):
                    centroid = postal_code_centroid(row.postal_code, row.country)
                    if centroid:
                        diff |= {
                            "latitude": (None, centroid.latitude),
                            "longitude": (None, centroid.longitude),
                            "timezone": (None, centroid.timezone),
                        }
                if diff:
                    plan.sites_changed[site["id"]] = diff
                    changed = True
            elif site["id"] in plan.sites_changed:
                changed = True
        planned_sites.add(row.site_key)
        # device
        device = devices.get(row.device_key)
        if device is None and row.program_id is None:
            message = PROGRAM_REQUIRED if "programSlug" in has else REQUIRED_MISSING
            plan.errors.append(RowError(row.row, "programSlug", "", message))
            failed_rows.add(row.row)
            continue
        if device is None:
            if row.device_key not in plan.devices_new:
                plan.devices_new[row.device_key] = {
                    "contact_ref": row.reference_id,
                    "site_key": row.site_key,
                    "device_type": row.device_type,
                    "row": row.row,
                }
                if row.tags:
                    plan.tags[row.device_key] = row.tags
            plan.rows.append(RowStatus(row.row, NEW, row.reference_id, row.system_identifier))
        else:
            if device["contact__reference_id"] != row.reference_id:
                plan.errors.append(
                    RowError(
                        row.row,
                        "systemIdentifier",
                        row.system_identifier,
                        f"{row.manufacturer_slug} device already belongs to the contact with referenceId "
                        f"{device['contact__reference_id']}",
                    )
                )
                failed_rows.add(row.row)
                continue
            diff = {}
            site_id = plan.site_ids.get(row.site_key)
            if site_id != device["site_id"]:
                diff["site"] = (device["site_id"], site_id or row.site_key)
            if "deviceType" in has and device["device_type"] != row.device_type:
                diff["device_type"] = (device["device_type"], row.device_type)
            if diff:
                plan.devices_changed.setdefault(device["id"], {}).update(diff)
                changed = True
            before = tuple(sorted(existing_tags[device["id"]]))
            if row.tags is not None and tuple(sorted(row.tags)) != before:
                plan.tags[row.device_key] = row.tags
                plan.tags_before[row.device_key] = before
                changed = True
            status = enrollments.get((device["id"], row.program_id))
            if row.program_id is None:
                pass  # no program named: the device's enrollments stay as they are
            elif status is None:
                changed = True
            elif status in (EnrollmentStatus.UNENROLLED, EnrollmentStatus.REJECTED):
                plan.warnings.append(
                    f"Row {row.row}: device {row.system_identifier} was {status} in this program; not enrolled again."
                )
            plan.rows.append(
                RowStatus(row.row, UPDATE if changed else UNCHANGED, row.reference_id, row.system_identifier)
            )
        if row.program_id is not None and (device is None or (device["id"], row.program_id) not in enrollments):
            plan.enrollments_new[(row.device_key, row.program_id)] = None
    # a row whose contact or site changed through another row of the same contact counts as updated too
    if plan.contacts_changed:
        changed_refs = {ref for ref, values in contacts.items() if values["id"] in plan.contacts_changed}
        for status in plan.rows:
            if status.status == UNCHANGED and status.reference_id in changed_refs:
                status.status = UPDATE
