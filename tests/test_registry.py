"""common.registry: the one registry style. Every entry of the four registries names something that imports, and a
target is imported only when asked for."""
from __future__ import annotations

import sys

import pytest

import hardware
from common.registry import Registry
from data.sources import KINDS
from research.proposing.proposers import PROPOSERS
from training.entry import PORTS

REGISTRIES = {"backends": hardware.ADAPTERS, "ports": PORTS, "source kinds": KINDS, "proposers": PROPOSERS}


@pytest.mark.parametrize("registry", REGISTRIES.values(), ids=REGISTRIES.keys())
def test_every_entry_is_the_registry_style(registry):
    assert isinstance(registry, Registry)
    for name, target in registry.items():
        module, _, attribute = target.partition(":")
        assert module and (not attribute or attribute.isidentifier()), f"{name}: {target}"


@pytest.mark.parametrize("name,target", [(name, target) for registry in (PORTS, KINDS, PROPOSERS)
                                         for name, target in registry.items() if name != "mlx"])
def test_each_target_loads_what_it_names(name, target):
    registry = next(registry for registry in (PORTS, KINDS, PROPOSERS) if registry.get(name) == target)
    loaded = registry.load(name)
    assert loaded.__name__ == (target.partition(":")[2] or target)


def test_a_target_is_imported_only_when_asked_for(tmp_path, monkeypatch):
    (tmp_path / "registry_probe.py").write_text("class Thing:\n    made = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "registry_probe", raising=False)
    registry = Registry({"thing": "registry_probe:Thing", "module": "registry_probe"})
    assert "registry_probe" not in sys.modules
    assert registry.load("thing").made is True and "registry_probe" in sys.modules
    assert registry.load("module").Thing is registry.load("thing")
    with pytest.raises(KeyError):
        registry.load("missing")
