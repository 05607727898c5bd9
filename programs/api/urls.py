from rest_framework.routers import SimpleRouter

from programs.api import views

router = SimpleRouter(trailing_slash=False)
router.register("programs", views.ProgramViewSet, basename="program")
router.register("event-strategies", views.EventStrategyViewSet, basename="event-strategy")
router.register("enrollments", views.EnrollmentViewSet, basename="enrollment")

urlpatterns = router.urls
