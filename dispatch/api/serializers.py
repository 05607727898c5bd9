"""Dispatch API bodies: program (dispatch) events and device commands."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from dispatch.choices import CommandSlug, ExclusionReason, ParticipationStatus
from dispatch.models import BatchCommand, Command, DispatchAction, DispatchEvent, DispatchSchedule, Participation
from programs.choices import EventType
from texture_portal.api.serializers import TimestampedSerializer
from texture_portal.filters import MAX_ID


class CommandSerializer(TimestampedSerializer):
    id = serializers.IntegerField(read_only=True)
    deviceId = serializers.IntegerField(source="device_id")
    command = serializers.ChoiceField(source="slug", choices=CommandSlug.choices)
    input = serializers.DictField()
    status = serializers.CharField()
    statusReason = serializers.CharField(source="status_reason", allow_blank=True)
    attempts = serializers.IntegerField()
    manufacturerReference = serializers.CharField(source="oem_reference", allow_blank=True)
    idempotencyKey = serializers.CharField(source="idempotency_key")
    dispatchEventId = serializers.IntegerField(source="dispatch_event_id", allow_null=True)
    notBefore = serializers.DateTimeField(source="not_before")
    sentAt = serializers.DateTimeField(source="sent_at", allow_null=True)
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)

    class Meta:
        model = Command


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know (a typo in a command input must not be silently ignored)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


Percent = {"min_value": 0, "max_value": 100}


class BatterySetOperatingModeInput(StrictSerializer):
    operatingMode = serializers.ChoiceField(choices=["charge", "discharge", "idle", "reset"])
    minimumBatteryReserve = serializers.IntegerField(required=False, **Percent)
    maximumBatteryReserve = serializers.IntegerField(required=False, **Percent)
    enableGridInteraction = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        low, high = attrs.get("minimumBatteryReserve"), attrs.get("maximumBatteryReserve")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"minimumBatteryReserve": ["Must not exceed maximumBatteryReserve."]})
        return attrs


class BatterySetReserveInput(StrictSerializer):
    chargePercentage = serializers.IntegerField(**Percent)


class ChargingOperatingModeInput(StrictSerializer):
    operatingMode = serializers.ChoiceField(choices=["start-charging", "stop-charging"])


class VehicleSetChargeLimitInput(StrictSerializer):
    chargeLimit = serializers.IntegerField(**Percent, help_text='0–100; a numeric string such as "80" is accepted.')


COMMAND_INPUTS: dict[str, type[serializers.Serializer]] = {
    CommandSlug.BATTERY_SET_OPERATING_MODE: BatterySetOperatingModeInput,
    CommandSlug.BATTERY_SET_RESERVE: BatterySetReserveInput,
    CommandSlug.CHARGER_SET_OPERATING_MODE: ChargingOperatingModeInput,
    CommandSlug.VEHICLE_SET_OPERATING_MODE: ChargingOperatingModeInput,
    CommandSlug.VEHICLE_SET_CHARGE_LIMIT: VehicleSetChargeLimitInput,
}


class CommandCreateSerializer(serializers.Serializer):
    deviceId = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    input = serializers.DictField(
        help_text="The command's input; its fields depend on the command (see the operation description)."
    )


class DispatchActionSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    type = serializers.ChoiceField(source="action_type", choices=EventType.choices)
    startsAt = serializers.DateTimeField(source="starts_at")
    endsAt = serializers.DateTimeField(source="ends_at")

    class Meta:
        model = DispatchAction


class DispatchEventSerializer(TimestampedSerializer):
    id = serializers.IntegerField(read_only=True)
    programId = serializers.IntegerField(source="program_id")
    programSlug = serializers.CharField(source="program.slug")
    strategyVersion = serializers.IntegerField(source="strategy.version")
    name = serializers.CharField()
    status = serializers.CharField()
    statusReason = serializers.CharField(source="status_reason", allow_blank=True)
    isTest = serializers.BooleanField(source="is_test")
    trigger = serializers.CharField()
    startsAt = serializers.DateTimeField(source="starts_at")
    endsAt = serializers.DateTimeField(source="ends_at")
    targetTags = serializers.SerializerMethodField()
    actions = DispatchActionSerializer(many=True)

    class Meta:
        model = DispatchEvent

    def get_targetTags(self, event) -> list[str]:
        return sorted(tag.name for tag in event.target_tags.all())


class DispatchActionInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=EventType.choices)
    startsAt = serializers.DateTimeField()
    endsAt = serializers.DateTimeField()

    def validate(self, attrs):
        if attrs["endsAt"] <= attrs["startsAt"]:
            raise serializers.ValidationError({"endsAt": ["Must be after startsAt."]})
        return attrs


class DispatchEventCreateSerializer(serializers.Serializer):
    programSlug = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200)
    startsAt = serializers.DateTimeField()
    endsAt = serializers.DateTimeField()
    isTest = serializers.BooleanField(default=True)
    targetTags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    actions = DispatchActionInputSerializer(many=True, allow_empty=False)
    signalReference = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)

    def validate(self, attrs):
        if attrs["endsAt"] <= attrs["startsAt"]:
            raise serializers.ValidationError({"endsAt": ["Must be after startsAt."]})
        return attrs


class ParticipationSerializer(TimestampedSerializer):
    """One targeted device in one event: whether it takes part (if not, why), and the steps it reached."""

    id = serializers.IntegerField(read_only=True)
    dispatchEventId = serializers.IntegerField(source="event_id")
    deviceId = serializers.IntegerField(source="device_id")
    actionId = serializers.IntegerField(source="action_id", allow_null=True)
    status = serializers.ChoiceField(choices=ParticipationStatus.choices)
    reasonCode = serializers.ChoiceField(source="reason_code", choices=["", *ExclusionReason.values])
    reason = serializers.CharField(allow_blank=True)
    modeBefore = serializers.CharField(source="mode_before", allow_blank=True)
    reserveBefore = serializers.FloatField(source="reserve_before", allow_null=True)
    includedAt = serializers.DateTimeField(source="included_at", allow_null=True)
    commandedAt = serializers.DateTimeField(source="commanded_at", allow_null=True)
    confirmedAt = serializers.DateTimeField(source="confirmed_at", allow_null=True)
    restoredAt = serializers.DateTimeField(source="restored_at", allow_null=True)
    optedOutAt = serializers.DateTimeField(source="opted_out_at", allow_null=True)

    class Meta:
        model = Participation


class OptOutSerializer(serializers.Serializer):
    deviceId = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    reason = serializers.CharField(max_length=300, help_text="Why (shown on the participation and audited).")


class OccurrenceSerializer(serializers.Serializer):
    startsAt = serializers.DateTimeField(source="starts_at")
    endsAt = serializers.DateTimeField(source="ends_at")
    localDate = serializers.DateField(source="local_date")


class DispatchScheduleSerializer(TimestampedSerializer):
    """A program's recurring events: an RFC 5545 rule over local times in `timezone`."""

    id = serializers.IntegerField(read_only=True)
    programSlug = serializers.CharField(source="program.slug")
    name = serializers.CharField()
    type = serializers.ChoiceField(source="action_type", choices=EventType.choices)
    rrule = serializers.CharField(help_text="RFC 5545, e.g. FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYMONTH=6,7,8,9")
    timezone = serializers.CharField()
    startTime = serializers.TimeField(source="start_time", help_text="Local time in `timezone`.")
    durationMinutes = serializers.IntegerField(source="duration_minutes")
    validFrom = serializers.DateField(source="valid_from")
    validUntil = serializers.DateField(source="valid_until", allow_null=True)
    skipDates = serializers.ListField(source="skip_dates", child=serializers.DateField())
    leadHours = serializers.IntegerField(source="lead_hours")
    scheduleEvents = serializers.BooleanField(source="schedule_events")
    isTest = serializers.BooleanField(source="is_test")
    isActive = serializers.BooleanField(source="is_active")
    targetTags = serializers.SerializerMethodField()
    nextOccurrences = serializers.SerializerMethodField()

    class Meta:
        model = DispatchSchedule

    def get_targetTags(self, schedule) -> list[str]:
        return sorted(tag.name for tag in schedule.target_tags.all())

    @extend_schema_field(OccurrenceSerializer(many=True))
    def get_nextOccurrences(self, schedule) -> list[dict]:
        from dispatch.schedules import schedule_next_occurrences

        return OccurrenceSerializer(schedule_next_occurrences(schedule=schedule, count=5), many=True).data


