from rest_framework import serializers

from texture_portal.api.serializers import TimestampedSerializer
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.events.types import EVENT_TYPE_CHOICES


class DestinationSerializer(TimestampedSerializer):
    """The secret is never read back: it appears once, in the response that created (or rotated) it."""

    id = serializers.IntegerField(read_only=True)
    label = serializers.CharField(max_length=100)
    url = serializers.URLField(max_length=500)
    eventTypes = serializers.ListField(
        source="event_types",
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES),
        required=False,
        default=list,
        help_text="Empty: every event type.",
    )
    isActive = serializers.BooleanField(source="is_active", required=False, default=True)
    deactivatedAt = serializers.DateTimeField(source="deactivated_at", read_only=True, allow_null=True)
    deactivatedReason = serializers.CharField(source="deactivated_reason", read_only=True)
    consecutiveFailures = serializers.IntegerField(source="consecutive_failures", read_only=True)
    lastSuccessAt = serializers.DateTimeField(source="last_success_at", read_only=True, allow_null=True)
    lastFailureAt = serializers.DateTimeField(source="last_failure_at", read_only=True, allow_null=True)

    class Meta:
        model = Destination


class DestinationCreateSerializer(DestinationSerializer):
    secret = serializers.CharField(
        min_length=16,
        max_length=200,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Leave out to have one generated.",
    )


class DestinationWithSecretSerializer(DestinationSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown only in this response: store it now.")


class DeliveryAttemptSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    destinationId = serializers.IntegerField(source="destination_id")
    eventId = serializers.IntegerField(source="event_id")
    eventType = serializers.CharField(source="event.type")
    attempt = serializers.IntegerField()
    status = serializers.CharField()
    responseStatus = serializers.IntegerField(source="response_status", allow_null=True)
    error = serializers.CharField(allow_blank=True)
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created")

    class Meta:
        model = DeliveryAttempt


class PlatformEventSerializer(serializers.Serializer):
    """The envelope destinations receive, plus the row id."""

    id = serializers.IntegerField(read_only=True)
    type = serializers.ChoiceField(choices=EVENT_TYPE_CHOICES)
    version = serializers.IntegerField()
    key = serializers.CharField()
    timestamp = serializers.DateTimeField()
    data = serializers.DictField()

    class Meta:
        model = PlatformEvent
