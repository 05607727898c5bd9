import uuid

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from dispatch import engine, services
from dispatch.api.serializers import (
    COMMAND_INPUTS,
    BatchCommandCreateSerializer,
    BatchCommandSerializer,
    CommandCreateSerializer,
    CommandSerializer,
    DispatchEventCreateSerializer,
    DispatchEventSerializer,
    DispatchScheduleCreateSerializer,
    DispatchScheduleSerializer,
    EventReportDeviceSerializer,
    EventReportSerializer,
    OptOutSerializer,
    ParticipationSerializer,
)
from dispatch.filtersets import (
    CommandFilterSet,
    DispatchEventFilterSet,
    EventReportDeviceFilterSet,
    ParticipationFilterSet,
)
from dispatch.models import (
    BatchCommand,
    Command,
    DispatchAction,
    DispatchEvent,
    DispatchSchedule,
    EventReportDevice,
    Participation,
)
from dispatch.reports import event_report_recompile
from dispatch.schedules import dispatch_schedule_create
from dispatch.selectors import event_report_of
from fleet.models import Device
from programs.models import Program
from texture_portal.api.schema import ErrorSerializer
from texture_portal.api.serializers import RequiredReasonSerializer, json_object
from texture_portal.api.views import WorkspaceApiView, WorkspaceNestedListView, WorkspaceReadOnlyViewSet
from texture_portal.models import Workspace


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_key_reused"


COMMAND_DEVICE_TYPES = sorted({slug.split(":")[0] for slug in COMMAND_INPUTS})
COMMAND_ACTIONS = sorted({slug.split(":")[1] for slug in COMMAND_INPUTS})