class DispatchScheduleCreateSerializer(serializers.Serializer):
    programSlug = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200)
    type = serializers.ChoiceField(choices=EventType.choices)
    rrule = serializers.CharField(max_length=500)
    timezone = serializers.CharField(
        max_length=60, required=False, allow_null=True, default=None, help_text="IANA zone; the program's if omitted."
    )
    startTime = serializers.TimeField()
    durationMinutes = serializers.IntegerField(min_value=1, max_value=24 * 60)
    validFrom = serializers.DateField()
    validUntil = serializers.DateField(required=False, allow_null=True, default=None)
    skipDates = serializers.ListField(child=serializers.DateField(), required=False, default=list)
    leadHours = serializers.IntegerField(min_value=0, max_value=24 * 30, default=24)
    scheduleEvents = serializers.BooleanField(default=True)
    isTest = serializers.BooleanField(default=True)
    targetTags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)


class SkippedDeviceSerializer(serializers.Serializer):
    deviceId = serializers.IntegerField()
    reason = serializers.CharField()


class BatchCommandSerializer(TimestampedSerializer):
    """One command sent to every device with a tag: its aggregate status, and the devices it skipped."""

    id = serializers.IntegerField(read_only=True)
    command = serializers.ChoiceField(source="slug", choices=CommandSlug.choices)
    input = serializers.DictField()
    tag = serializers.CharField(source="tag.name", allow_null=True, default=None)
    status = serializers.SerializerMethodField()
    commands = serializers.SerializerMethodField()
    skipped = SkippedDeviceSerializer(many=True)

    class Meta:
        model = BatchCommand

    def _summary(self, batch) -> dict:
        from dispatch.selectors import batch_command_summary

        if getattr(batch, "_summary", None) is None:
            batch._summary = batch_command_summary(batch=batch)
        return batch._summary

    @extend_schema_field(serializers.ChoiceField(choices=["in_progress", "succeeded", "failed", "partly_failed"]))
    def get_status(self, batch) -> str:
        return self._summary(batch)["status"]

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_commands(self, batch) -> dict:
        summary = self._summary(batch)
        return {"total": summary["commands"], **summary["by_status"]}


