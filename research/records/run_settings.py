"""runs/<tag>/settings.json: the parts of a run's composed config that its readers need after the fact.

`autoresearch report` draws the keep line with the run's own `decide` block, and `autoresearch status` says
how many experiments were planned (research.max_experiments); both run later, without the run's overrides.
Written when a run starts (a resumed run with new overrides writes its new values). A run from before this
file existed reads conf/config.yaml's defaults for `decide`, and no plan.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from common.atomic import atomic_write_json
from common.paths import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "conf" / "config.yaml"


def save_run_settings(path: str | Path, cfg: dict) -> None:
    atomic_write_json(Path(path), {"decide": cfg["decide"],
                                   "max_experiments": int(cfg["research"]["max_experiments"])})


def _read(path: str | Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}  # missing or damaged: the readers fall back, a report must never fail on it
    return data if isinstance(data, dict) else {}


def decide_settings(path: str | Path) -> dict:
    return _read(path).get("decide") or yaml.safe_load(DEFAULT_CONFIG.read_text())["decide"]


def planned_experiments(path: str | Path) -> int | None:
    value = _read(path).get("max_experiments")
    return int(value) if isinstance(value, int) else None
