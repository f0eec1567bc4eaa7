"""docs/INTERFACES.md's recipes for a source kind and for a hyperparameter, followed once each with a throwaway one,
and the product seen using it (tests/test_recipes.py does the same for a proposer and a backend).

A source kind: a kind module (step 1) in a temporary folder on sys.path, its `KINDS` entry (step 2, monkeypatched)
and a dataset yaml of that kind (step 4) under a temporary root's conf/dataset/. Step 3, the DVC pipeline file,
is not followed: a pipeline under data/pipelines/ cannot be throwaway, and DVC only runs
`python -m data.stages corpus NAME`, so the tests call that command's `data.stages.main` in this process (with
`--root` at the temporary root) instead. Step 5 is this file.

A hyperparameter: every file of the recipe is edited in a copy of the source tree (the packages, conf/ and the
tests that guard the recipe), at anchors found in the files' text; a subprocess whose cwd and PYTHONPATH are the
copy then composes, validates a proposal, and runs both models' forward passes. An anchor that is gone fails the
test with a sentence: the file changed shape and the recipe needs rewriting.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from common.paths import PROJECT_ROOT

# ------------------------------------------------------------------------------------------------ a source kind

KIND, KIND_MODULE_NAME, DATASET = "lines", "recipe_lines_source", "recipe_lines"
KIND_MODULE = '''
"""A throwaway source kind: one text file, one document per line (data/sources/__init__.py's interface)."""
from pathlib import Path

from data.errors import DataError

REQUIRED = ("lines_file",)
PIPELINE, FOREACH = "data/pipelines/lines/dvc.yaml", False


def lines_path(spec, root="."):
    path = Path(spec["lines_file"])
    return path if path.is_absolute() else Path(root) / path


def check_ready(spec, root="."):
    if not lines_path(spec, root).is_file():
        raise DataError(f"The lines file {lines_path(spec, root)} does not exist; write one document per line there.")


def iter_documents(spec, root=".", base_url=None):
    for line in lines_path(spec, root).read_text(encoding="utf-8").splitlines():
        yield line, None, 0


def input_files(spec, root="."):
    return [(spec["lines_file"], lines_path(spec, root))]
'''
DOCUMENTS = ["In the beginning was the line.", "A second document, short.", "", "The third one.", "And a fourth."]


@pytest.fixture
def lines_kind(tmp_path, monkeypatch):
    """Steps 1, 2 and 4 of the recipe; returns the project-like root that holds conf/dataset/recipe_lines.yaml."""
    import data.sources

    code = tmp_path / "code"
    code.mkdir()
    (code / f"{KIND_MODULE_NAME}.py").write_text(textwrap.dedent(KIND_MODULE))  # step 1: the kind's module
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setitem(data.sources.KINDS, KIND, KIND_MODULE_NAME)  # step 2: its KINDS entry
    root = (tmp_path / "project").resolve()
    (root / "conf" / "dataset").mkdir(parents=True)
    write_dataset(root, {"name": DATASET, "source": KIND, "lines_file": "docs.txt", "vocab_size": 256,
                         "val_fraction": 0.25})  # step 4: a dataset of the kind
    yield root
    sys.modules.pop(KIND_MODULE_NAME, None)  # the next test imports its own copy of the module


def write_dataset(root: Path, spec: dict) -> None:
    (root / "conf" / "dataset" / f"{DATASET}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def test_a_new_source_kind_added_by_the_recipe_feeds_the_corpus_stage(lines_kind, capsys):
    from data import layout
    from data.corpus import iter_corpus_texts
    from data.spec import load_dataset_spec
    from data.stages import main

    docs = lines_kind / "docs.txt"
    docs.write_text("\n".join(DOCUMENTS) + "\n", encoding="utf-8")

    assert main(["corpus", DATASET, "--root", str(lines_kind)]) == 0, capsys.readouterr().err  # DVC's stage command

    corpus = layout.corpus_dir(DATASET, lines_kind)
    meta = json.loads((corpus / "meta.json").read_text())
    written = [text for split in ("train", "val") for batch in iter_corpus_texts(corpus, split) for text in batch]
    assert sorted(written) == sorted(text for text in DOCUMENTS if text)  # the kind's documents, blank one dropped
    assert meta["source"] == KIND and meta["documents"]["val"] >= 1 and sum(meta["documents"].values()) == 4
    assert meta["source_files"] == [{"file": "docs.txt", "sha256": hashlib.sha256(docs.read_bytes()).hexdigest(),
                                     "bytes": docs.stat().st_size}]  # from the kind's input_files
    # prepare's `dvc repro` target is the kind's pipeline file (PIPELINE; FOREACH False: no @NAME)
    spec = load_dataset_spec(DATASET, lines_kind / "conf")
    assert layout.dvc_target(spec) == "data/pipelines/lines/dvc.yaml:shards"


def test_a_dataset_of_the_new_kind_without_its_required_field_gets_the_data_error_sentence(lines_kind, capsys):
    from data.errors import DataError
    from data.spec import load_dataset_spec
    from data.stages import main

    write_dataset(lines_kind, {"name": DATASET, "source": KIND, "vocab_size": 256})  # no lines_file (REQUIRED)
    path = lines_kind / "conf" / "dataset" / f"{DATASET}.yaml"
    sentence = f"{path} lacks lines_file; add the missing field(s) to it."

    with pytest.raises(DataError) as raised:
        load_dataset_spec(DATASET, lines_kind / "conf")
    assert str(raised.value) == sentence
    assert main(["corpus", DATASET, "--root", str(lines_kind)]) == 2  # the stage says it as prepare passes it on
    assert capsys.readouterr().err.strip() == f"DataError: {sentence}"


def test_prepare_raises_the_new_kinds_check_ready_sentence_before_dvc(lines_kind, monkeypatch):
    from data import prepare
    from data.errors import DataError

    subprocess.run(["git", "init", "-q", str(lines_kind)], check=True)  # prepare asks for a git repository first
    # Were check_ready not asked, prepare would start DVC: this stand-in fails at once with another sentence.
    monkeypatch.setattr(prepare, "_dvc_command", lambda: [sys.executable, "-c", "raise SystemExit(3)"])

    with pytest.raises(DataError) as raised:  # docs.txt was never written
        prepare.prepare_dataset(DATASET, root=lines_kind, echo=lambda line: None)
    assert str(raised.value) == (f"The lines file {lines_kind / 'docs.txt'} does not exist; "
                                 "write one document per line there.")


# ------------------------------------------------------------------------------------------------ a hyperparameter

COPIED_TESTS = ("tests/test_model_gpt.py", "tests/test_space.py")  # the recipe's guards, run in the copy
SKIPPED = shutil.ignore_patterns(".*", "__pycache__", "*.pyc", "*.egg-info", "*.xz", "datasets", "runs", "mutants",
                                 "tests", "docs", "bench", "scripts")

# The recipe's edits for model.logit_scale (default 1.0: the logits times it, before the soft cap), in its order:
# (file, a regular expression that matches exactly once, what goes after the match). A match that ends a line is
# followed by new lines at that line's indent; one inside a line by the text itself.
LOGIT_SCALE_RECIPE = (
    ("conf/hparams/default.yaml", r"^ +logit_softcap:.*$",  # step 1: the default, in the model group
     "logit_scale: 1.0       # logits = logit_scale * lm_head(x), before the soft cap"),
    ("models/hparams.py", r"^ +logit_softcap: float = .*$",  # step 2: a GPTConfig field ...
     "logit_scale: float = 1.0     # multiplies the logits, before the soft cap"),
    ("models/hparams.py", r"^ +logit_softcap=float\(model\[\"logit_softcap\"\]\),$",  # ... filled by from_hparams
     'logit_scale=float(model["logit_scale"]),'),
    ("models/gpt.py", r"^ +logits = self\.lm_head\(.*$",  # ... and used by both models
     "logits = logits * self.config.logit_scale"),
    ("models/gpt_mlx.py", r"^ +logits = self\.lm_head\(.*$",
     "logits = logits * self.config.logit_scale"),
    ("conf/space.yaml", r"^params:$",  # step 3: proposers may change it
     "  model.logit_scale:\n    type: float\n    min: 0.25\n    max: 4.0\n    log: true\n"
     "    description: multiplies the logits before the soft cap (an inverse temperature)"),
    ("conf/space.yaml", r"^  attention: \[",  # ... and the space's `kinds:` puts every key in one kind
     "model.logit_scale, "),
)

CHECK_IN_COPY = r'''
import json
from pathlib import Path

import torch

import common, flows, models, research
from common.paths import PROJECT_ROOT
from flows.compose import compose
from models.gpt import GPT
from models.hparams import GPTConfig
from research.proposing.space import load_space
from research.proposing.validation import validate

report = {"imported_from": sorted({str(Path(m.__file__).resolve().parents[1]) for m in (common, flows, models, research)})}
cfg = compose(["preset=cpu"])
report["default"] = cfg["hparams"]["model"].get("logit_scale")
change = validate({"key": "model.logit_scale", "value": 2.0, "description": "twice the logits",
                   "reasoning": "the recipe test"}, cfg["hparams"], load_space(PROJECT_ROOT / "conf" / "space.yaml"),
                  seq_len=int(cfg["train"]["seq_len"]))
report["override"] = change.override
changed = compose(["preset=cpu", change.override])  # what a trial of the proposal composes
report["composed"] = changed["hparams"]["model"]["logit_scale"]

idx = torch.randint(0, 61, (2, 32), generator=torch.Generator().manual_seed(0))


def forward(model_block):
    block = dict(model_block, depth=2, aspect_ratio=32, head_dim=16, logit_softcap=0.0)  # tiny; no cap: exact ratio
    config = GPTConfig.from_hparams(block, 61, 32)
    torch.manual_seed(0)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
        return config, model, model(idx)


_, base_model, base = forward(cfg["hparams"]["model"])
config, scaled_model, scaled = forward(changed["hparams"]["model"])
report["torch_differ"] = not torch.allclose(base, scaled)
report["torch_doubled"] = torch.allclose(scaled, 2 * base, rtol=1e-5, atol=1e-6)
try:
    import mlx.core as mx
    import numpy as np
except ImportError:
    report["mlx"] = None
else:
    from models.gpt_mlx import GPTMLX
    mlx_scaled = np.array(GPTMLX(config).load_torch_state_dict(scaled_model.state_dict())(mx.array(idx.numpy().astype(np.int32))))
    report["mlx"] = bool(np.allclose(mlx_scaled, scaled.numpy(), rtol=1e-4, atol=1e-4))
print("REPORT " + json.dumps(report))
'''


def _insert_after(path: Path, anchor: str, addition: str) -> None:
    text = path.read_text(encoding="utf-8")
    found = list(re.finditer(anchor, text, flags=re.MULTILINE))
    if len(found) != 1:
        pytest.fail(f"The hyperparameter recipe's anchor /{anchor}/ occurs {len(found)} times in {path.name}, not once: "
                    "the file changed shape, so docs/INTERFACES.md's recipe and this test's edit need updating.")
    end = found[0].end()
    if text[end:end + 1] == "\n":  # a whole line: new lines after it, at its indent
        indent = re.match(r"[ \t]*", found[0].group(0)).group(0)
        addition = "".join(f"\n{indent}{line}" for line in addition.splitlines())
    path.write_text(text[:end] + addition + text[end:], encoding="utf-8")


def _copy_with_recipe(dest: Path, leave_out: str | None = None) -> Path:
    """The packages, conf/ and pyproject.toml of this tree, plus COPIED_TESTS, with the recipe's edits (but those of
    the file `leave_out`)."""
    shutil.copytree(PROJECT_ROOT, dest, ignore=SKIPPED)
    (dest / "tests").mkdir()
    for name in COPIED_TESTS:
        shutil.copy2(PROJECT_ROOT / name, dest / name)
    for name, anchor, lines in LOGIT_SCALE_RECIPE:
        if name != leave_out:
            _insert_after(dest / name, anchor, lines)
    return dest


def _in_copy(copy: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_new_hyperparameter_added_by_the_recipe_is_composed_validated_and_changes_both_models_logits(tmp_path):
    copy = _copy_with_recipe(tmp_path / "tree")

    done = _in_copy(copy, "-c", CHECK_IN_COPY)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("REPORT "))[7:])
    assert report["imported_from"] == [str(copy.resolve())]  # the copy's code, not this checkout's
    assert report["default"] == 1.0  # composing has the key
    assert report["override"] == "hparams.model.logit_scale=2.0"  # validate accepts the proposal against the space
    assert report["composed"] == 2.0
    assert report["torch_differ"] and report["torch_doubled"]  # models/gpt.py multiplies the logits by it
    if report["mlx"] is not None:
        assert report["mlx"], "with logit_scale 2.0, models/gpt_mlx.py's logits are not the torch model's"

    guards = _in_copy(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                      "tests/test_model_gpt.py::test_every_model_key_of_the_block_is_used",
                      "tests/test_space.py::test_space_covers_the_block_but_not_seed")
    assert guards.returncode == 0, guards.stdout[-3000:]  # the recipe followed in full passes its guards


@pytest.mark.slow
def test_the_recipe_without_its_models_hparams_edit_fails_the_every_model_key_guard(tmp_path):
    """tests/test_model_gpt.py::test_every_model_key_of_the_block_is_used asks whether from_hparams reads every model
    key of the default block: a key added to default.yaml (and the space) but not to models/hparams.py fails it.
    It does not see a field that from_hparams fills but models/gpt.py never reads (that copy passes it); the forward
    pass of the test above is what fails then."""
    copy = _copy_with_recipe(tmp_path / "tree", leave_out="models/hparams.py")

    guard = _in_copy(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                     "tests/test_model_gpt.py::test_every_model_key_of_the_block_is_used")
    assert guard.returncode == 1, guard.stdout[-3000:]
    assert "1 failed" in guard.stdout and "logit_scale" in guard.stdout
