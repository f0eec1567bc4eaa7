"""The project's root and the one-line file names of its folder layouts: the ground floor, imported everywhere."""
from __future__ import annotations

from pathlib import Path

# The checkout: conf/, dvc.yaml, datasets/ and the code. One definition, so the orchestrator's config, the child
# processes' working directory and the code version all take it from the same place.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class FolderEntry:
    """A class attribute that reads as `instance.root / name`: one line per file in a layout class
    (research.records.layout.RunLayout, training.run_config.ExperimentDir), paths only, no I/O."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, layout, owner=None):
        return self if layout is None else layout.root / self.name
