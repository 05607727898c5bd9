from rest_framework.permissions import BasePermission

from texture_portal.api_keys import ApiKey


class HasWorkspaceApiKey(BasePermission):
    """Only requests authenticated by a workspace API key (the key decides the workspace)."""

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey)
