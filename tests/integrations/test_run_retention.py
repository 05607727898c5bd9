"""Integration runs are kept INTEGRATION_RUN_RETENTION_DAYS, then deleted (`integration_runs_prune`)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.choices import RunKind, RunStatus
from integrations.models import IntegrationRun
from integrations.services import integration_runs_prune, workspace_integration_save
from integrations.tasks import integration_runs_prune_task
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


def make_run(integration, *, days_ago: float, status=RunStatus.SUCCEEDED):
    started = timezone.now() - timedelta(days=days_ago)
    return IntegrationRun.objects.create(
        workspace_id=integration.workspace_id,
        integration=integration,
        kind=RunKind.TELEMETRY,
        status=status,
        started_at=started,
        finished_at=None if status == RunStatus.RUNNING else started + timedelta(seconds=5),
    )


def test_old_finished_runs_are_deleted_recent_and_running_ones_kept(settings):
    settings.INTEGRATION_RUN_RETENTION_DAYS = 30
    integration = workspace_integration_save(workspace=WorkspaceFactory(), channel="tesla", actor=None, enabled=True)
    old = [
        make_run(integration, days_ago=31 + i, status=s)
        for i, s in enumerate([RunStatus.SUCCEEDED] * 3 + [RunStatus.FAILED])
    ]
    recent = make_run(integration, days_ago=29)
    stuck = make_run(integration, days_ago=40, status=RunStatus.RUNNING)

    assert integration_runs_prune(batch=2) == len(old)  # several batches
    assert set(IntegrationRun.objects.values_list("pk", flat=True)) == {recent.pk, stuck.pk}
    assert integration_runs_prune() == 0


def test_the_daily_task_prunes(settings):
    settings.INTEGRATION_RUN_RETENTION_DAYS = 7
    integration = workspace_integration_save(workspace=WorkspaceFactory(), channel="tesla", actor=None, enabled=True)
    make_run(integration, days_ago=8)
    assert integration_runs_prune_task() == 1
    assert not IntegrationRun.objects.exists()
