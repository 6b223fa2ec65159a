"""The codebase's shape: every module imports on its own, dependencies point one way,
no module grows past what one reader can hold."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import migrations
import receiver
import sender
from receiver.schemas.common import Status
from sender.ums.protocol import STATUSES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (receiver, sender, migrations)
MAX_LINES = 420
_SCRIPTS = ("migrations.env", "migrations.versions.")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            # Alembic loads env.py and the revisions as scripts, inside its own context.
            if not info.name.endswith("__main__") and not info.name.startswith(_SCRIPTS):
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports_in_a_fresh_interpreter(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_dependencies_point_one_way() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is part of the test dependencies"
    result = subprocess.run([lint_imports], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout


def test_no_module_is_longer_than_one_reader_can_hold() -> None:
    long = {}
    for package in PACKAGES:
        for path in Path(package.__path__[0]).rglob("*.py"):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                long[str(path.relative_to(ROOT))] = lines
    assert long == {}


def test_the_status_names_of_the_api_are_the_protocols() -> None:
    assert Status.__args__ == STATUSES  # type: ignore[attr-defined]
