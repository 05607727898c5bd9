"""`/v1/`: each app's `api/urls.py` is included here; a new capability (e.g. imports) adds one line."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("fleet.api.urls")),
    path("", include("programs.api.urls")),
    path("", include("dispatch.api.urls")),
    path("", include("integrations.api.urls")),
]
