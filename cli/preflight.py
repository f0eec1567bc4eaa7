"""The pre-flight check: everything the user typed, checked after composing and before anything trains or is
written under runs/.

Without it a mistake costs trainings: `hparams.model.depth=abc` or `budget.seconds=-5` ran the baseline into a
"crash" and blamed the user's value on it, and `proposer=claude` without a key trained both baselines first.
Each check asks the code that will use the value (the model's rules, the space's types, Budget.from_config, the
proposer's key lookup, the dataset source, the hardware tiers), so no rule is restated here (two small tables
aside: the Python types of the space's types, and which preset needs the bigger machine). A failure is a
ConfigurationError (or the asked code's own user error) with one sentence naming the value and the override
that fixes it; the CLI prints it and exits 2. No Prefect inside.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping

import yaml

from flows.compose import CONF_DIR, compose
from research.errors import ConfigurationError, InvalidProposal, ProposerFatal
from research.proposing.space import Param, check_bounds, coerce_value, format_value, get_value, load_space, shown

Warn = Callable[[str], None]


def warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- hparams


def _default_value(key: str) -> Any:
    """The default block's value of a space key: a known-good example for the sentence's fix."""
    default = yaml.safe_load((CONF_DIR / "hparams" / "default.yaml").read_text(encoding="utf-8"))
    return get_value(default, key)


# The Python types a value of each space type may have, as Hydra reads them from the command line (an int is a
# float's value too). What else a type demands (bounds, choices, pattern) is coerce_value's and check_bounds'.
SPACE_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str-pattern": (str,)}


def _has_space_type(param: Param, value: Any) -> bool:
    """Whether the value is of the key's type (exactly: True is no int), whatever its bounds or choices."""
    allowed = {type(choice) for choice in param.choices} if param.type == "choice" else SPACE_TYPES[param.type]
    return type(value) in allowed


def check_space_value(param: Param, value: Any) -> str | None:
    """None when the block's value lies in the space; a warning when it is of the key's type but outside the
    space (the user's own block may be; proposals may not); ConfigurationError when it is not of the key's type."""
    try:
        check_bounds(param, coerce_value(param, value))
        return None
    except InvalidProposal as exc:
        if _has_space_type(param, value):
            return f"hparams.{param.key}={shown(value)} lies outside the search space: {exc} It is trained as " \
                   "given; proposals stay inside the space."
        example = format_value(param, _default_value(param.key))
        raise ConfigurationError(f"hparams.{param.key}={shown(value)} is not of the key's type "
                                 f"({param.bounds_text()}); write e.g. hparams.{param.key}={example}.") from None


def check_hparams(cfg: Mapping[str, Any], warn: Warn) -> None:
    """The block against the space's types and the model's and trainer's rules; a value outside the space's
    bounds is warned about once, and only when the block can train at all (a refusal needs no warning on top)."""
    from models.hparams import BlockError, GPTConfig, check_block

    block = cfg["hparams"]
    space = load_space(CONF_DIR / "space.yaml")
    notes = []
    for key in space.keys:
        try:
            value = get_value(block, key)
        except KeyError:
            continue
        notes.append(check_space_value(space[key], value))
    seq_len = int(cfg["train"]["seq_len"])
    try:
        check_block(block, seq_len)  # every rule, not only the space's: the trainer reads the whole block
        GPTConfig.from_hparams(block["model"], cfg["dataset"].get("vocab_size", 1), seq_len)
    except BlockError as exc:
        reason = str(exc)
        raise ConfigurationError(f"The hyperparameter block cannot train: {reason[:1].lower()}{reason[1:]}") from None
    for note in filter(None, notes):
        warn(note)


# ----------------------------------------------------------------------------------------------- budget


def check_budget(cfg: Mapping[str, Any], warn: Warn) -> None:
    """Budget.from_config is the trainer's own reading of budget.*: a kind added there is checked here too."""
    from training.loop import Budget

    try:
        Budget.from_config(dict(cfg["budget"]))
    except (ValueError, TypeError) as exc:
        typed = [item for item in cfg.get("overrides", []) if item.lstrip("+~").startswith("budget.")]
        said = ", ".join(typed) if typed else f"budget.kind={cfg['budget'].get('kind')}"
        raise ConfigurationError(f"{said} gives no budget to train on: {exc}") from None


