"""Where documents come from: one module per source kind, each with the same small interface.

    REQUIRED             the dataset yaml fields the kind cannot do without (data/spec.py checks them)
    PIPELINE, FOREACH    its DVC pipeline file, and whether one template there serves several datasets (stage@NAME)
    check_ready(spec, root)              a DataError sentence before DVC starts, where one can be said early
    iter_documents(spec, root, base_url) (text, split, invalid_utf8): split is "train", "val", or None for
                                         "decide by val_fraction"; invalid_utf8 counts the byte sequences that
                                         were replaced while decoding (tokenizers cannot take invalid UTF-8, and
                                         a bad byte must not kill a build)
    input_files(spec, root)              (name to record, local path) of every input file: the sha256 list of
                                         the corpus's meta.json and the manifest

A new kind is a module here, its name in KINDS, and its pipeline file (see docs/INTERFACES.md).
"""
from __future__ import annotations

from types import ModuleType

from common.registry import Registry

KINDS = Registry({
    "bundled": "data.sources.bundled",
    "huggingface": "data.sources.huggingface",
    "local": "data.sources.local",
})


def source_module(kind: str) -> ModuleType:
    """The module of a source kind (imported on first use: the local kind never imports the downloader)."""
    return KINDS.load(kind)
