from django.shortcuts import get_object_or_404
from rest_framework.decorators import action

from dispatch.api.serializers import CommandSerializer
from dispatch.filtersets import CommandFilterSet
from dispatch.models import Command
from fleet.api.serializers import ContactSerializer, DeviceSerializer, SiteSerializer, TelemetrySerializer
from fleet.filtersets import ContactFilterSet, DeviceFilterSet, SiteFilterSet, TelemetryReadingFilterSet
from fleet.models import Contact, Device, Site, TelemetryReading
from texture_portal.api.pagination import TimeCursorPagination
from texture_portal.api.views import WorkspaceReadOnlyViewSet


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

    serializer_class = DeviceSerializer
    filterset_class = DeviceFilterSet

    def workspace_queryset(self):
        return Device.objects.select_related("manufacturer", "contact", "latest_telemetry").prefetch_related("tags")

    @action(
        detail=True,
        methods=["get"],
        serializer_class=TelemetrySerializer,
        filterset_class=TelemetryReadingFilterSet,
        pagination_class=TimeCursorPagination,
    )
    def telemetry(self, request, pk=None):
        """Telemetry history of one device, newest first (`since` / `until` bound the window)."""
        device = self._device(pk)
        readings = TelemetryReading.objects.filter(workspace_id=self.workspace_id, device_id=device.pk)
        return self._paginated(readings)

    @action(detail=True, methods=["get"], serializer_class=CommandSerializer, filterset_class=CommandFilterSet)
    def commands(self, request, pk=None):
        """Commands sent (or to be sent) to one device, newest first."""
        device = self._device(pk)
        return self._paginated(Command.objects.filter(workspace_id=self.workspace_id, device_id=device.pk))

    def _device(self, pk):
        """The device of the path (404 outside the key's workspace), without the list's joins."""
        return get_object_or_404(Device.objects.filter(workspace_id=self.workspace_id).only("pk"), pk=pk)

    def _paginated(self, queryset):
        queryset = self.filter_queryset(queryset)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