def check_keep_rule(cfg: Mapping[str, Any], warn: Warn) -> None:
    """decide.rule names a rule of research.judging.verdict.KEEP_RULES (else its sentence, before any training)."""
    from research.judging.verdict import keep_rule

    keep_rule(cfg["decide"])


# ----------------------------------------------------------------------------------------------- proposer


def check_proposer(cfg: Mapping[str, Any], warn: Warn) -> None:
    """The proposer's needs that can be known without calling it: Claude's key (the API itself is asked at the
    first proposal, whose failure the loop already reports in one sentence)."""
    name = (cfg.get("proposer") or {}).get("name")
    if name == "claude":
        from research.proposing.proposers.claude import require_api_key

        try:
            require_api_key()
        except ProposerFatal as exc:
            raise ConfigurationError(f"proposer=claude: {exc}") from None
    if name == "hybrid" and not os.environ.get("ANTHROPIC_API_KEY"):
        warn("proposer=hybrid without ANTHROPIC_API_KEY: TPE proposes alone (the ledger says so per row).")


# ----------------------------------------------------------------------------------------------- device


# Presets by the machine they need: a preset fits where it is the machine's own or a smaller one's. cpu and apple
# are both small models for unified memory or cores; consumer needs a GPU; datacenter and gaudi ~64 GB of it.
PRESET_SIZE = {"cpu": 0, "apple": 0, "consumer": 1, "datacenter": 2, "gaudi": 2}


def check_device_and_preset(cfg: Mapping[str, Any], warn: Warn) -> None:
    """The backend exists here (detect says so in one sentence), and the preset is not sized for a bigger machine."""
    from hardware import detect, get_adapter
    from hardware.tiers import preset_for

    backend = detect(cfg.get("backend", "auto"))
    preset = cfg.get("preset")
    adapter = get_adapter(backend)
    memory = adapter.total_memory_bytes()
    if preset not in PRESET_SIZE or (memory is None and adapter.fixed_preset is None):
        return  # a preset of the user's own, or a GPU of unknown memory: nothing to compare with
    own = preset_for(backend, memory)
    if PRESET_SIZE[preset] > PRESET_SIZE[own]:
        where = f" with {memory / 2**30:.0f} GiB" if memory else ""
        raise ConfigurationError(f"preset={preset} is sized for a bigger machine than this {backend}{where}; "
                                 f"run with preset={own} (or leave preset out to get it).")


# ----------------------------------------------------------------------------------------------- dataset


def check_dataset(cfg: Mapping[str, Any], warn: Warn) -> None:
    """The dataset's source says what it needs now (a local folder with files, a resolvable host when a download
    is due): the same check_ready that prepare runs, moved before the run folder is made."""
    from common.paths import PROJECT_ROOT
    from data.sources import source_module
    from data.spec import load_dataset_spec

    spec = load_dataset_spec(cfg["dataset"]["name"], CONF_DIR)
    source_module(spec["source"]).check_ready(spec, PROJECT_ROOT)


# ----------------------------------------------------------------------------------------------- entry points


# Cheap and local first; the dataset's DNS lookup last.
CHECKS: dict[str, Callable[[Mapping[str, Any], Warn], None]] = {
    "hparams": check_hparams,
    "budget": check_budget,
    "keep rule": check_keep_rule,
    "proposer": check_proposer,
    "device": check_device_and_preset,
    "dataset": check_dataset,
}


def check_before_training(cfg: Mapping[str, Any], checks=tuple(CHECKS), warn: Warn = warn_on_stderr) -> None:
    """Run the named checks on a composed config; the first failure raises its one sentence."""
    for name in checks:
        CHECKS[name](cfg, warn)


def check_suite(overrides: list[str], warn: Warn = warn_on_stderr) -> None:
    """Each dataset's run of the suite, composed as the suite composes it: its own overrides, then the user's."""
    suite = compose(overrides, auto=False)["suite"]
    for dataset in suite["datasets"]:
        check_before_training(compose([*(suite.get("overrides") or []), *overrides, f"dataset={dataset}"]), warn=warn)
