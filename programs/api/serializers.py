from rest_framework import serializers

from programs.choices import CriterionKind, ProgramPhase
from programs.models import Enrollment, EventStrategy, Program
from texture_portal.api.serializers import TimestampedSerializer
from texture_portal.filters import MAX_ID


class ProgramSerializer(TimestampedSerializer):
    id = serializers.IntegerField(read_only=True)
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    programType = serializers.CharField(source="program_type")
    phase = serializers.CharField()
    enrollmentApproval = serializers.CharField(source="enrollment_approval")
    launchThreshold = serializers.IntegerField(source="launch_threshold")
    targetLaunchDate = serializers.DateField(source="target_launch_date", allow_null=True)
    reportingTargetPercent = serializers.IntegerField(
        source="reporting_target_percent",
        help_text="Device discovery's exit: the share of enrolled devices that must be reporting.",
    )
    productionDispatchEnabled = serializers.BooleanField(source="production_dispatch_enabled")
    timezone = serializers.CharField(
        help_text="IANA name (e.g. America/Los_Angeles): the zone staff enter and read event windows in. "
        "Times in the API stay UTC."
    )

    class Meta:
        model = Program


class StrategyBaselineSerializer(serializers.Serializer):
    """How the strategy's event reports baseline each device (X of Y days, the day-of adjustment)."""

    days = serializers.IntegerField(source="baseline_days")
    highest = serializers.IntegerField(source="baseline_highest", allow_null=True)
    lookbackDays = serializers.IntegerField(source="baseline_lookback_days")
    sameDayType = serializers.BooleanField(source="baseline_same_day_type")
    minDays = serializers.IntegerField(source="baseline_min_days")
    adjustment = serializers.CharField(source="baseline_adjustment")
    adjustmentWindowStartMinutes = serializers.IntegerField(source="baseline_window_start_minutes")
    adjustmentWindowEndMinutes = serializers.IntegerField(source="baseline_window_end_minutes")
    factorMin = serializers.FloatField(source="baseline_factor_min")
    factorMax = serializers.FloatField(source="baseline_factor_max")


class EventStrategySerializer(TimestampedSerializer):
    id = serializers.IntegerField(read_only=True)
    programId = serializers.IntegerField(source="program_id")
    programSlug = serializers.CharField(source="program.slug")
    version = serializers.IntegerField()
    allowedEventTypes = serializers.ListField(source="allowed_event_types", child=serializers.CharField())
    minSocPercent = serializers.IntegerField(source="min_soc_percent")
    maxSocPercent = serializers.IntegerField(source="max_soc_percent")
    rampMinutes = serializers.IntegerField(source="ramp_minutes")
    maxEventDurationMinutes = serializers.IntegerField(source="max_event_duration_minutes")
    enableGridInteraction = serializers.BooleanField(source="enable_grid_interaction")
    participationFloorPercent = serializers.IntegerField(
        source="participation_floor_percent",
        allow_null=True,
        help_text="An alert is raised when less than this share of an event's targeted devices takes part.",
    )
    baseline = StrategyBaselineSerializer(source="*", read_only=True)
    notes = serializers.CharField(allow_blank=True)

    class Meta:
        model = EventStrategy


class EnrollmentSerializer(TimestampedSerializer):
    id = serializers.IntegerField(read_only=True)
    deviceId = serializers.IntegerField(source="device_id")
    programId = serializers.IntegerField(source="program_id")
    programSlug = serializers.CharField(source="program.slug")
    status = serializers.CharField()
    submittedAt = serializers.DateTimeField(source="submitted_at")
    decidedAt = serializers.DateTimeField(source="decided_at", allow_null=True)
    reason = serializers.CharField(allow_blank=True)

    class Meta:
        model = Enrollment


class EnrollmentCreateSerializer(serializers.Serializer):
    deviceId = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    programSlug = serializers.SlugField(max_length=100)


class CriterionMeasurementSerializer(serializers.Serializer):
    """The numbers behind a measured criterion's figure (those that apply to it; the others are null)."""

    count = serializers.IntegerField(
        allow_null=True, help_text="Devices counted (linked, reporting, or dispatch-eligible)."
    )
    total = serializers.IntegerField(allow_null=True, help_text="Enrolled devices (submitted or approved).")
    targetPercent = serializers.IntegerField(allow_null=True, help_text="The program's reporting target share.")
    threshold = serializers.IntegerField(allow_null=True, help_text="The program's launch threshold.")
    dispatchEventId = serializers.IntegerField(allow_null=True, help_text="The test event that met it.")
    at = serializers.DateTimeField(allow_null=True, help_text="When that test event completed or its report compiled.")


class CriterionSignOffSerializer(serializers.Serializer):
    signedOffBy = serializers.CharField(source="signed_off_by_label", help_text="The staff member's name then.")
    signedOffAt = serializers.DateTimeField(source="signed_off_at")
    note = serializers.CharField(allow_blank=True)


class LaunchCriterionSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.ChoiceField(source="criterion.kind", choices=CriterionKind.choices)
    met = serializers.BooleanField()
    figure = serializers.CharField(help_text="Why it is met or not, in words.")
    measurement = CriterionMeasurementSerializer(allow_null=True, help_text="Measured criteria only.")
    signOff = CriterionSignOffSerializer(source="sign_off", allow_null=True, help_text="Signed-off criteria only.")

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not instance.criterion.is_measured:
            data["measurement"] = None
        return data


class LaunchPhaseSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(choices=ProgramPhase.choices)
    label = serializers.CharField()
    current = serializers.BooleanField(source="is_current")
    met = serializers.BooleanField(help_text="Every exit criterion of the phase holds.")
    criteria = LaunchCriterionSerializer(many=True)


class LaunchChecklistSerializer(serializers.Serializer):
    """Every phase of the implementation guide with its exit criteria, each measured now or signed off."""

    programId = serializers.IntegerField(source="program.pk")
    programSlug = serializers.CharField(source="program.slug")
    phase = serializers.ChoiceField(source="program.phase", choices=ProgramPhase.choices)
    productionDispatchEnabled = serializers.BooleanField(source="program.production_dispatch_enabled")
    metCount = serializers.IntegerField(source="met_count")
    criteriaCount = serializers.IntegerField(source="criteria_count")
    allMet = serializers.BooleanField(source="all_met")
    productionDispatchBlockers = serializers.ListField(
        source="production_dispatch_blockers",
        child=serializers.CharField(),
        help_text="What enabling production dispatch still needs (empty: it can be enabled).",
    )
    phases = LaunchPhaseSerializer(many=True)
