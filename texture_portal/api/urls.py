"""`/v1/`: each app's `api/urls.py` is included here; a new capability (e.g. imports) adds one line."""

from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from texture_portal.api.exceptions import error_body

urlpatterns = [
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    # both served from drf-spectacular-sidecar's static files (SPECTACULAR_SETTINGS): no CDN, no web fonts
    path("docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path(
        "redoc",
        SpectacularRedocView.as_view(url_name="api-schema", template_name="drf_spectacular/redoc_offline.html"),
        name="api-redoc",
    ),
    path("", include("fleet.api.urls")),
    path("", include("programs.api.urls")),
    path("", include("dispatch.api.urls")),
    path("", include("integrations.api.urls")),
    path("", include("texture_portal.events.api.urls")),
]


@csrf_exempt  # API-key requests carry no CSRF token; without this a POST to a bad path would be a 403 page
def api_not_found(request, *args, **kwargs):
    """Any other path under /v1/ (a malformed id, a typo) answers in the one error shape, not Django's HTML."""
    return JsonResponse(error_body(404, "not_found", f"No endpoint at {request.path}."), status=404)


# [\s\S] rather than `.`: a path holding an encoded newline (%0A) is caught too, not left to Django's HTML 404
urlpatterns.append(re_path(r"^[\s\S]*$", api_not_found))
