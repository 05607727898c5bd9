"""OpenAPI: every operation documents the one error body for the statuses the API really answers, and the
scope its key needs (`x-required-scope`, and a line of its description)."""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from texture_portal.api.permissions import scope_required_for


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
    "403": "The API key lacks the scope this operation needs (`insufficient_scope`, the scope named).",
    "404": "No such object in the key's workspace (in the path or named in the body).",
    "409": "The object's state does not allow this transition.",
    "429": "Rate limit exceeded; see the Retry-After header.",
}


class PortalAutoSchema(AutoSchema):
    # Why an extension and a description line rather than the security requirement's scope list: the schema
    # is OpenAPI 3.0, where that list must stay empty for apiKey and http (bearer) schemes (only OAuth2 and
    # OpenID Connect schemes carry scopes there).
    # (in get_operation, not get_description: `extend_schema(description=…)` replaces get_description)
    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        scope = scope_required_for(self.view, self.method)
        if operation is None or not scope:
            return operation
        resource, _sep, access = scope.partition(":")
        also = f"`{resource}:write`, `*:read` or `*`" if access == "read" else "`*`"
        line = f"**Scope:** `{scope}` (or {also})."
        description = operation.get("description")
        operation["description"] = f"{description}\n\n{line}" if description else line
        operation["x-required-scope"] = scope
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = ["401", "403", "429", "400"]
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
