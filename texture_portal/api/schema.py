"""OpenAPI: every operation documents the one error body for the statuses the API really answers."""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors by dotted field path.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


ERROR_DESCRIPTIONS = {
    "400": "Invalid request (validation error or a domain rule refused it).",
    "401": "Missing, unknown, revoked or expired API key.",
    "404": "No such object in the key's workspace (in the path or named in the body).",
    "409": "The object's state does not allow this (a transition, a delete), or the Idempotency-Key was used "
    "for another request.",
    "429": "Rate limit exceeded; see the Retry-After header.",
}


class PortalAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = ["401", "429", "400"]
        if "{" in self.path or self.method == "POST":  # creates look up the objects they name (deviceId…)
            codes.append("404")
        if getattr(self.view, "action", None) in getattr(self.view, "transition_actions", ()):
            codes.append("409")
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = ERROR_DESCRIPTIONS[code]
                responses[code] = response
        return responses
