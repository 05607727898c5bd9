"""django-import-export Resources of the fleet: the export in the exact shape of the import file.

Exporting a workspace's devices and importing the file again changes nothing (a round trip). Cells that a
spreadsheet would run as a formula (starting with = + - @) are exported with a leading apostrophe (OWASP's
advice for CSV injection), which the importer removes again. django-import-export's own
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT only drops a leading "=", which both changes the data and leaves
"+", "-" and "@" open, so it stays off.
"""

from django.db.models import Prefetch
from import_export import fields, resources

from fleet.importing.columns import COLUMNS, TAG_SEPARATOR
from fleet.models import Device
from programs.choices import EnrollmentStatus
from programs.models import Enrollment

FORMULA_STARTS = ("=", "+", "-", "@")


def escape_formula(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


ATTRIBUTES = {
    "referenceId": "contact__reference_id",
    "firstName": "contact__first_name",
    "lastName": "contact__last_name",
    "email": "contact__email",
    "phone": "contact__phone",
    "streetOne": "site__street_one",
    "streetTwo": "site__street_two",
    "city": "site__city",
    "state": "site__state",
    "postalCode": "site__postal_code",
    "country": "site__country",
    "siteName": "site__site_name",
    "siteReferenceId": "site__site_reference_id",
    "manufacturerSlug": "manufacturer__slug",
    "systemIdentifier": "system_identifier",
    "deviceType": "device_type",
}


class FleetExportResource(resources.Resource):
    """One row per device, columns as docs/domain.md's bulk import CSV. `programSlug` is the device's earliest
    active enrollment (a device in several programs re-imports unchanged; its other enrollments stay), and empty
    for a device enrolled nowhere now (unenrolled, rejected): the importer needs a program only for a device not
    yet in the workspace, so the file imports again and leaves its enrollments as they are."""

    programSlug = fields.Field(column_name="programSlug")
    tags = fields.Field(column_name="tags")

    class Meta:
        model = Device
        fields = COLUMNS
        export_order = COLUMNS

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for column, attribute in ATTRIBUTES.items():
            self.fields[column] = fields.Field(attribute=attribute, column_name=column)

    @staticmethod
    def queryset_for_export(queryset):
        active = (
            Enrollment.objects.filter(status__in=[EnrollmentStatus.SUBMITTED, EnrollmentStatus.APPROVED])
            .select_related("program")
            .order_by("submitted_at", "id")
        )
        return (
            queryset.select_related("contact", "site", "manufacturer")
            .prefetch_related("tags", Prefetch("enrollments", queryset=active, to_attr="active_enrollments"))
            .order_by("contact__reference_id", "id")
        )

    def dehydrate_programSlug(self, device):  # noqa: N802 (named after the column)
        enrollments = getattr(device, "active_enrollments", None)
        if enrollments is None:
            enrollments = list(
                device.enrollments.filter(status__in=[EnrollmentStatus.SUBMITTED, EnrollmentStatus.APPROVED])
            )
        return enrollments[0].program.slug if enrollments else ""

    def dehydrate_tags(self, device):
        return TAG_SEPARATOR.join(sorted(tag.name for tag in device.tags.all()))

    def export_field(self, field, instance, **kwargs):
        return escape_formula(super().export_field(field, instance, **kwargs))


def export_fleet_csv(queryset) -> str:
    """The devices of `queryset` as a fleet CSV (UTF-8 text)."""
    resource = FleetExportResource()
    dataset = resource.export(queryset=FleetExportResource.queryset_for_export(queryset))
    return dataset.export("csv")
