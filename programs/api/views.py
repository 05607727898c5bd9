from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from fleet.models import Device
from programs import selectors, services
from programs.api.serializers import (
    EnrollmentCreateSerializer,
    EnrollmentSerializer,
    EventStrategySerializer,
    LaunchChecklistSerializer,
    ProgramSerializer,
)
from programs.filtersets import EnrollmentFilterSet, EventStrategyFilterSet, ProgramFilterSet
from programs.models import Enrollment, EventStrategy, Program
from texture_portal.api.serializers import ReasonSerializer, RequiredReasonSerializer, json_object
from texture_portal.api.views import WorkspaceReadOnlyViewSet


class ProgramViewSet(WorkspaceReadOnlyViewSet):
    """Programs, addressed by slug."""

    scope_resource = "programs"
    serializer_class = ProgramSerializer
    filterset_class = ProgramFilterSet
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"

    def workspace_queryset(self):
        return Program.objects.all()

    @extend_schema(responses=LaunchChecklistSerializer)
    @action(detail=True, methods=["get"], url_path="launch-checklist", filter_backends=[], pagination_class=None)
    def launch_checklist(self, request, slug=None):
        """The program's launch checklist: every phase's exit criteria, each measured now (devices linked,
        share reporting, test event and its report, launch threshold) or signed off by staff (who, when)."""
        program = self.get_object()
        return Response(LaunchChecklistSerializer(selectors.program_launch_checklist(program=program)).data)


class EventStrategyViewSet(WorkspaceReadOnlyViewSet):
    """Every version of every program's event strategy (the highest version is the current one)."""

    scope_resource = "programs"
    serializer_class = EventStrategySerializer
    filterset_class = EventStrategyFilterSet

    def workspace_queryset(self):
        return EventStrategy.objects.select_related("program")


class EnrollmentViewSet(mixins.CreateModelMixin, WorkspaceReadOnlyViewSet):
    """Device ↔ program enrollments: submit, then approve / reject (manual programs) or unenroll."""

    scope_resource = "enrollments"
    serializer_class = EnrollmentSerializer
    filterset_class = EnrollmentFilterSet
    transition_actions = ("approve", "reject", "unenroll")

    def workspace_queryset(self):
        return Enrollment.objects.select_related("program")

    @extend_schema(request=EnrollmentCreateSerializer, responses={201: EnrollmentSerializer})
    def create(self, request, *args, **kwargs):
        """Enroll a device in a program (approved at once when the program approves automatically)."""
        body = EnrollmentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        device = get_object_or_404(
            Device.objects.filter(workspace_id=self.workspace_id), pk=body.validated_data["deviceId"]
        )
        program = get_object_or_404(
            Program.objects.filter(workspace_id=self.workspace_id), slug=body.validated_data["programSlug"]
        )
        enrollment = services.enrollment_submit(
            device=device, program=program, actor=self.actor, source=self.audit_source
        )
        return Response(
            self.get_serializer(self.get_queryset().get(pk=enrollment.pk)).data, status=status.HTTP_201_CREATED
        )

    def _decide(self, service, body_serializer):
        enrollment = self.get_object()
        body = body_serializer(data=json_object(self.request))
        body.is_valid(raise_exception=True)
        service(enrollment=enrollment, actor=self.actor, source=self.audit_source, reason=body.validated_data["reason"])
        return Response(self.get_serializer(self.get_queryset().get(pk=enrollment.pk)).data)

    @extend_schema(request=ReasonSerializer, responses=EnrollmentSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """submitted → approved."""
        return self._decide(services.enrollment_approve, ReasonSerializer)

    @extend_schema(request=RequiredReasonSerializer, responses=EnrollmentSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """submitted → rejected (a reason is required)."""
        return self._decide(services.enrollment_reject, RequiredReasonSerializer)

    @extend_schema(request=ReasonSerializer, responses=EnrollmentSerializer)
    @action(detail=True, methods=["post"])
    def unenroll(self, request, pk=None):
        """approved → unenrolled."""
        return self._decide(services.enrollment_unenroll, ReasonSerializer)
