from django.urls import path
from rest_framework.routers import SimpleRouter

from fleet.api import views
from fleet.api.imports import ImportJobViewSet
from fleet.api.metrics import MetricsByNameView, MetricsQueryView

router = SimpleRouter(trailing_slash=False)
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("sites", views.SiteViewSet, basename="site")
router.register("devices", views.DeviceViewSet, basename="device")
router.register("imports", ImportJobViewSet, basename="import")
router.register("alerts", views.AlertViewSet, basename="alert")

urlpatterns = [
    path("devices/<int:pk>/telemetry", views.DeviceTelemetryView.as_view(), name="device-telemetry"),
    path("metrics", MetricsQueryView.as_view(), name="metrics"),
    path("metrics/<str:metric>", MetricsByNameView.as_view(), name="metrics-by-name"),
    *router.urls,
]
