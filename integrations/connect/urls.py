"""/connect/: Texture Connect's hosted page (no login; the signed link is the key)."""

from django.urls import path

from integrations.connect import views

app_name = "connect"

urlpatterns = [
    path("done", views.done, name="done"),
    path("callback/<slug:channel>", views.callback, name="callback"),
    path("<str:token>/", views.start, name="start"),
    path("<str:token>/manufacturer", views.manufacturer, name="manufacturer"),
    path("<str:token>/credentials/<slug:channel>", views.credentials, name="credentials"),
]