class DispatchEventViewSet(mixins.CreateModelMixin, WorkspaceReadOnlyViewSet):
    """Program (dispatch) events: create a draft, schedule it, cancel it."""

    scope_resource = "dispatch"
    serializer_class = DispatchEventSerializer
    filterset_class = DispatchEventFilterSet
    transition_actions = ("schedule", "cancel", "opt_out", "report_compile")

    def workspace_queryset(self):
        return DispatchEvent.objects.select_related("program", "strategy").prefetch_related(
            "target_tags", Prefetch("actions", queryset=DispatchAction.objects.order_by("starts_at", "id"))
        )

    def _respond(self, event, code=status.HTTP_200_OK):
        return Response(self.get_serializer(self.get_queryset().get(pk=event.pk)).data, status=code)

    @extend_schema(request=DispatchEventCreateSerializer, responses={201: DispatchEventSerializer})
    def create(self, request, *args, **kwargs):
        """A draft event of a program with its actions (charge / discharge / idle windows)."""
        body = DispatchEventCreateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        program = get_object_or_404(Program.objects.filter(workspace_id=self.workspace_id), slug=data["programSlug"])
        event = services.dispatch_event_create(
            program=program,
            name=data["name"],
            starts_at=data["startsAt"],
            ends_at=data["endsAt"],
            is_test=data["isTest"],
            target_tags=data["targetTags"],
            signal_reference=data["signalReference"],
            actions=[
                {"action_type": a["type"], "starts_at": a["startsAt"], "ends_at": a["endsAt"]} for a in data["actions"]
            ],
            actor=self.actor,
            source=self.audit_source,
        )
        return self._respond(event, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=DispatchEventSerializer)
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        """draft → scheduled, when the event satisfies its strategy version and starts in the future."""
        event = services.dispatch_event_schedule(event=self.get_object(), actor=self.actor, source=self.audit_source)
        return self._respond(event)

    @extend_schema(request=RequiredReasonSerializer, responses=DispatchEventSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a draft, scheduled or running event (a reason is required)."""
        body = RequiredReasonSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        event = services.dispatch_event_cancel(
            event=self.get_object(), actor=self.actor, reason=body.validated_data["reason"], source=self.audit_source
        )
        return self._respond(event)

    @extend_schema(request=OptOutSerializer, responses=ParticipationSerializer)
    @action(detail=True, methods=["post"], url_path="opt-out")
    def opt_out(self, request, pk=None):
        """Take one device out of this scheduled or running event, with the reason: it is restored alone if it
        was commanded, and does not take part again in this event."""
        body = OptOutSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        device = get_object_or_404(
            Device.objects.filter(workspace_id=self.workspace_id), pk=body.validated_data["deviceId"]
        )
        participation = engine.participation_opt_out_device(
            event=self.get_object(),
            device=device,
            reason=body.validated_data["reason"],
            actor=self.actor,
            source=self.audit_source,
        )
        return Response(ParticipationSerializer(participation).data)

    @extend_schema(
        request=None,
        responses={200: EventReportSerializer},
        description="The event's report, stored when it completed (or last recompiled): 404 before that.",
    )
    @action(detail=True, methods=["get"])
    def report(self, request, pk=None):
        """Who took part and the energy delivered against each device's own baseline, per metric and action."""
        report = event_report_of(event=self.get_object())
        if report is None:
            raise exceptions.NotFound("No report yet: an event's report is compiled when it completes.")
        return Response(EventReportSerializer(report).data)

    @extend_schema(request=None, responses={200: EventReportSerializer})
    @report.mapping.post
    def report_compile(self, request, pk=None):
        """Compile the report again now (late telemetry or history counted); the event must have run."""
        report = event_report_recompile(event=self.get_object(), actor=self.actor)
        return Response(EventReportSerializer(report).data)


class DispatchEventReportDevicesView(WorkspaceNestedListView):
    """The report's device table: each targeted device's participation and, per metric, its energy, its
    baseline and the difference delivered (kWh), the share of intervals measured, or why it has no baseline."""

    scope_resource = "dispatch"
    parent_queryset = DispatchEvent.objects.all()
    parent_field = "report__event_id"
    serializer_class = EventReportDeviceSerializer
    filterset_class = EventReportDeviceFilterSet

    def workspace_queryset(self):
        return EventReportDevice.objects.select_related("device__manufacturer")


class DispatchEventParticipationView(WorkspaceNestedListView):
    """Every targeted device of one event: included or excluded (with the reason), commanded, confirmed by
    its telemetry, restored, opted out."""

    scope_resource = "dispatch"
    parent_queryset = DispatchEvent.objects.all()
    parent_field = "event_id"
    serializer_class = ParticipationSerializer
    filterset_class = ParticipationFilterSet

    def workspace_queryset(self):
        return Participation.objects.all()


class DispatchScheduleViewSet(mixins.CreateModelMixin, WorkspaceReadOnlyViewSet):
    """Recurring events of a program (RFC 5545 rules over local times); each with its next occurrences."""

    scope_resource = "dispatch"
    serializer_class = DispatchScheduleSerializer

    def workspace_queryset(self):
        return DispatchSchedule.objects.select_related("program").prefetch_related("target_tags")

    @extend_schema(request=DispatchScheduleCreateSerializer, responses={201: DispatchScheduleSerializer})
    def create(self, request, *args, **kwargs):
        """A schedule; refused (400, every problem listed) when its rule is not RFC 5545, never fires, fires
        more often than its events last or more than once a day, or breaks the program's strategy."""
        body = DispatchScheduleCreateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        program = get_object_or_404(Program.objects.filter(workspace_id=self.workspace_id), slug=data["programSlug"])
        schedule = dispatch_schedule_create(
            program=program,
            name=data["name"],
            action_type=data["type"],
            rrule=data["rrule"],
            timezone_name=data["timezone"],
            start_time=data["startTime"],
            duration_minutes=data["durationMinutes"],
            valid_from=data["validFrom"],
            valid_until=data["validUntil"],
            skip_dates=[d.isoformat() for d in data["skipDates"]],
            lead_hours=data["leadHours"],
            schedule_events=data["scheduleEvents"],
            is_test=data["isTest"],
            target_tags=data["targetTags"],
            actor=self.actor,
            source=self.audit_source,
        )
        return Response(
            self.get_serializer(self.get_queryset().get(pk=schedule.pk)).data, status=status.HTTP_201_CREATED
        )


class BatchCommandViewSet(mixins.CreateModelMixin, WorkspaceReadOnlyViewSet):
    """One command to every device with a tag: a command each (tracked in `/v1/commands?…`), the devices it
    skipped with why, and an aggregate status."""

    scope_resource = "commands"
    serializer_class = BatchCommandSerializer

    def workspace_queryset(self):
        return BatchCommand.objects.select_related("tag")

    @extend_schema(request=BatchCommandCreateSerializer, responses={202: BatchCommandSerializer})
    def create(self, request, *args, **kwargs):
        """Queue the command for every compatible device with the tag (others are listed as skipped)."""
        body = BatchCommandCreateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        batch = services.batch_command_create(
            workspace=Workspace.objects.get(pk=self.workspace_id),
            slug=data["command"],
            input=data["input"],
            tag_name=data["tag"],
            actor=self.actor,
            source=self.audit_source,
        )
        return Response(self.get_serializer(batch).data, status=status.HTTP_202_ACCEPTED)


class CommandViewSet(WorkspaceReadOnlyViewSet):
    """The command log of the workspace; `GET /v1/commands/{id}` tracks one command."""

    scope_resource = "commands"
    serializer_class = CommandSerializer
    filterset_class = CommandFilterSet

    def workspace_queryset(self):
        return Command.objects.all()


COMMAND_DOC = "\n".join(
    f"- `{slug}`: " + ", ".join(f"`{name}`" for name in serializer().fields)
    for slug, serializer in COMMAND_INPUTS.items()
)


class CommandCreateView(WorkspaceApiView):
    """`POST /v1/commands/{deviceType}/{action}` with `{deviceId, input}`: a pending command, sent to the
    device's OEM asynchronously. Track it with `GET /v1/commands/{id}` or the `command.*` webhooks."""

    scope_resource = "commands"

    @extend_schema(
        operation_id="commands_send",
        description="Queue a command for a device. Commands and their `input` fields:\n\n" + COMMAND_DOC,
        parameters=[
            OpenApiParameter("deviceType", OpenApiTypes.STR, OpenApiParameter.PATH, enum=COMMAND_DEVICE_TYPES),
            OpenApiParameter("action", OpenApiTypes.STR, OpenApiParameter.PATH, enum=COMMAND_ACTIONS),
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=False,
                description="Repeat a request with the same key to get the same command back, never a second one.",
            ),
        ],
        request=CommandCreateSerializer,
        responses={
            202: CommandSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The Idempotency-Key was used for another request."),
        },
    )
    def post(self, request, deviceType: str, action: str):
        slug = f"{deviceType}:{action}"
        input_serializer = COMMAND_INPUTS.get(slug)
        if input_serializer is None:
            raise exceptions.NotFound(f"There is no command “{slug}”.")
        body = CommandCreateSerializer(data=json_object(request))
        body.is_valid(raise_exception=True)
        device = get_object_or_404(
            Device.objects.filter(workspace_id=self.workspace_id).select_related("manufacturer"),
            pk=body.validated_data["deviceId"],
        )
        if device.device_type != deviceType:
            raise exceptions.ValidationError(
                {"deviceId": [f"Device {device.pk} is a {device.device_type}; “{slug}” needs a {deviceType}."]}
            )
        if device.manufacturer.is_read_only:
            raise exceptions.ValidationError({"deviceId": [f"{device.manufacturer} devices are monitoring only."]})
        command_input = input_serializer(data=body.validated_data["input"])
        if not command_input.is_valid():
            raise exceptions.ValidationError({"input": command_input.errors})
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()
        if len(idempotency_key) > 150:  # cutting it would let two different keys collide
            raise exceptions.ValidationError({"Idempotency-Key": ["At most 150 characters."]})
        idempotency_key = idempotency_key or uuid.uuid4().hex
        command = services.command_create(
            device=device,
            slug=slug,
            input=dict(command_input.validated_data),
            idempotency_key=f"api:{idempotency_key}",
            actor=self.actor,
            source=self.audit_source,
        )
        if (command.device_id, command.slug, command.input) != (device.pk, slug, dict(command_input.validated_data)):
            # The key was used before for another request: answering with that command would drop this one.
            raise IdempotencyKeyReused(f"Idempotency-Key was already used for command {command.pk}, another request.")
        # Sent through the device's OEM adapter after commit (idempotent: a finished command is not resent).
        services.command_queue(command=command)
        return Response(CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)


class DeviceCommandsView(WorkspaceNestedListView):
    """Commands sent (or to be sent) to one device, newest first."""

    scope_resource = "commands"
    parent_queryset = Device.objects.all()
    parent_field = "device_id"
    serializer_class = CommandSerializer
    filterset_class = CommandFilterSet

    def workspace_queryset(self):
        return Command.objects.all()
