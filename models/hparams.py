"""THE hyperparameter block's rules, without torch: the sizes a block gives and which blocks can be trained.

The torch and MLX models build from `GPTConfig.from_hparams`, the trainer splits its batch with
`grad_accum_steps`, and proposal validation (research/proposing/space.py) runs `check_block` before a change is trained.
All three ask this module, so a rule the validator enforces is the model's own (tests/test_hparams_rules.py),
and a constraint added here reaches both sides at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

ACTIVATIONS = ("relu2", "gelu", "swiglu")
# Block size that sliding windows are rounded to when the sequence allows it: flex_attention skips whole
# 128 x 128 blocks, so a window that is a multiple of 128 wastes no partially masked block.
WINDOW_BLOCK = 128


class BlockError(ValueError):
    """The block describes no model or training that can run; the message is one actionable sentence."""


def model_width(depth: int, aspect_ratio: int, head_dim: int) -> int:
    """width = depth * aspect_ratio rounded up to a multiple of head_dim."""
    return -(-depth * aspect_ratio // head_dim) * head_dim


def head_counts(model: Mapping[str, Any]) -> tuple[int, int, int]:
    """(width, query heads, key/value heads) of the block's model section; kv_head_ratio must divide the heads."""
    depth, aspect, head_dim = int(model["depth"]), int(model["aspect_ratio"]), int(model["head_dim"])
    ratio = int(model["kv_head_ratio"])
    width = model_width(depth, aspect, head_dim)
    n_head = width // head_dim
    if ratio < 1 or n_head < 1 or n_head % ratio:
        raise BlockError(f"This gives width {width} and {n_head} heads of {head_dim}, which kv_head_ratio {ratio} "
                         "does not divide; choose depth/aspect_ratio/head_dim/kv_head_ratio so that it does.")
    return width, n_head, n_head // ratio


def tiled_window_pattern(pattern: Any, depth: int) -> str:
    """The pattern tiled over the layers, the last one forced to L (full context)."""
    pattern = str(pattern).upper()
    if not pattern or set(pattern) - {"S", "L"}:
        raise BlockError(f"window_pattern={pattern!r} must be a non-empty string of S and L letters.")
    return "".join(pattern[i % len(pattern)] for i in range(depth - 1)) + "L"


def grad_accum_steps(total_batch_tokens: int, device_batch_size: int, seq_len: int) -> int:
    """Micro-batches per optimizer step; the total batch must split evenly into device batches."""
    per_micro_batch = int(device_batch_size) * int(seq_len)
    if per_micro_batch < 1 or int(total_batch_tokens) % per_micro_batch:
        raise BlockError(f"batch.total_batch_tokens ({total_batch_tokens}) is not a multiple of device_batch_size * "
                         f"seq_len ({device_batch_size} * {seq_len} = {per_micro_batch}); pick values that divide evenly.")
    return int(total_batch_tokens) // per_micro_batch


def check_schedule(schedule: Mapping[str, Any]) -> None:
    """Warmup and warmdown are fractions of one run: together they cannot exceed it."""
    total = float(schedule.get("warmup_frac", 0.0)) + float(schedule.get("warmdown_frac", 0.0))
    if total > 1.0 + 1e-12:
        raise BlockError(f"schedule.warmup_frac + schedule.warmdown_frac must not exceed 1 (they would be {total:g}).")


