"""The project's one registry style: a name maps to where its object lives, "package.module:Attribute" (or
"package.module" for a module itself), imported the first time it is asked for.

Used by the backends (hardware.ADAPTERS), the model ports (training.entry.PORTS), the dataset source kinds
(data.sources.KINDS) and the proposers (research.proposing.proposers.PROPOSERS). Lazy on purpose: asking for the
CPU adapter never imports a GPU vendor's package, and `proposer=random` never imports the anthropic SDK. The
"module:attribute" form is the one Python entry points use, so a plugin outside the project could be named the
same way. A missing name is the caller's sentence to say (each knows what the user should type instead).
"""
from __future__ import annotations

from importlib import import_module
from typing import Any


class Registry(dict):
    """A dict of name -> target; `load(name)` imports the target. Tests add an entry with monkeypatch.setitem."""

    def load(self, name: str) -> Any:
        module, _, attribute = self[name].partition(":")
        loaded = import_module(module)
        return getattr(loaded, attribute) if attribute else loaded
