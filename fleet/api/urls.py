from django.urls import path
from rest_framework.routers import SimpleRouter

from fleet.api import views
from fleet.api.imports import ImportJobViewSet

router = SimpleRouter(trailing_slash=False)
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("sites", views.SiteViewSet, basename="site")
router.register("devices", views.DeviceViewSet, basename="device")
router.register("imports", ImportJobViewSet, basename="import")

urlpatterns = [
    path("devices/<int:pk>/telemetry", views.DeviceTelemetryView.as_view(), name="device-telemetry"),
    *router.urls,
]
