"""Request bodies of the fleet's writes (contacts, sites, devices, tags), in the API's camelCase.

Every field a fleet file also has is checked by the importer's own rule (`fleet.importing.rules`), so a bad value
gets the same message through either path, under the same name (`email`: "not a valid e-mail address"). The
validated data uses the models' field names, ready for the fleet's services."""

from rest_framework import serializers
from rest_framework.exceptions import NotFound

from fleet.geocoding import postal_code_centroid
from fleet.importing.rows import Lookups
from fleet.importing.rules import (
    DEFAULT_COUNTRY,
    MAX_LENGTH,
    PROGRAM_REQUIRED,
    REQUIRED_EMPTY,
    FieldRuleError,
    check_length,
    check_system_identifier,
    normalize_country,
    normalize_device_type,
    normalize_email,
    normalize_phone,
    normalize_tags,
    resolve_manufacturer,
    resolve_program,
)
from fleet.models import Contact, Device, Manufacturer, Site
from programs.models import Program

REQUIRED_MESSAGES = {"required": REQUIRED_EMPTY, "blank": REQUIRED_EMPTY, "null": REQUIRED_EMPTY}


def rule_error(error: FieldRuleError) -> serializers.ValidationError:
    return serializers.ValidationError(error.message)


class TextField(serializers.CharField):
    """Text that can be stored: JSON may carry lone UTF-16 surrogates, which no UTF-8 column takes."""

    default_error_messages = {"invalid_text": "not valid text (holds a lone UTF-16 surrogate)"}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("invalid_text")
        return value


class RuleField(TextField):
    """Text of a fleet-file column: stripped, then its length and its rule checked as the importer checks
    them. Required fields refuse empty text ("required, but empty"), optional ones keep it."""

    def __init__(self, column: str, rule=None, *, required: bool = True, **kwargs):
        kwargs.setdefault("allow_blank", not required)
        kwargs["error_messages"] = {**REQUIRED_MESSAGES, **kwargs.get("error_messages", {})}
        super().__init__(required=required, **kwargs)
        self.column, self.rule = column, rule
        self.max_length = MAX_LENGTH.get(column)  # shown in the schema; checked by check_length's message

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            check_length(self.column, value)
            return self.rule(value) if self.rule and value else value
        except FieldRuleError as error:
            raise rule_error(error) from error


def in_workspace(serializer) -> int:
    return serializer.context["workspace_id"]


