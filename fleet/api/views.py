from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.response import Response

from fleet import services
from fleet.api.listing import device_list_response, device_list_rows
from fleet.api.serializers import (
    AlertSerializer,
    AlertSnoozeSerializer,
    AlertStatusChangeSerializer,
    ContactSerializer,
    DeviceSerializer,
    SiteSerializer,
    TelemetrySerializer,
)
from fleet.filtersets import (
    AlertFilterSet,
    ContactFilterSet,
    DeviceFilterSet,
    SiteFilterSet,
    TelemetryReadingFilterSet,
)
from fleet.models import Alert, Contact, Device, Site, TelemetryReading
from texture_portal.api.pagination import TimeCursorPagination
from texture_portal.api.serializers import json_object
from texture_portal.api.views import WorkspaceNestedListView, WorkspaceReadOnlyViewSet


class ContactViewSet(WorkspaceReadOnlyViewSet):
    """Customers, keyed by `referenceId` (the utility account number)."""

    scope_resource = "contacts"
    serializer_class = ContactSerializer
    filterset_class = ContactFilterSet

    def workspace_queryset(self):
        return Contact.objects.all()


class SiteViewSet(WorkspaceReadOnlyViewSet):
    scope_resource = "sites"
    serializer_class = SiteSerializer
    filterset_class = SiteFilterSet

    def workspace_queryset(self):
        return Site.objects.all()


class DeviceViewSet(WorkspaceReadOnlyViewSet):
    """Devices with their latest telemetry; `/telemetry` is the history, `/commands` the command log."""

    # (`/commands` is served by dispatch's routes: the fleet knows nothing of commands)

    scope_resource = "devices"
    serializer_class = DeviceSerializer
    filterset_class = DeviceFilterSet

    def workspace_queryset(self):
        if self.action == "list":  # values() rows, built into the serializer's body by fleet/api/listing.py
            return device_list_rows()
        return Device.objects.select_related("manufacturer", "contact", "latest_telemetry").prefetch_related("tags")

    def list(self, request, *args, **kwargs):
        rows = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return device_list_response(self, rows)


class DeviceTelemetryView(WorkspaceNestedListView):
    """Telemetry history of one device, newest first (`since` / `until` bound the window)."""

    scope_resource = "devices"
    parent_queryset = Device.objects.all()
    parent_field = "device_id"
    serializer_class = TelemetrySerializer
    filterset_class = TelemetryReadingFilterSet
    pagination_class = TimeCursorPagination

    def workspace_queryset(self):
        return TelemetryReading.objects.all()


class AlertViewSet(WorkspaceReadOnlyViewSet):
    """Alerts raised by the portal's rules, newest first: change their status (Texture's `changeAlertStatus`)
    or snooze them."""

    scope_resource = "alerts"
    serializer_class = AlertSerializer
    filterset_class = AlertFilterSet
    transition_actions = ("status",)

    def workspace_queryset(self):
        # every field the body shows is a column of the alert (its device snapshot included): no join
        return Alert.objects.all()

    @extend_schema(request=AlertStatusChangeSerializer, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def status(self, request, pk=None):
        """Acknowledge, ignore, resolve or reopen (an ignored) alert; who and when are recorded. 409 when the
        alert's status does not allow it (a resolved alert is final)."""
        body = AlertStatusChangeSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        alert = services.alert_change_status(
            alert=self.get_object(),
            status=body.validated_data["status"],
            reason=body.validated_data["reason"],
            actor=self.actor,
            source=self.audit_source,
        )
        return Response(self.get_serializer(alert).data)

    @extend_schema(request=AlertSnoozeSerializer, responses=AlertSerializer)
    @action(detail=True, methods=["post"])
    def snooze(self, request, pk=None):
        """Snooze an open or acknowledged alert until a time (not listed as needing attention, not mailed until
        then), or end its snooze with `{"until": null}`."""
        body = AlertSnoozeSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        alert = services.alert_snooze(
            alert=self.get_object(), until=body.validated_data["until"], actor=self.actor, source=self.audit_source
        )
        return Response(self.get_serializer(alert).data)
