from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from texture_portal.api.serializers import json_object
from texture_portal.api.views import WorkspaceModelViewSet, WorkspaceNestedListView, WorkspaceReadOnlyViewSet
from texture_portal.audit import audit_record
from texture_portal.choices import AuditAction
from texture_portal.events import services
from texture_portal.events.api.serializers import (
    DeliveryAttemptSerializer,
    DestinationCreateSerializer,
    DestinationSerializer,
    DestinationWithSecretSerializer,
    PlatformEventSerializer,
)
from texture_portal.events.filtersets import DeliveryAttemptFilterSet, DestinationFilterSet, PlatformEventFilterSet
from texture_portal.events.models import DeliveryAttempt, Destination, PlatformEvent
from texture_portal.models import Workspace


class DestinationViewSet(WorkspaceModelViewSet):
    """Webhook destinations of the workspace, their secret (once) and their delivery log."""

    scope_resource = "destinations"
    serializer_class = DestinationSerializer
    filterset_class = DestinationFilterSet
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def workspace_queryset(self):
        return Destination.objects.all()

    def _with_secret(self, destination, secret, code):
        data = DestinationWithSecretSerializer(destination).data
        data["secret"] = secret
        return Response(data, status=code)

    @extend_schema(request=DestinationCreateSerializer, responses={201: DestinationWithSecretSerializer})
    def create(self, request, *args, **kwargs):
        """A destination; the response carries the signing secret (generated when left out), once."""
        body = DestinationCreateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        destination = services.destination_create(
            workspace=Workspace.objects.get(pk=self.workspace_id),
            label=data["label"],
            url=data["url"],
            event_types=data["event_types"],
            secret=data.get("secret", ""),
            actor=self.actor,
            source=self.audit_source,
        )
        if not data["is_active"]:
            services.destination_update(
                destination=destination, data={"is_active": False}, actor=self.actor, source=self.audit_source
            )
        return self._with_secret(destination, destination.secret, status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        """Change label, URL, event types, or (re)activate it."""
        destination = self.get_object()
        body = DestinationSerializer(destination, data=json_object(request), partial=True)
        body.is_valid(raise_exception=True)
        services.destination_update(
            destination=destination, data=body.validated_data, actor=self.actor, source=self.audit_source
        )
        return Response(DestinationSerializer(destination).data)

    def perform_destroy(self, instance):
        audit_record(actor=self.actor, action=AuditAction.OBJECT_DELETED, target=instance, source=self.audit_source)
        instance.delete()

    @extend_schema(request=None, responses=DestinationWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new signing secret, shown once; the old one stops being used at once."""
        destination = self.get_object()
        secret = services.destination_rotate_secret(destination=destination, actor=self.actor, source=self.audit_source)
        return self._with_secret(destination, secret, status.HTTP_200_OK)


class DestinationAttemptsView(WorkspaceNestedListView):
    """Every delivery attempt to one destination, newest first."""

    scope_resource = "destinations"
    parent_queryset = Destination.objects.all()
    parent_field = "destination_id"
    serializer_class = DeliveryAttemptSerializer
    filterset_class = DeliveryAttemptFilterSet

    def workspace_queryset(self):
        return DeliveryAttempt.objects.select_related("event")


class PlatformEventViewSet(WorkspaceReadOnlyViewSet):
    """Every platform event of the workspace (the envelopes destinations are sent), newest first."""

    scope_resource = "events"
    serializer_class = PlatformEventSerializer
    filterset_class = PlatformEventFilterSet

    def workspace_queryset(self):
        return PlatformEvent.objects.all()