class ContactInput(serializers.Serializer):
    """A contact: `POST /v1/contacts`, `PATCH /v1/contacts/{id}`, `PUT /v1/contacts/by-reference/{referenceId}`
    (where `referenceId` comes from the path). `phone` is read as dialled from the US unless it starts with +."""

    referenceId = RuleField("referenceId", source="reference_id", help_text="Utility account number (unique).")
    firstName = RuleField("firstName", source="first_name")
    lastName = RuleField("lastName", source="last_name")
    email = RuleField("email", normalize_email, required=False)
    phone = RuleField("phone", required=False, help_text="Stored in E.164, e.g. +15415550101.")

    def __init__(self, *args, reference_from_path: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.reference_from_path = reference_from_path
        if reference_from_path is not None:
            self.fields["referenceId"].required = False

    def validate_phone(self, value):
        try:
            return normalize_phone(value, DEFAULT_COUNTRY)
        except FieldRuleError as error:
            raise rule_error(error) from error

    def validate(self, attrs):
        reference = attrs.get("reference_id")
        if self.reference_from_path is not None:
            if reference is not None and reference != self.reference_from_path:
                raise serializers.ValidationError({"referenceId": ["differs from the referenceId in the path"]})
            return attrs
        if reference is not None:
            taken = Contact.objects.filter(workspace_id=in_workspace(self), reference_id=reference)
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            holder = taken.values_list("pk", flat=True).first()
            if holder is not None:
                raise serializers.ValidationError(
                    {"referenceId": [f"a contact with this referenceId exists (id {holder}); update that one"]}
                )
        return attrs


class AddressInput(serializers.Serializer):
    streetOne = RuleField("streetOne", source="street_one")
    streetTwo = RuleField("streetTwo", source="street_two", required=False)
    city = RuleField("city")
    state = RuleField("state")
    postalCode = RuleField("postalCode", source="postal_code")
    country = RuleField("country", normalize_country, required=False, help_text="ISO 3166-1 alpha-2; default US.")

    def validate_country(self, value):
        try:
            return normalize_country(value)  # empty is US, as in a fleet file
        except FieldRuleError as error:
            raise rule_error(error) from error


class SiteInput(serializers.Serializer):
    """A site: `POST /v1/sites`, `PATCH /v1/sites/{id}`. Without coordinates, a US site gets its postal code's
    centroid and timezone, as an imported one does."""

    contactId = serializers.IntegerField(source="contact", min_value=1)
    siteName = RuleField("siteName", source="site_name", required=False)
    siteReferenceId = RuleField("siteReferenceId", source="site_reference_id", required=False)
    address = AddressInput(source="*")
    latitude = serializers.FloatField(required=False, allow_null=True, min_value=-90, max_value=90)
    longitude = serializers.FloatField(required=False, allow_null=True, min_value=-180, max_value=180)
    timezone = TextField(required=False, allow_blank=True, max_length=64, help_text="IANA name.")

    def validate_contactId(self, value):  # noqa: N802 (named after the field)
        contact = Contact.objects.filter(workspace_id=in_workspace(self), pk=value).first()
        if contact is None:
            raise NotFound(f"No contact {value} in this workspace (contactId).")  # as for ids in the path
        return contact

    def validate(self, attrs):
        reference = attrs.get("site_reference_id")
        if reference:
            taken = Site.objects.filter(workspace_id=in_workspace(self), site_reference_id=reference)
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            holder = taken.values_list("pk", flat=True).first()
            if holder is not None:
                raise serializers.ValidationError(
                    {"siteReferenceId": [f"a site with this siteReferenceId exists (id {holder})"]}
                )
        if ("latitude" in attrs) != ("longitude" in attrs) or (attrs.get("latitude") is None) != (
            attrs.get("longitude") is None
        ):
            raise serializers.ValidationError({"latitude": ["latitude and longitude go together"]})
        moved = self.instance is None or "postal_code" in attrs or "country" in attrs
        if "latitude" not in attrs and moved:
            postal_code = attrs.get("postal_code", getattr(self.instance, "postal_code", ""))
            country = attrs.get("country", getattr(self.instance, "country", DEFAULT_COUNTRY))
            centroid = postal_code_centroid(postal_code, country)
            if centroid is not None:
                attrs = {**attrs, "latitude": centroid.latitude, "longitude": centroid.longitude}
                attrs.setdefault("timezone", centroid.timezone)
        return attrs


class TagsField(serializers.ListField):
    """Tag names: stripped, blanks and repeats dropped, each at most 100 characters (the importer's rule)."""

    def __init__(self, **kwargs):
        super().__init__(child=TextField(allow_blank=True, trim_whitespace=False), **kwargs)

    def to_internal_value(self, data):
        try:
            return list(normalize_tags(super().to_internal_value(data)))
        except FieldRuleError as error:
            raise rule_error(error) from error


class DeviceInput(serializers.Serializer):
    """A device added as the bulk import adds one (`POST /v1/devices`): a Registered System at a site (its
    contact is the site's), enrolled in the program of `programSlug`."""

    siteId = serializers.IntegerField(source="site", min_value=1)
    manufacturerSlug = RuleField("manufacturerSlug", source="manufacturer", help_text="Slug or alias, any case.")
    systemIdentifier = RuleField("systemIdentifier", check_system_identifier, source="system_identifier")
    deviceType = RuleField("deviceType", source="device_type", required=False, help_text="Default: the OEM's first.")
    programSlug = RuleField(
        "programSlug",
        source="program",
        error_messages={"required": PROGRAM_REQUIRED, "blank": PROGRAM_REQUIRED, "null": PROGRAM_REQUIRED},
        help_text="The workspace's program it is enrolled in (any case).",
    )
    name = TextField(required=False, allow_blank=True, max_length=200)
    tags = TagsField(required=False)

    def validate_siteId(self, value):  # noqa: N802
        site = Site.objects.filter(workspace_id=in_workspace(self), pk=value).first()
        if site is None:
            raise NotFound(f"No site {value} in this workspace (siteId).")
        return site

    def validate(self, attrs):
        lookups = Lookups(
            manufacturers=Manufacturer.objects.all(),
            programs=Program.objects.filter(workspace_id=in_workspace(self)),
        )
        errors = {}
        try:
            attrs["manufacturer"] = resolve_manufacturer(attrs["manufacturer"], lookups)
        except FieldRuleError as error:
            errors["manufacturerSlug"] = [error.message]
        try:
            attrs["program"] = resolve_program(attrs["program"], lookups)
        except FieldRuleError as error:
            errors["programSlug"] = [error.message]
        if "manufacturerSlug" not in errors:
            try:
                attrs["device_type"] = normalize_device_type(attrs.get("device_type", ""), attrs["manufacturer"])
            except FieldRuleError as error:
                errors["deviceType"] = [error.message]
            holder = (
                Device.objects.filter(
                    workspace_id=in_workspace(self),
                    manufacturer=attrs["manufacturer"],
                    system_identifier=attrs["system_identifier"],
                )
                .values_list("pk", flat=True)
                .first()
            )
            if holder is not None:
                errors["systemIdentifier"] = [
                    f"a {attrs['manufacturer'].slug} device with this systemIdentifier exists (id {holder})"
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class DeviceUpdateInput(serializers.Serializer):
    """`PATCH /v1/devices/{id}`: move it to another site (of any contact: its contact follows the site), rename
    it, change its type or replace its tags. Its manufacturer and serial do not change."""

    siteId = serializers.IntegerField(source="site", min_value=1, required=False)
    deviceType = RuleField("deviceType", source="device_type", required=False)
    name = TextField(required=False, allow_blank=True, max_length=200)
    tags = TagsField(required=False)

    validate_siteId = DeviceInput.validate_siteId  # noqa: N815

    def validate_deviceType(self, value):  # noqa: N802
        try:
            return normalize_device_type(value, self.instance.manufacturer)
        except FieldRuleError as error:
            raise rule_error(error) from error


class DeviceTagsInput(serializers.Serializer):
    """`PUT /v1/devices/{id}/tags`: the device's whole tag set (`[]` removes every tag)."""

    tags = TagsField()
