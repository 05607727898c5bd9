from django.urls import path
from rest_framework.routers import SimpleRouter

from texture_portal.events.api import views

router = SimpleRouter(trailing_slash=False)
router.register("destinations", views.DestinationViewSet, basename="destination")
router.register("events", views.PlatformEventViewSet, basename="event")

urlpatterns = [
    path("destinations/<int:pk>/attempts", views.DestinationAttemptsView.as_view(), name="destination-attempts"),
    *router.urls,
]
