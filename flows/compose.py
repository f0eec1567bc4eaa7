"""Compose the Hydra configuration once per command or flow, and hand plain dicts onwards.

Hydra's compose API is not thread-safe, so nothing else calls it. The preset and the proposer default to
what the machine supports: the detected hardware's preset, and Claude only when ANTHROPIC_API_KEY is set.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from common.paths import PROJECT_ROOT
from research.errors import ConfigurationError
from research.records.layout import RunLayout

CONF_DIR = PROJECT_ROOT / "conf"
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _has_override(overrides: list[str], key: str) -> bool:
    return any(item.split("=", 1)[0].lstrip("+~") == key for item in overrides)


def _override_value(overrides: list[str], key: str) -> str | None:
    """The value `key` ends up with: the last override of it wins, as in Hydra."""
    found = None
    for item in overrides:
        name, _, value = item.partition("=")
        if name.lstrip("+~") == key:
            found = value
    return found


def default_overrides(overrides: list[str]) -> list[str]:
    """Add `preset=` from the detected hardware and `proposer=` from the environment where not given."""
    extra: list[str] = []
    if not _has_override(overrides, "preset"):
        from hardware import detect, get_adapter
        from hardware.tiers import preset_for

        backend = detect(_override_value(overrides, "backend") or "auto")
        extra.append(f"preset={preset_for(backend, get_adapter(backend).total_memory_bytes())}")
    if not _has_override(overrides, "proposer"):
        extra.append("proposer=" + ("claude" if os.environ.get("ANTHROPIC_API_KEY") else "local"))
    return extra + list(overrides)


def compose(overrides: list[str] | None = None, *, auto: bool = True) -> dict[str, Any]:
    """The resolved configuration as a plain dict; raises ConfigurationError with one sentence."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides or [])
    for item in overrides:
        if "=" not in item:
            raise ConfigurationError(f"'{item}' is not an override; write key=value, e.g. dataset=bundled.")
    if auto:
        overrides = default_overrides(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=overrides)
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigurationError(f"The configuration could not be composed: {first_line}") from exc
    finally:
        GlobalHydra.instance().clear()
    resolved["preset"] = _override_value(overrides, "preset")
    _resolve_speed_adjustment(resolved)
    if resolved.get("tag") is None:
        resolved["tag"] = f"{resolved['dataset']['name']}-{resolved['preset'] or 'custom'}"
    if not TAG_PATTERN.fullmatch(str(resolved["tag"])):
        raise ConfigurationError(f"tag={resolved['tag']!r} is not a plain folder name; use letters, digits, '.', '_' and '-'.")
    resolved["overrides"] = overrides
    return resolved


def _resolve_speed_adjustment(cfg: dict) -> None:
    """decide.speed.adjust=auto: on for a time budget, the one whose steps the machine's speed decides."""
    speed = (cfg.get("decide") or {}).get("speed")
    if isinstance(speed, dict) and speed.get("adjust") == "auto":
        speed["adjust"] = (cfg.get("budget") or {}).get("kind") == "time"


def resolve_path(path: str) -> Path:
    """Config paths are relative to the project root unless absolute."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate


def run_layout(cfg: dict, tag: str | None = None) -> RunLayout:
    """The folder of run `tag` (the config's own tag by default) under paths.runs_dir."""
    return RunLayout.of(resolve_path(cfg["paths"]["runs_dir"]), tag or cfg["tag"])
