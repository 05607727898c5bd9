from django.urls import path
from rest_framework.routers import SimpleRouter

from dispatch.api import views

router = SimpleRouter(trailing_slash=False)
router.register("dispatch-events", views.DispatchEventViewSet, basename="dispatch-event")
router.register("commands", views.CommandViewSet, basename="command")
router.register("dispatch-schedules", views.DispatchScheduleViewSet, basename="dispatch-schedule")
router.register("batch-commands", views.BatchCommandViewSet, basename="batch-command")

urlpatterns = [
    # the device's command log: under the fleet's /devices, served here so the fleet knows nothing of commands
    path("devices/<int:pk>/commands", views.DeviceCommandsView.as_view(), name="device-commands"),
    path(
        "dispatch-events/<int:pk>/participation",
        views.DispatchEventParticipationView.as_view(),
        name="dispatch-event-participation",
    ),
    path(
        "dispatch-events/<int:pk>/report/devices",
        views.DispatchEventReportDevicesView.as_view(),
        name="dispatch-event-report-devices",
    ),
    path("commands/<str:deviceType>/<str:action>", views.CommandCreateView.as_view(), name="command-send"),
    *router.urls,
]
