"""The house's floors: each package imports only the ones below it (function-level imports included), and Prefect
stays out of everything under tasks/. The order is README's folder table, ground floor first."""
from __future__ import annotations

import ast

import pytest

from tests.project_packages import PACKAGES, ROOT, package_files

FLOORS = ("common", "models", "optim", "hardware", "data", "training", "research", "experiment", "tasks", "flows",
          "prefect_ops", "cli")
# tasks/ and flows/ wrap the layers below in Prefect; nothing below may need it. (Hydra is allowed below: its
# override parser reads a proposed `key=value` in research/proposing/validation.py.)
ORCHESTRATION = ("prefect",)


def imported_modules(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_every_package_has_a_floor():
    assert sorted(FLOORS) == sorted(PACKAGES)


@pytest.mark.parametrize("package", FLOORS)
def test_a_package_imports_only_the_floors_below_it(package):
    below = set(FLOORS[:FLOORS.index(package)])
    upward = [f"{path.relative_to(ROOT)}: {module}"
              for path in sorted((ROOT / package).rglob("*.py")) for module in sorted(imported_modules(path))
              if module.split(".")[0] in FLOORS and module.split(".")[0] not in below | {package}]
    assert not upward, "\n".join(upward)


def test_nothing_under_tasks_imports_prefect():
    lower = FLOORS[:FLOORS.index("tasks")]
    found = [f"{path.relative_to(ROOT)}: {module}" for path in package_files(*FLOORS[FLOORS.index("tasks"):])
             for module in sorted(imported_modules(path)) if module.split(".")[0] in ORCHESTRATION]
    assert lower and not found, "\n".join(found)


def test_readme_lists_every_package_from_the_top_floor_down():
    """README's Layout table names each package once, in the order of the floors (top first)."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout"):readme.index("Module contracts are in")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    floors = [[FLOORS.index(name) for name in FLOORS if f"`{name}/`" in row.split("|")[1]] for row in rows]
    floors = [row for row in floors if row]
    assert sorted(floor for row in floors for floor in row) == list(range(len(FLOORS)))  # each package once
    assert [max(row) for row in floors] == sorted((max(row) for row in floors), reverse=True)
