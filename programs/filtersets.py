"""One FilterSet per programs model, used by the API."""

import django_filters

from programs.choices import EnrollmentStatus, ProgramPhase, ProgramType
from programs.models import Enrollment, EventStrategy, Program
from texture_portal.filters import IdFilter, UpdatedSinceFilterSet


class ProgramFilterSet(UpdatedSinceFilterSet):
    phase = django_filters.MultipleChoiceFilter(distinct=False, choices=ProgramPhase.choices)
    programType = django_filters.ChoiceFilter(field_name="program_type", choices=ProgramType.choices)

    class Meta:
        model = Program
        fields = ["phase", "programType", "updatedSince"]


class EventStrategyFilterSet(UpdatedSinceFilterSet):
    program = django_filters.CharFilter(field_name="program__slug", label="Program slug")

    class Meta:
        model = EventStrategy
        fields = ["program", "updatedSince"]


class EnrollmentFilterSet(UpdatedSinceFilterSet):
    status = django_filters.MultipleChoiceFilter(distinct=False, choices=EnrollmentStatus.choices)
    program = django_filters.CharFilter(field_name="program__slug", label="Program slug")
    deviceId = IdFilter(field_name="device_id")
    referenceId = django_filters.CharFilter(field_name="device__contact__reference_id", label="Account number")

    class Meta:
        model = Enrollment
        fields = ["status", "program", "deviceId", "referenceId", "updatedSince"]
