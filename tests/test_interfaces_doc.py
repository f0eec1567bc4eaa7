"""docs/INTERFACES.md cannot drift from the code: every dotted name it writes in backticks resolves.

A name whose first part is one of the project's packages (`research.records.ledger.Ledger`, `hardware.detect`) must
import; a name that does not import must be a key of the composed default configuration (`paths.runs_dir`,
`research.pool.lost_after_seconds`). Every file path it names (`hardware/energy.py`) must exist. A renamed
function, a moved class or a dropped setting fails here with the name the document still uses.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "INTERFACES.md"
PACKAGES = ("data", "flows", "hardware", "models", "optim", "research", "tasks", "training")
SPAN = re.compile(r"`([^`]+)`")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?:[\w.-]+/)+[\w.<>-]+\.(?:py|yaml|sh|md)")


def _spans() -> list[str]:
    return SPAN.findall(DOC.read_text())


def _dotted_names() -> list[str]:
    names = set()
    for span in _spans():
        match = DOTTED.match(span.strip())
        if match and match.group(0).split(".")[0] in PACKAGES:
            names.add(match.group(0))
    return sorted(names)


def _paths() -> list[str]:
    return sorted({path for span in _spans() for path in PATH.findall(span) if "<" not in path})


def resolve_code(name: str) -> object | None:
    """The object `name` names (the longest importable module prefix, then attributes), or None."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return None
            target = getattr(target, attribute)
        return target
    return None


@pytest.fixture(scope="module")
def default_config() -> dict:
    from flows.compose import compose

    return compose([])


def config_has(cfg: dict, dotted: str) -> bool:
    node = cfg
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def test_the_document_names_enough_to_be_worth_checking():
    # The patterns above must still find the names: a change of the document's style that hid them all would
    # otherwise pass every check below vacuously.
    assert len(_dotted_names()) >= 60, _dotted_names()
    assert len(_paths()) >= 20, _paths()


@pytest.mark.parametrize("name", _dotted_names())
def test_every_dotted_name_is_code_or_a_setting(name, default_config):
    if resolve_code(name) is not None:
        return
    assert config_has(default_config, name), (
        f"docs/INTERFACES.md names `{name}`, which neither imports nor is a key of the default configuration")


@pytest.mark.parametrize("path", _paths())
def test_every_file_the_document_names_exists(path):
    assert (PROJECT_ROOT / path).exists(), f"docs/INTERFACES.md names {path}, which does not exist"


def test_a_name_that_moved_is_caught():
    # The check itself: names the issue found drifted (before this test) do not resolve, real ones do.
    assert resolve_code("models.gpt.GPTConfig.from_hparams") is not None  # re-exported by models.gpt
    assert resolve_code("models.set_attention_impl_that_never_was") is None
    assert resolve_code("research.pool.lost_after_seconds") is None