class BatchCommandCreateSerializer(serializers.Serializer):
    tag = serializers.CharField(max_length=100, help_text="Every device with this tag (e.g. feeder:12).")
    command = serializers.ChoiceField(choices=CommandSlug.choices)
    input = serializers.DictField(help_text="The command's input (the fields of `POST /v1/commands/…`).")

    def validate(self, attrs):
        checker = COMMAND_INPUTS[attrs["command"]](data=attrs["input"])
        if not checker.is_valid():
            raise serializers.ValidationError({"input": checker.errors})
        attrs["input"] = dict(checker.validated_data)
        return attrs


class ReportEnergySerializer(serializers.Serializer):
    """One metric's energy over the covered intervals, in kWh (delivered: + for what the event achieved)."""

    actualKwh = serializers.FloatField(source="actual_kwh")
    baselineKwh = serializers.FloatField(source="baseline_kwh")
    deliveredKwh = serializers.FloatField(source="delivered_kwh")


class ReportTotalsSerializer(ReportEnergySerializer):
    devices = serializers.IntegerField(help_text="Devices measured against a baseline.")
    noBaseline = serializers.IntegerField(source="no_baseline", help_text="Included devices without a baseline.")
    coverage = serializers.FloatField(
        allow_null=True, help_text="Mean share of the event's intervals measured, over the devices measured."
    )


