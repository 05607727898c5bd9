"""The arrows between the apps run one way (CONTRIBUTING.md, "Where things live"). This walks every import of
the source tree, the ones inside functions included, and fails when a forbidden one comes back."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("fleet", "programs", "dispatch", "integrations")
# The demo seed and the test helpers compose every app; they are the core's only exceptions.
CORE_MAY_COMPOSE = ("texture_portal/demo/", "texture_portal/testing/")
EVENTS_SERVICE_NAMES = {"PlatformEvent", "PlatformEventType", "Destination", "DeliveryAttempt", "DeliveryStatus"}


def imports_of(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, imported name or None) of every import in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
            # `from integrations import events` imports the module integrations.events
            found += [(node.lineno, f"{node.module}.{alias.name}", None) for alias in node.names]
    return found


def sources(*tops: str):
    for top in tops:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


def is_module(module: str, *prefixes: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def violations() -> list[str]:
    found = []
    for rel, path in sources("fleet", "programs", "dispatch"):
        for line, module, name in imports_of(path):
            where = f"{rel}:{line} imports {module}{'.' + name if name else ''}"
            if is_module(module, "integrations.events", "integrations.webhooks", "integrations.destinations"):
                found.append(f"{where}: events and webhooks are the core's (texture_portal.events)")
            if is_module(module, "integrations.choices", "integrations.models") and name in EVENTS_SERVICE_NAMES:
                found.append(f"{where}: events and webhooks are the core's (texture_portal.events)")
            if rel.startswith(("fleet/", "programs/")) and is_module(module, "dispatch"):
                found.append(f"{where}: the fleet and programs know nothing of dispatch")
            if rel.startswith(("fleet/", "programs/")) and is_module(module, "integrations"):
                found.append(f"{where}: integrations builds on the fleet and programs, not the reverse")
    for rel, path in sources("texture_portal"):
        if rel.startswith(CORE_MAY_COMPOSE):
            continue
        for line, module, _name in imports_of(path):
            if is_module(module, *APPS):
                found.append(f"{rel}:{line} imports {module}: the core knows no app")
    return found


def test_the_arrows_between_apps_run_one_way():
    assert violations() == []


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("fleet/services.py", "from integrations import events\n", "integrations.events"),
        (
            "programs/services.py",
            "def f():\n    from integrations.choices import PlatformEventType\n",
            "PlatformEventType",
        ),
        ("fleet/api/views.py", "from dispatch.models import Command\n", "know nothing of dispatch"),
        ("programs/selectors.py", "from dispatch.choices import DispatchEventStatus\n", "know nothing of dispatch"),
        ("fleet/importing/planner.py", "from integrations.models import Manufacturer\n", "not the reverse"),
        ("texture_portal/events/services.py", "import fleet.models\n", "the core knows no app"),
    ],
)
def test_the_walk_catches_each_kind_of_forbidden_import(tmp_path, monkeypatch, rel, source, expected):
    """The check itself can fail: a copy of the tree with one forbidden import planted is caught."""
    for top in ("fleet", "programs", "dispatch", "texture_portal"):
        (tmp_path / top).mkdir()
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations()
    assert len(found) >= 1 and any(expected in line for line in found), found
