from rest_framework.routers import SimpleRouter

from fleet.api import views

router = SimpleRouter(trailing_slash=False)
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("sites", views.SiteViewSet, basename="site")
router.register("devices", views.DeviceViewSet, basename="device")

urlpatterns = router.urls
