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
    "409": "The object's state does not allow this (a transition, a delete), or the Idempotency-Key was used "
    "for another request.",
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


# -- OpenAPI links: where an answer's id leads (read by clients and by schemathesis' stateful run) -------------

_SUCCESS = ("200", "201", "202")


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else node


def _item_properties(schema: dict, response: dict, *, listed: bool) -> set[str]:
    """The properties of the object a response returns (of a list's rows when `listed`)."""
    component = _resolve(schema, response.get("content", {}).get("application/json", {}).get("schema", {}))
    if listed:
        component = _resolve(schema, component.get("properties", {}).get("data", {}).get("items", {}))
    return set(component.get("properties", {}))


def add_operation_links(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]): a collection's list
    (`GET /v1/devices`, the first row) and create (`POST /v1/destinations`, the created object) link to every
    operation under its item path (`/v1/devices/{id}`, `/v1/devices/{id}/telemetry`, …) whose one path parameter
    the returned object holds (`id`, or `slug` for programs).

    Derived from the paths, so a new resource gets its links without touching this hook."""
    paths = result.get("paths", {})
    for collection, operations in paths.items():
        # item paths: `<collection>/{parameter}` and below, with no second path parameter
        item_paths = {}
        for path in paths:
            rest = path[len(collection) + 1 :] if path.startswith(collection + "/{") else ""
            parameter, _, tail = rest[1:].partition("}")
            if parameter.isidentifier() and "{" not in tail:
                item_paths[path] = parameter
        for method in ("get", "post") if item_paths else ():
            operation = operations.get(method)
            for code in _SUCCESS if operation else ():
                response = operation.get("responses", {}).get(code)
                if response is None:
                    continue
                properties = _item_properties(result, response, listed=method == "get")
                prefix = "$response.body#/data/0/" if method == "get" else "$response.body#/"
                links = {
                    target["operationId"]: {
                        "operationId": target["operationId"],
                        "parameters": {parameter: prefix + parameter},
                    }
                    for path, parameter in item_paths.items()
                    if parameter in properties
                    for target in paths[path].values()
                    if "operationId" in target
                }
                if links:
                    response["links"] = links
    return result
