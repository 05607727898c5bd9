"""Shared serializer pieces. The API speaks camelCase (docs/domain.md names); fields map to snake_case models
with `source=`. List serializers read only what the selector already joined (no per-row queries)."""

from rest_framework import serializers


class TimestampedSerializer(serializers.Serializer):
    createdAt = serializers.DateTimeField(source="created", read_only=True)
    updatedAt = serializers.DateTimeField(source="last_updated", read_only=True)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class RequiredReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300)


def json_object(request) -> dict:
    """The request body as a JSON object (an empty body is `{}`); anything else is a 400."""
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"non_field": ["The body must be a JSON object."]})
    return request.data
