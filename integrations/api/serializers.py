"""`/v1/connections`: Texture Connect sessions in the API's camelCase (Texture's request fields)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fleet.choices import DeviceType
from integrations.choices import ConnectSessionStatus, IntegrationChannel
from texture_portal.api.serializers import TimestampedSerializer

LOCATION_REQUIRED = ("streetOne", "city", "state", "postalCode", "country")


class LocationSerializer(serializers.Serializer):
    streetOne = serializers.CharField(max_length=200, required=False, allow_blank=True)
    streetTwo = serializers.CharField(max_length=200, required=False, allow_blank=True)
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    state = serializers.CharField(max_length=50, required=False, allow_blank=True)
    postalCode = serializers.CharField(max_length=20, required=False, allow_blank=True)
    country = serializers.CharField(max_length=2, required=False, allow_blank=True)

    def validate(self, attrs):
        given = [name for name in LOCATION_REQUIRED if attrs.get(name)]
        if given and len(given) < len(LOCATION_REQUIRED):
            missing = [name for name in LOCATION_REQUIRED if not attrs.get(name)]
            raise serializers.ValidationError(f"location is all or nothing: missing {', '.join(missing)}.")
        return attrs


class CustomerInfoSerializer(serializers.Serializer):
    firstName = serializers.CharField(max_length=100, required=False, allow_blank=True)
    lastName = serializers.CharField(max_length=100, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    location = LocationSerializer(required=False)


class ManufacturerFiltersSerializer(serializers.Serializer):
    manufacturers = serializers.ListField(child=serializers.CharField(max_length=60), required=False, default=list)
    deviceTypes = serializers.ListField(
        child=serializers.ChoiceField(choices=DeviceType.choices), required=False, default=list
    )


class ConnectionCreateSerializer(serializers.Serializer):
    redirectUrl = serializers.URLField(max_length=2000)
    referenceId = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    clientName = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    customerId = serializers.IntegerField(required=False, min_value=1, help_text="Takes priority over customerInfo.")
    customerInfo = CustomerInfoSerializer(required=False)
    manufacturerFilters = ManufacturerFiltersSerializer(required=False)


class ConnectionSerializer(TimestampedSerializer):
    """A Connect session: its link (`url`) while it works, and how it went."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    url = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=ConnectSessionStatus.choices, read_only=True)
    redirectUrl = serializers.URLField(source="redirect_url", read_only=True)
    referenceId = serializers.CharField(source="reference_id", read_only=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    clientName = serializers.CharField(source="client_name", read_only=True)
    customerId = serializers.IntegerField(source="contact_id", read_only=True, allow_null=True)
    manufacturerFilters = ManufacturerFiltersSerializer(source="manufacturer_filters", read_only=True)
    manufacturer = serializers.ChoiceField(
        source="channel", choices=[("", ""), *IntegrationChannel.choices], read_only=True
    )
    connectionId = serializers.IntegerField(source="connection_id", read_only=True, allow_null=True)
    devicesLinked = serializers.IntegerField(source="devices_linked", read_only=True)
    outcome = serializers.CharField(read_only=True)
    expiresAt = serializers.DateTimeField(source="expires_at", read_only=True)
    completedAt = serializers.DateTimeField(source="completed_at", read_only=True, allow_null=True)

    @extend_schema_field(serializers.URLField())
    def get_url(self, session) -> str:
        from integrations.connect.services import connect_link_url

        request = self.context.get("request")
        return connect_link_url(session, base_url=request.build_absolute_uri("/") if request else None)
