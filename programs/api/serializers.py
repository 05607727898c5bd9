from rest_framework import serializers

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