class ReportMetricsSerializer(serializers.Serializer):
    battery = ReportTotalsSerializer(help_text="The battery's energy out (+) or in (−).")
    netAtMeter = ReportTotalsSerializer(source="net_at_meter", help_text="The site's grid exchange (less import +).")


class ReportActionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(choices=EventType.choices)
    startsAt = serializers.DateTimeField()
    endsAt = serializers.DateTimeField()
    battery = ReportEnergySerializer()
    netAtMeter = ReportEnergySerializer(source="net_at_meter")


class ReportCountsSerializer(serializers.Serializer):
    targeted = serializers.IntegerField()
    included = serializers.IntegerField()
    excluded = serializers.IntegerField()
    excludedByReason = serializers.DictField(child=serializers.IntegerField(), source="excluded_by_reason")
    commanded = serializers.IntegerField()
    confirmed = serializers.IntegerField()
    notResponding = serializers.IntegerField(source="not_responding")
    failed = serializers.IntegerField()
    optedOut = serializers.IntegerField(source="opted_out")
    restored = serializers.IntegerField()


class EventReportSerializer(serializers.Serializer):
    """A dispatch event's report: who took part, and the energy delivered against each device's baseline."""

    dispatchEventId = serializers.IntegerField(source="event_id")
    compiledAt = serializers.DateTimeField(source="compiled_at")
    compileMs = serializers.IntegerField(source="compile_ms")
    timezone = serializers.CharField()
    baseline = serializers.DictField(source="method", help_text="The baseline method's parameters, as run.")
    baselineDescription = serializers.CharField(source="method_description")
    counts = ReportCountsSerializer()
    totals = ReportMetricsSerializer()
    actions = ReportActionSerializer(many=True)
    series = serializers.DictField(
        help_text="The charts' points: `intervals` (UTC starts), `battery` and `net_at_meter` "
        "({actual_kw, baseline_kw, devices} per interval), `participation` (commanded, confirmed, opted out, "
        "restored by each moment)."
    )


class EventReportDeviceSerializer(serializers.Serializer):
    """One targeted device's row of a report (energy in kWh; empty without a baseline or when not included)."""

    deviceId = serializers.IntegerField(source="device_id")
    systemIdentifier = serializers.CharField(source="device.system_identifier")
    manufacturerSlug = serializers.CharField(source="device.manufacturer.slug")
    status = serializers.ChoiceField(choices=ParticipationStatus.choices)
    reasonCode = serializers.ChoiceField(source="reason_code", choices=["", *ExclusionReason.values])
    commanded = serializers.BooleanField()
    confirmed = serializers.BooleanField()
    restored = serializers.BooleanField()
    optedOut = serializers.BooleanField(source="opted_out")
    batteryActualKwh = serializers.FloatField(source="battery_actual_kwh", allow_null=True)
    batteryBaselineKwh = serializers.FloatField(source="battery_baseline_kwh", allow_null=True)
    batteryDeliveredKwh = serializers.FloatField(source="battery_delivered_kwh", allow_null=True)
    batteryCoverage = serializers.FloatField(source="battery_coverage", allow_null=True)
    batteryBaselineDays = serializers.IntegerField(source="battery_days", allow_null=True)
    batteryAdjustment = serializers.FloatField(source="battery_factor", allow_null=True)
    batteryNoBaseline = serializers.CharField(source="battery_no_baseline", allow_blank=True)
    netActualKwh = serializers.FloatField(source="net_actual_kwh", allow_null=True)
    netBaselineKwh = serializers.FloatField(source="net_baseline_kwh", allow_null=True)
    netDeliveredKwh = serializers.FloatField(source="net_delivered_kwh", allow_null=True)
    netCoverage = serializers.FloatField(source="net_coverage", allow_null=True)
    netBaselineDays = serializers.IntegerField(source="net_days", allow_null=True)
    netAdjustment = serializers.FloatField(source="net_factor", allow_null=True)
    netNoBaseline = serializers.CharField(source="net_no_baseline", allow_blank=True)
