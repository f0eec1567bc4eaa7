"""The current block's headroom on the device, in the words Claude's prompt shows: predicted memory of the block,
the steps its budget buys, and which size keys would not fit in which direction.

The predictions are training.fit's (a FitCheck, received in the ProposalContext as `fit`); this module only
decides what to ask it. Every size key is probed one step up (doubling an integer, the next larger choice);
a step that does not fit is narrowed to the largest value that does with at most PROBES more predictions, so a
prompt costs a few dozen cached traces at most. Lowering a size key only shrinks the model or the batch, so only
upward directions are listed.
"""
from __future__ import annotations

from typing import Any, Mapping

from research.proposing.space import get_value

# Keys whose value sizes the model or the micro-batch, with what "larger" means for each.
INT_SIZE_KEYS = ("model.depth", "model.aspect_ratio", "model.mlp_ratio", "batch.device_batch_size")
# Choice keys and the value(s) that need more memory than the others.
LARGER_CHOICES = {"model.head_dim": "up", "model.kv_head_ratio": "down", "model.activation": ("swiglu",),
                  "model.value_residual": (True,)}
PROBES = 2


def _with(hparams: Mapping[str, Any], key: str, value: Any) -> dict:
    group, name = key.split(".", 1)
    return {**hparams, group: {**hparams[group], name: value}}


def _valid(space, hparams: Mapping[str, Any], key: str, value: Any, seq_len: int) -> bool:
    from models.hparams import BlockError, check_block

    param = space[key]
    if param.type == "int" and not (param.min <= value <= param.max):
        return False
    try:
        check_block(_with(hparams, key, value), seq_len)
    except BlockError:
        return False
    return True


def _largest_fitting(fit, space, hparams, key: str, low: int, high: int, seq_len: int) -> int | None:
    """The largest valid value in (low, high) that fits, by bisection with PROBES predictions; None if none."""
    best = None
    for _ in range(PROBES):
        if high - low <= 1:
            break
        middle = (low + high) // 2
        if _valid(space, hparams, key, middle, seq_len) and fit.fits(_with(hparams, key, middle)):
            best, low = middle, middle
        else:
            high = middle
    return best


def headroom_lines(fit, space, hparams: Mapping[str, Any]) -> list[str]:
    """The prompt's lines: the block's prediction, then one line per key and direction that would not fit."""
    seq_len = fit.seq_len
    prediction = fit.predict(hparams)
    free = prediction.memory_bytes - prediction.need_bytes
    lines = [f"this block: {prediction.sentence()}; headroom {free / 1e9:.3g} GB"
             + ("" if prediction.fits else " (it does not fit: trained with a lower device_batch_size if that fits)")]
    if prediction.steps is not None:
        lines.append(f"the budget buys {prediction.steps} optimizer steps of this block "
                     f"({prediction.flops_per_token / 1e6:.3g} MFLOP per token)")
    refusals = []
    for key in INT_SIZE_KEYS:
        if key not in space:
            continue
        current = int(get_value(hparams, key))
        up = min(current * 2, int(space[key].max))
        if up <= current or not _valid(space, hparams, key, up, seq_len):
            continue
        larger = fit.predict(_with(hparams, key, up))
        if larger.fits:
            continue
        best = _largest_fitting(fit, space, hparams, key, current, up, seq_len)
        tail = f" (fits up to {best})" if best is not None else ""
        note = " - it would be lowered back by gradient accumulation" if key == "batch.device_batch_size" else ""
        refusals.append(f"- {key} raised to {up} would not fit: {larger.sentence()}{tail}{note}")
    for key, direction in LARGER_CHOICES.items():
        if key not in space:
            continue
        current = get_value(hparams, key)
        choices = list(space[key].choices) if space[key].type == "choice" else [True, False]
        if direction == "up":  # the next larger choice only: the ones beyond it need more still
            candidates = [c for c in choices if c > current][:1]
        elif direction == "down":
            candidates = [c for c in choices if c < current][-1:]
        else:
            candidates = [c for c in direction if c != current]
        for value in candidates:
            if not _valid(space, hparams, key, value, seq_len):
                continue
            larger = fit.predict(_with(hparams, key, value))
            if not larger.fits:
                refusals.append(f"- {key}={value} would not fit: {larger.sentence()}")
    if refusals:
        lines.append("changes that would NOT fit (such a block is skipped without training; lowering a size key "
                     "always fits):")
        lines.extend(refusals)
    else:
        lines.append("every one-step increase of depth, aspect_ratio, mlp_ratio and device_batch_size, and every "
                     "larger head_dim/kv head/activation choice, fits")
    return lines
