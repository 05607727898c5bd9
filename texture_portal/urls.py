from django.contrib import admin
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from texture_portal.demo.webhooks import webhook_receiver


def healthz(request):
    return JsonResponse({"status": "ok"})


# Admin pages whose models moved to another app (bookmarks and links in old messages keep working).
MOVED_ADMIN_PAGES = {
    "platformevent": "events",
    "destination": "events",
    "deliveryattempt": "events",
    "manufacturer": "fleet",
}


def moved_admin_page(request, model: str, rest: str):
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(
        f"/admin/{MOVED_ADMIN_PAGES[model]}/{model}/{rest}" + (f"?{query}" if query else "")
    )


admin.site.site_header = "Texture Portal"
admin.site.site_title = "Texture Portal"
admin.site.index_title = "Operations"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    re_path(rf"^admin/integrations/(?P<model>{'|'.join(MOVED_ADMIN_PAGES)})/(?P<rest>.*)$", moved_admin_page),
    path("admin/", admin.site.urls),
    path("v1/", include("texture_portal.api.urls")),
    # Texture Connect's hosted page, where customers connect their own OEM accounts (no login)
    path("connect/", include("integrations.connect.urls")),
    # the demo's webhook receiver: 404 unless DEMO_WEBHOOK_RECEIVER (on with DEBUG)
    path("demo/webhook-receiver/", webhook_receiver, name="demo-webhook-receiver"),
]
