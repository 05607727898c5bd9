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
    "409": "The object's state does not allow this transition.",
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


# -- OpenAPI links: where an answer's id leads (read by clients and by schemathesis' stateful run) -------------

_SUCCESS = ("200", "201", "202")


def _item_field(schema: dict, response: dict, *, listed: bool) -> str | None:
    """The property of a response that names one object ("id", or "slug" for programs), if it has one."""
    content = response.get("content", {}).get("application/json", {}).get("schema", {})
    component = _resolve(schema, content)
    if listed:
        data = component.get("properties", {}).get("data", {})
        component = _resolve(schema, data.get("items", {}))
    properties = component.get("properties", {})
    return next((name for name in ("id", "slug") if name in properties), None)


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else node


def add_operation_links(result, generator, request, public):
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]): a collection's list
    (`GET /v1/devices`, the first row) and create (`POST /v1/destinations`, the created object) link to every
    operation under its item path (`/v1/devices/{id}`, `/v1/devices/{id}/telemetry`, …) with the item's id.

    Derived from the paths, so a new resource gets its links without touching this hook."""
    paths = result.get("paths", {})
    for collection, operations in paths.items():
        item_paths = [
            path
            for path in paths
            if path.startswith(collection + "/{") and path[len(collection) + 2 :].split("}", 1)[0].isidentifier()
        ]
        if not item_paths:
            continue
        for method in ("get", "post"):
            operation = operations.get(method)
            if operation is None:
                continue
            for code in _SUCCESS:
                response = operation.get("responses", {}).get(code)
                if response is None:
                    continue
                field = _item_field(result, response, listed=method == "get")
                if field is None:
                    continue
                pointer = f"$response.body#/data/0/{field}" if method == "get" else f"$response.body#/{field}"
                links = {}
                for path in item_paths:
                    parameter = path[len(collection) + 2 :].split("}", 1)[0]
                    if "{" in path[len(collection) + 2 + len(parameter) + 1 :]:
                        continue  # a second path parameter the answer does not give
                    for target in paths[path].values():
                        if "operationId" in target:
                            links[target["operationId"]] = {
                                "operationId": target["operationId"],
                                "parameters": {parameter: pointer},
                            }
                if links:
                    response["links"] = links
    return result