@dataclass
class GPTConfig:
    vocab_size: int = 32768
    seq_len: int = 2048           # longest sequence; rotary tables are built for it
    n_layer: int = 8              # transformer blocks (hparam depth)
    n_embd: int = 512             # model width
    n_head: int = 4               # query heads
    n_kv_head: int = 4            # key/value heads (GQA when fewer than n_head)
    head_dim: int = 128           # channels per head
    window_pattern: str = "SSSL"  # one letter per layer after tiling: S = short window, L = full context
    short_window: int = 1024      # how far back an S layer reaches: it sees short_window + 1 keys, as the reference
    mlp_hidden: int = 2048        # MLP hidden width
    activation: str = "relu2"     # relu2 | gelu | swiglu
    value_residual: bool = True   # value embeddings on alternating layers, the last one included
    logit_softcap: float = 15.0   # c in c * tanh(z / c); 0 disables
    rope_base: float = 10000.0    # rotary embedding base
    qk_norm: bool = True          # RMS-normalise queries and keys per head
    ve_gate_channels: int = 32    # leading channels of x the value-residual gate reads

    @classmethod
    def from_hparams(cls, model: Mapping[str, Any], vocab_size: int, seq_len: int) -> "GPTConfig":
        """Turn THE hyperparameter block's model section into concrete sizes.

        width and heads: `head_counts`; the window pattern: `tiled_window_pattern`. The short window is
        max(1, int(short_window_frac * seq_len)), rounded to the nearest multiple of 128 when it is at least 128
        (see WINDOW_BLOCK). SwiGLU has three matrices instead of two, so its hidden width is 2/3 of
        mlp_ratio * width (rounded to a multiple of 64) to keep the parameter count comparable.
        """
        depth, head_dim = int(model["depth"]), int(model["head_dim"])
        width, n_head, n_kv_head = head_counts(model)
        short = max(1, int(float(model["short_window_frac"]) * seq_len))
        if short >= WINDOW_BLOCK:
            short = max(WINDOW_BLOCK, round(short / WINDOW_BLOCK) * WINDOW_BLOCK)
        activation = str(model["activation"])
        if activation not in ACTIVATIONS:
            raise BlockError(f"activation={activation!r} is not one of {', '.join(ACTIVATIONS)}.")
        hidden = float(model["mlp_ratio"]) * width
        if activation == "swiglu":
            hidden = max(64, round(2 / 3 * hidden / 64) * 64)
        return cls(
            vocab_size=int(vocab_size),
            seq_len=int(seq_len),
            n_layer=depth,
            n_embd=width,
            n_head=n_head,
            n_kv_head=n_kv_head,
            head_dim=head_dim,
            window_pattern=tiled_window_pattern(model["window_pattern"], depth),
            short_window=short,
            mlp_hidden=int(hidden),
            activation=activation,
            value_residual=bool(model["value_residual"]),
            logit_softcap=float(model["logit_softcap"]),
            rope_base=float(model["rope_base"]),
            qk_norm=bool(model["qk_norm"]),
            ve_gate_channels=min(int(model["ve_gate_channels"]), width),
        )

    def windows(self) -> list[int]:
        """Each layer's reach (models.attention: W + 1 keys); a full layer sees the whole sequence."""
        pattern = self.window_pattern
        short = min(self.short_window, self.seq_len)
        last = self.n_layer - 1
        return [short if pattern[i % len(pattern)] == "S" and i < last else self.seq_len for i in range(self.n_layer)]

    def has_value_embedding(self, layer: int) -> bool:
        """Alternating layers, counted back from the last one so that the last layer always has one."""
        return self.value_residual and (self.n_layer - 1 - layer) % 2 == 0


def _batch_rule(hparams: Mapping[str, Any], seq_len: int | None) -> None:
    if seq_len:  # the sequence length is the preset's (train.seq_len), not the block's: unknown, nothing to check
        grad_accum_steps(hparams["batch"]["total_batch_tokens"], hparams["batch"]["device_batch_size"], seq_len)


# The cross-key rules by the names conf/space.yaml lists under `constraints`; each raises BlockError.
BLOCK_RULES: dict[str, Callable[[Mapping[str, Any], int | None], None]] = {
    "heads": lambda hparams, seq_len: head_counts(hparams["model"]),
    "batch": _batch_rule,
    "window_pattern": lambda hparams, seq_len: tiled_window_pattern(hparams["model"]["window_pattern"],
                                                                     int(hparams["model"]["depth"])),
    "schedule": lambda hparams, seq_len: check_schedule(hparams["schedule"]),
}


def check_block(hparams: Mapping[str, Any], seq_len: int | None, rules: Iterable[str] = tuple(BLOCK_RULES)) -> None:
    """Raise BlockError for the first named rule the block breaks. A rule whose keys the block lacks (a partial
    block) does not apply; the trainer reads full blocks, so there every rule does."""
    for name in rules:
        try:
            BLOCK_RULES[name](hparams, seq_len)
        except KeyError:
            continue
