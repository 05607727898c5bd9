"""`python manage.py import_fleet PATH [--workspace SLUG] [--dry-run]`."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fleet.models import Device
from tests.factories import WorkspaceFactory, make_program
from tests.fleet.test_importing import ROW_A1, ROW_B1, csv_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace():
    workspace = WorkspaceFactory(slug="coop-production")
    make_program(workspace, slug="vpp")
    return workspace


def run(*args) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("import_fleet", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_imports_with_a_summary_and_exit_0_then_reports_unchanged(workspace, tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_bytes(csv_bytes(ROW_A1, ROW_B1))
    code, out, _ = run(str(path))  # --workspace may be left out: there is one
    assert code == 0 and "2 new, 0 updated, 0 unchanged, 0 errors" in out
    assert Device.objects.count() == 2
    code, out, _ = run(str(path), "--workspace", "coop-production")
    assert code == 0 and "0 new, 0 updated, 2 unchanged, 0 errors" in out


def test_dry_run_writes_nothing(workspace, tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_bytes(csv_bytes(ROW_A1))
    code, out, _ = run(str(path), "--dry-run")
    assert code == 0 and "would import" in out and "1 new" in out
    assert not Device.objects.exists()


def test_errors_exit_1_and_are_printed_row_column_value_why(workspace, tmp_path):
    path = tmp_path / "fleet.csv"
    path.write_bytes(csv_bytes(ROW_A1, ROW_B1.replace("franklinwh", "frankln")))
    code, out, err = run(str(path))
    assert code == 1
    assert 'error: row 3, manufacturerSlug: "frankln" — unknown manufacturer; did you mean "franklinwh"?' in err
    assert "1 errors" in out
    assert not Device.objects.exists()


def test_workspace_must_be_named_when_several_exist(workspace, tmp_path):
    WorkspaceFactory(slug="coop-sandbox")
    path = tmp_path / "fleet.csv"
    path.write_bytes(csv_bytes(ROW_A1))
    with pytest.raises(CommandError, match="Several workspaces exist"):
        run(str(path))
    with pytest.raises(CommandError, match="No workspace “nope”"):
        run(str(path), "--workspace", "nope")
    with pytest.raises(CommandError, match="No such file"):
        run(str(tmp_path / "missing.csv"))
