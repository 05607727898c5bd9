from fleet.api.serializers import ContactSerializer, DeviceSerializer, SiteSerializer, TelemetrySerializer
from fleet.filtersets import ContactFilterSet, DeviceFilterSet, SiteFilterSet, TelemetryReadingFilterSet
from fleet.models import Contact, Device, Site, TelemetryReading
from texture_portal.api.pagination import TimeCursorPagination
from texture_portal.api.views import WorkspaceNestedListView, WorkspaceReadOnlyViewSet


class ContactViewSet(WorkspaceReadOnlyViewSet):
    """Customers, keyed by `referenceId` (the utility account number)."""

    serializer_class = ContactSerializer
    filterset_class = ContactFilterSet

    def workspace_queryset(self):
        return Contact.objects.all()


class SiteViewSet(WorkspaceReadOnlyViewSet):
    serializer_class = SiteSerializer
    filterset_class = SiteFilterSet

    def workspace_queryset(self):
        return Site.objects.all()


class DeviceViewSet(WorkspaceReadOnlyViewSet):
    """Devices with their latest telemetry; `/telemetry` is the history, `/commands` the command log."""

    # (`/commands` is served by dispatch's routes: the fleet knows nothing of commands)

    serializer_class = DeviceSerializer
    filterset_class = DeviceFilterSet

    def workspace_queryset(self):
        return Device.objects.select_related("manufacturer", "contact", "latest_telemetry").prefetch_related("tags")


class DeviceTelemetryView(WorkspaceNestedListView):
    """Telemetry history of one device, newest first (`since` / `until` bound the window)."""

    parent_queryset = Device.objects.all()
    parent_field = "device_id"
    serializer_class = TelemetrySerializer
    filterset_class = TelemetryReadingFilterSet
    pagination_class = TimeCursorPagination

    def workspace_queryset(self):
        return TelemetryReading.objects.all()
