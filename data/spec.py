"""Dataset specifications: conf/dataset/NAME.yaml read as plain YAML.

The DVC stages run outside Hydra (and must not depend on it), so a dataset file holds no interpolation
and is read with yaml.safe_load. Hydra still composes the same files as the `dataset` config group.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from data.errors import DataError
from common.paths import PROJECT_ROOT
from data.sources import KINDS, source_module


def _conf_dir(conf_dir: str | Path) -> Path:
    folder = Path(conf_dir)
    # A relative conf_dir is tried from the current directory first (DVC runs stages from the root),
    # then from this checkout's root, so library callers need not chdir.
    if not folder.is_absolute() and not (folder / "dataset").is_dir():
        folder = PROJECT_ROOT / folder
    return folder / "dataset"


def available_datasets(conf_dir: str | Path = "conf") -> list[str]:
    return sorted(path.stem for path in _conf_dir(conf_dir).glob("*.yaml"))


def load_dataset_spec(name: str, conf_dir: str | Path = "conf") -> dict:
    """Return conf/dataset/NAME.yaml as a dict, checked for the fields its source needs."""
    choices = available_datasets(conf_dir)
    if name not in choices:
        raise DataError(f"Unknown dataset '{name}'; choose one of: {', '.join(choices)}.")
    path = _conf_dir(conf_dir) / f"{name}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    source = spec.get("source")
    if source not in KINDS:
        raise DataError(f"{path} has source '{source}'; set it to one of: {', '.join(KINDS)}.")
    # The fields the source kind cannot do without; everything else has a default in the code that reads it.
    missing = [key for key in ("name", "vocab_size", *source_module(source).REQUIRED) if spec.get(key) is None]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; add the missing field(s) to it.")
    if spec["name"] != name:
        raise DataError(f"{path} is named '{spec['name']}'; its name field must be '{name}'.")
    return spec
