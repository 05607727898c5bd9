"""Adapters a thread keeps between commands (`adapter_reused`): reused while nothing they depend on changed."""

import threading

import pytest

from integrations import services
from integrations.adapters import adapter_reused
from integrations.models import WorkspaceIntegration
from tests.factories import WorkspaceFactory
from tests.integrations.conftest import sim  # noqa: F401 - fixture
from tests.integrations.test_services import make_integration

pytestmark = pytest.mark.django_db


def fresh(integration):
    return WorkspaceIntegration.objects.get(pk=integration.pk)  # as each command reads it


def test_the_same_adapter_serves_the_next_command_and_keeps_its_connection(sim):  # noqa: F811
    integration = make_integration(WorkspaceFactory(), "franklinwh")
    with adapter_reused(fresh(integration)) as first:
        first.test_connection()  # signs in
    sign_ins = sim.state.request_count
    with adapter_reused(fresh(integration)) as second:
        second.test_connection()
    assert second is first
    assert sim.state.request_count == sign_ins + 1  # no second sign-in: the kept adapter holds its token


def test_new_credentials_from_staff_get_a_new_adapter(sim):  # noqa: F811
    workspace = WorkspaceFactory()
    integration = make_integration(workspace, "tesla")
    with adapter_reused(fresh(integration)) as first:
        pass
    services.workspace_integration_save(
        workspace=workspace,
        channel="tesla",
        actor=None,
        enabled=True,
        credentials={**integration.credentials, "client_secret": "a-new-secret"},
    )
    with adapter_reused(fresh(integration)) as second:
        pass
    assert second is not first


def test_an_adapter_that_raised_is_closed_not_kept(sim):  # noqa: F811
    integration = make_integration(WorkspaceFactory(), "tesla")
    with pytest.raises(RuntimeError), adapter_reused(fresh(integration)) as broken:
        raise RuntimeError("boom")
    with adapter_reused(fresh(integration)) as next_one:
        pass
    assert next_one is not broken


def test_an_oem_error_keeps_the_adapter(sim):  # noqa: F811
    from integrations.adapters import DeviceOffline

    integration = make_integration(WorkspaceFactory(), "tesla")
    with pytest.raises(DeviceOffline), adapter_reused(fresh(integration)) as first:
        raise DeviceOffline("site 1 is offline (408)")
    with adapter_reused(fresh(integration)) as second:
        pass
    assert second is first


def test_each_thread_has_its_own(sim):  # noqa: F811
    integration = make_integration(WorkspaceFactory(), "tesla")
    with adapter_reused(fresh(integration)) as mine:
        pass
    theirs = []

    def other_thread():
        with adapter_reused(integration) as adapter:
            theirs.append(adapter)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert theirs and theirs[0] is not mine
