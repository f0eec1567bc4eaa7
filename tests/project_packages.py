"""The project's packages, from the one list that installs them (pyproject's packages.find), for the tests that
walk the source tree: a package added there is walked here too."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = tuple(pattern.rstrip("*") for pattern in
                 tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"])


def package_files(*excluded: str) -> list[Path]:
    """Every .py file of the project's packages but `excluded`, in a stable order."""
    return [path for package in PACKAGES if package not in excluded for path in sorted((ROOT / package).rglob("*.py"))]
