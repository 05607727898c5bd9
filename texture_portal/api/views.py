"""Base classes of every `/v1/` view: the key's workspace is the only scope a view ever sees."""

from functools import partial

from django.shortcuts import get_object_or_404
from rest_framework import generics, mixins, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.views import APIView

from texture_portal.choices import AuditSource
from texture_portal.filters import MAX_ID


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

    def get_object(self):
        value = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field, "")
        if self.lookup_field == "pk" and (not str(value).isdigit() or int(value) > MAX_ID):
            raise NotFound()  # not an id the database could hold
        return super().get_object()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        limits = getattr(request, "rate_limit", None)
        if limits:
            response["RateLimit-Limit"] = str(limits["limit"])
            response["RateLimit-Remaining"] = str(limits["remaining"])
            response["RateLimit-Reset"] = str(limits["reset"])
        response._resource_closers.append(partial(release_request_cycles, self, response))
        return response


def release_request_cycles(view, response) -> None:
    """Run when the server closes the response: unlink DRF's request ↔ view ↔ response references.

    DRF links them in cycles (`renderer_context` holds the response itself, the view holds the request and its
    `parser_context` the view), so a request's objects (its page of rows, the bodies) outlive it until the
    garbage collector's next pass, and then a later one, which makes every tenth request or so pay for the
    ones before it. Unlinked after the response is sent, they are freed at once. `response.data` stays."""
    response.renderer_context = None
    request = view.__dict__.pop("request", None)
    if request is not None and getattr(request, "parser_context", None):
        request.parser_context = None
    view.__dict__.clear()


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


class WorkspaceNestedListView(WorkspaceApiMixin, generics.ListAPIView):
    """A paginated, filterable history under one parent object (`/devices/{id}/telemetry`): the parent must
    be in the key's workspace (404 otherwise), and the rows are that parent's."""

    parent_queryset = None  # the parent model's queryset; the URL passes its id as `pk`
    parent_field = ""  # the rows' foreign key to the parent, e.g. "device_id"

    def get_queryset(self):
        queryset = super().get_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset
        return queryset.filter(**{self.parent_field: self.kwargs["pk"]})

    def list(self, request, *args, **kwargs):
        if int(self.kwargs["pk"]) > MAX_ID:
            raise NotFound()
        get_object_or_404(self.parent_queryset.filter(workspace_id=self.workspace_id), pk=self.kwargs["pk"])
        return super().list(request, *args, **kwargs)
