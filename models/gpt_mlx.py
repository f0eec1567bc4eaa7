"""The same GPT in MLX (Apple silicon), layer for layer the torch model of models/gpt.py.

Same config (GPTConfig), same parameter names and shapes, same maths: with the weights copied over by
`load_torch_state_dict`, the logits equal the torch model's up to float rounding (tests/test_mlx_parity.py).
Differences in mechanics only:
- Attention uses mx.fast.scaled_dot_product_attention with an additive mask. Full layers pass "causal".
  Sliding-window layers pass an explicit (T, T) band mask, built once per (T, window) and cached: MLX has
  no block-sparse kernel, so a window saves no compute here, it only changes what is attended. Apple
  presets use short sequences (1024), where the dense mask is cheap; a banded blocked path like the torch
  one would pay off only for long sequences.
- Keys and values are repeated per query head for GQA, so any MLX version works.
- RMSNorm is mx.fast.rms_norm with a unit weight (parameter-free, as in torch).
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from models.hparams import GPTConfig


def norm(x: mx.array) -> mx.array:
    # torch's F.rms_norm with eps=None uses the dtype's machine epsilon; the same here, or the two models
    # drift apart by ~1e-4 per norm wherever activations are small.
    return mx.fast.rms_norm(x, None, float(np.finfo(np.float32).eps))


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[mx.array, mx.array]:
    inv_freq = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    angles = np.outer(np.arange(seq_len, dtype=np.float32), inv_freq)
    return mx.array(np.cos(angles)), mx.array(np.sin(angles))


def apply_rotary(x: mx.array, cos: mx.array, sin: mx.array) -> mx.array:
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d], x[..., d:]
    cos, sin = cos.astype(x.dtype), sin.astype(x.dtype)
    return mx.concatenate([x1 * cos + x2 * sin, x2 * cos - x1 * sin], axis=-1)


_masks: dict = {}


def window_mask(T: int, window: int, dtype=mx.float32) -> mx.array:
    """Additive (T, T) mask: 0 where 0 <= i - j <= window (window + 1 keys, as models.attention), -inf elsewhere."""
    key = (T, window, dtype)
    if key not in _masks:
        pos = np.arange(T)
        delta = pos[:, None] - pos[None, :]
        allowed = (delta >= 0) & (delta <= window)
        _masks[key] = mx.array(np.where(allowed, 0.0, -np.inf).astype(np.float32)).astype(dtype)
    return _masks[key]


def attention(q: mx.array, k: mx.array, v: mx.array, window: int | None) -> mx.array:
    """q: (B, H, T, D), k/v: (B, Hkv, T, D); same window semantics as models.attention.attention."""
    T, D = q.shape[-2], q.shape[-1]
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = mx.repeat(k, groups, axis=1), mx.repeat(v, groups, axis=1)
    mask = "causal" if window is None or window >= T - 1 else window_mask(T, window, q.dtype)
    return mx.fast.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(D), mask=mask)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.qk_norm = config.qk_norm
        self.c_q = nn.Linear(config.n_embd, config.n_head * config.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, config.n_kv_head * config.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, config.n_kv_head * config.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_head * config.head_dim, config.n_embd, bias=False)
        self.ve_gate_channels = config.ve_gate_channels
        if config.has_value_embedding(layer):
            self.ve_gate = nn.Linear(config.ve_gate_channels, config.n_kv_head, bias=False)

    def __call__(self, x, ve, cos, sin, window: int):
        B, T, _ = x.shape
        q = self.c_q(x).reshape(B, T, self.n_head, self.head_dim).transpose(0, 2, 1, 3)
        k = self.c_k(x).reshape(B, T, self.n_kv_head, self.head_dim).transpose(0, 2, 1, 3)
        v = self.c_v(x).reshape(B, T, self.n_kv_head, self.head_dim).transpose(0, 2, 1, 3)
        if ve is not None:
            gate = 2 * mx.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))  # (B, T, n_kv_head)
            gate = gate.transpose(0, 2, 1)[..., None]
            v = v + gate * ve.reshape(B, T, self.n_kv_head, self.head_dim).transpose(0, 2, 1, 3)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.qk_norm:
            q, k = norm(q), norm(k)
        y = attention(q, k, v, window)
        return self.c_proj(y.transpose(0, 2, 1, 3).reshape(B, T, self.n_head * self.head_dim))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.activation = config.activation
        self.c_fc = nn.Linear(config.n_embd, config.mlp_hidden, bias=False)
        if config.activation == "swiglu":
            self.c_gate = nn.Linear(config.n_embd, config.mlp_hidden, bias=False)
        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=False)

    def __call__(self, x):
        h = self.c_fc(x)
        if self.activation == "relu2":
            h = mx.square(nn.relu(h))
        elif self.activation == "gelu":
            h = nn.gelu(h)  # exact erf GELU, like F.gelu's default
        else:
            h = nn.silu(self.c_gate(x)) * h
        return self.c_proj(h)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = MLP(config)

    def __call__(self, x, ve, cos, sin, window: int):
        x = x + self.attn(norm(x), ve, cos, sin, window)
        return x + self.mlp(norm(x))


class GPTMLX(nn.Module):
    """MLX twin of models.gpt.GPT; call it with int32 token ids (B, T) for fp32 logits (B, T, V)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.windows = config.windows()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        kv_dim = config.n_kv_head * config.head_dim
        # A dict keyed by the layer index as text, so parameter names match torch's "value_embeds.<i>.weight".
        self.value_embeds = {str(i): nn.Embedding(config.vocab_size, kv_dim)
                             for i in range(config.n_layer) if config.has_value_embedding(i)}
        self.blocks = [Block(config, i) for i in range(config.n_layer)]
        self.resid_lambdas = mx.ones((config.n_layer,))
        self.x0_lambdas = mx.full((config.n_layer,), 0.1)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self._rope = rotary_tables(config.seq_len, config.head_dim, config.rope_base)
        self.init_weights()

    def init_weights(self) -> None:
        """The torch model's init_weights(), in MLX (see models/gpt.py for the reasons)."""
        c = self.config
        bound = math.sqrt(3.0 / c.n_embd)
        uniform = lambda shape: mx.random.uniform(-bound, bound, shape)  # noqa: E731
        self.wte.weight = mx.random.normal(self.wte.weight.shape)
        for block in self.blocks:
            for name in ("c_q", "c_k", "c_v"):
                layer = getattr(block.attn, name)
                layer.weight = uniform(layer.weight.shape)
            block.mlp.c_fc.weight = uniform(block.mlp.c_fc.weight.shape)
            if "c_gate" in block.mlp:
                block.mlp.c_gate.weight = uniform(block.mlp.c_gate.weight.shape)
            block.attn.c_proj.weight = mx.zeros(block.attn.c_proj.weight.shape)
            block.mlp.c_proj.weight = mx.zeros(block.mlp.c_proj.weight.shape)
            if "ve_gate" in block.attn:
                block.attn.ve_gate.weight = mx.zeros(block.attn.ve_gate.weight.shape)
        for embedding in self.value_embeds.values():
            embedding.weight = uniform(embedding.weight.shape)
        self.lm_head.weight = 0.001 * mx.random.normal(self.lm_head.weight.shape)

    def __call__(self, idx: mx.array) -> mx.array:
        B, T = idx.shape
        cos, sin = self._rope[0][:T], self._rope[1][:T]
        x = x0 = norm(self.wte(idx))
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin, self.windows[i])
        logits = self.lm_head(norm(x)).astype(mx.float32)
        c = self.config.logit_softcap
        if c > 0:
            logits = c * mx.tanh(logits / c)
        return logits

    def loss(self, idx: mx.array, targets: mx.array, reduction: str = "mean") -> mx.array:
        """Cross-entropy with targets == -1 ignored, like the torch model's forward(idx, targets)."""
        logits = self(idx)
        valid = targets != -1
        losses = nn.losses.cross_entropy(logits, mx.where(valid, targets, 0), reduction="none") * valid
        if reduction == "none":
            return losses
        return losses.sum() / mx.maximum(valid.sum(), 1)

    def param_groups(self) -> dict[str, list[str]]:
        """The torch model's groups, as dotted parameter names (MLX parameters are a nested dict)."""
        from mlx.utils import tree_flatten

        kinds = ("matrix", "embedding", "value_embedding", "unembedding", "x0", "resid")
        groups: dict[str, list[str]] = {k: [] for k in kinds}
        for name, p in tree_flatten(self.parameters()):
            if name == "wte.weight":
                groups["embedding"].append(name)
            elif name.startswith("value_embeds."):
                groups["value_embedding"].append(name)
            elif name == "lm_head.weight":
                groups["unembedding"].append(name)
            elif name == "resid_lambdas":
                groups["resid"].append(name)
            elif name == "x0_lambdas":
                groups["x0"].append(name)
            elif name.startswith("blocks.") and p.ndim == 2:
                groups["matrix"].append(name)
            else:
                raise AssertionError(f"parameter {name} is in no optimizer group")
        return groups

    def load_torch_state_dict(self, state_dict: dict) -> "GPTMLX":
        """Copy weights from a torch GPT's state_dict (torch.compile's "_orig_mod." prefix is stripped)."""
        from mlx.utils import tree_flatten

        own = dict(tree_flatten(self.parameters()))
        loaded = {}
        for name, tensor in state_dict.items():
            name = name.removeprefix("_orig_mod.")
            if name not in own:
                raise KeyError(f"Torch parameter {name} has no MLX counterpart.")
            array = tensor.detach().to("cpu").float().numpy()
            if tuple(array.shape) != tuple(own[name].shape):
                raise ValueError(f"Shape of {name} differs: torch {tuple(array.shape)}, mlx {tuple(own[name].shape)}.")
            loaded[name] = mx.array(array)
        missing = set(own) - set(loaded)
        if missing:
            raise KeyError(f"The torch state_dict lacks {sorted(missing)}.")
        for name, array in loaded.items():
            set_parameter(self, name, array)
        return self


def set_parameter(model: nn.Module, name: str, value: mx.array) -> None:
    """Replace one parameter by its dotted name.

    Walked by hand because mlx.utils.tree_unflatten turns the numeric keys of `value_embeds` ("0", "2")
    into list indices, and Module.update then fails on the dict."""
    *path, leaf = name.split(".")
    node = model
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[leaf] = value
