from rest_framework.routers import SimpleRouter

from integrations.api import views

router = SimpleRouter(trailing_slash=False)
router.register("connections", views.ConnectionViewSet, basename="connection")

urlpatterns = router.urls
