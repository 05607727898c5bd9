"""Base classes of every `/v1/` view: the key's workspace is the only scope a view ever sees."""

from rest_framework import mixins, viewsets
from rest_framework.views import APIView

from texture_portal.choices import AuditSource


class WorkspaceApiMixin:
    """`get_queryset()` returns `workspace_queryset()` scoped to the key's workspace, so an object of another
    workspace is a 404 (never a 403 that would confirm it exists)."""

    audit_source = AuditSource.API
    transition_actions: tuple[str, ...] = ()

    @property
    def workspace_id(self) -> int:
        return self.request.auth.workspace_id

    @property
    def actor(self):
        return self.request.user

    def workspace_queryset(self):
        raise NotImplementedError

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no key
            return self.workspace_queryset().none()
        return self.workspace_queryset().filter(workspace_id=self.workspace_id)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        limits = getattr(request, "rate_limit", None)
        if limits:
            response["RateLimit-Limit"] = str(limits["limit"])
            response["RateLimit-Remaining"] = str(limits["remaining"])
            response["RateLimit-Reset"] = str(limits["reset"])
        return response


class WorkspaceReadOnlyViewSet(WorkspaceApiMixin, viewsets.ReadOnlyModelViewSet):
    lookup_value_regex = r"[0-9]+"


class WorkspaceModelViewSet(
    WorkspaceApiMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    lookup_value_regex = r"[0-9]+"


class WorkspaceApiView(WorkspaceApiMixin, APIView):
    pass
