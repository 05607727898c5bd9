"""Who may call a `/v1/` route: a workspace API key whose scopes grant what the route needs.

Each view declares its rule (the contract every API view follows):

- `scope_resource = "<resource>"` (one of `texture_portal.api_keys.API_SCOPE_RESOURCES`): safe methods (GET,
  HEAD, OPTIONS) need `<resource>:read`, every other method `<resource>:write`;
- `scope_actions = {"<action>": "<resource>:<read|write>"}` for an action that needs another scope (a
  viewset's action name, e.g. `"command": "commands:write"`; an APIView's lowercase method, e.g. `"post"`).

A view without a rule is refused to every key but a full-access one, and the URLconf test
(tests/texture_portal/test_api_scopes.py) fails for it.
"""

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from texture_portal.api_keys import FULL_ACCESS, ApiKey


def scope_required(view_class, method: str, action: str | None) -> str | None:
    """The scope a request needs: `method` (GET, POST…) to `view_class`, routed to `action` (a viewset's action
    name; None for a plain APIView). None when the view declares no rule."""
    overrides = getattr(view_class, "scope_actions", None) or {}
    for name in (action, method.lower()):
        if name and name in overrides:
            return overrides[name]
    resource = getattr(view_class, "scope_resource", None)
    if not resource:
        return None
    return f"{resource}:{'read' if method.upper() in SAFE_METHODS else 'write'}"


def scope_required_for(view, method: str) -> str | None:
    return scope_required(type(view), method, getattr(view, "action", None))


class InsufficientScope(exceptions.PermissionDenied):
    default_code = "insufficient_scope"


class HasWorkspaceApiKey(BasePermission):
    """Only requests authenticated by a workspace API key (the key decides the workspace), and only for what
    its scopes grant: 403 `insufficient_scope` naming the missing scope otherwise."""

    def has_permission(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False  # DRF answers 401 (no key) from here
        required = scope_required_for(view, request.method)
        if required is None:
            if api_key.scopes == [FULL_ACCESS]:
                return True
            raise InsufficientScope("This route declares no scope; only a full-access key may call it.")
        if not api_key.allows(required):
            raise InsufficientScope(
                f"This API key lacks the scope “{required}” (it has: {', '.join(api_key.scopes) or 'none'})."
            )
        return True
