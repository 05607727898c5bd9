from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from fleet.api import views, writes
from fleet.api.imports import ImportJobViewSet
from fleet.api.metrics import MetricsByNameView, MetricsQueryView

router = SimpleRouter(trailing_slash=False)
# the read viewsets of `views` with the writes of `writes`
router.register("contacts", writes.ContactViewSet, basename="contact")
router.register("sites", writes.SiteViewSet, basename="site")
router.register("devices", writes.DeviceViewSet, basename="device")
router.register("imports", ImportJobViewSet, basename="import")
router.register("alerts", views.AlertViewSet, basename="alert")

urlpatterns = [
    path("devices/<int:pk>/telemetry", views.DeviceTelemetryView.as_view(), name="device-telemetry"),
    path("devices/<int:pk>/tags", writes.DeviceTagsView.as_view(), name="device-tags"),
    path("tags", writes.TagListView.as_view(), name="tag-list"),
    # a tag name may hold any character but `/` (`feeder:12`, `region west`)
    re_path(r"^tags/(?P<tag>[^/]+)/devices$", writes.TagDevicesView.as_view(), name="tag-devices"),
    path("metrics", MetricsQueryView.as_view(), name="metrics"),
    path("metrics/<str:metric>", MetricsByNameView.as_view(), name="metrics-by-name"),
    *router.urls,
]
