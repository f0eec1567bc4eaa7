"""Causal attention behind one function, with a sliding window and grouped key/value heads.

`attention(q, k, v, window, impl)` has the same interface for every kernel:
  q: (B, H, T, D), k and v: (B, Hkv, T, D) with H a multiple of Hkv (GQA), any float dtype.
  window: how far back a query reaches, flash-attention's window (window, 0) as the reference trainer passes
          it: a query at position i sees the keys j with 0 <= i - j <= window, i.e. window + 1 keys (itself
          included; 1,025 at the default short window of 1,024). None, or a window >= T - 1, is plain causal
          attention.
  impl:   "flex"  - torch.nn.attention.flex_attention with a sliding-window BlockMask, built inside the graph.
                    Taken only under torch.compile, where it becomes one fused kernel that skips the blocks
                    outside the window (on CUDA; on CPU inductor compiles its forward, which the tests use).
                    Uncompiled, flex_attention is a slow dense reference, so an eager call (the evaluation,
                    train.compile=false) takes "sdpa" instead: same maths, fused kernels.
          "sdpa"  - F.scaled_dot_product_attention: is_causal=True for full layers; windowed layers use a
                    banded blocked computation (below) so that their cost is O(T * window).
          "naive" - an explicit dense (T, T) mask and softmax: the reference that tests compare against.
          None    - the process-wide default set by `set_attention_impl` (the trainer passes the hardware
                    adapter's `attention_kernel(compiled, seq_len)`), "sdpa" until then.
A requested "flex" outside torch.compile, or where flex_attention cannot be imported, falls back to "sdpa".
Tests force a path with the `use_attention_impl(name)` context manager.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
import torch
import torch.nn.functional as F

try:  # torch >= 2.5; older builds simply never take the flex path
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:
    create_block_mask = flex_attention = None

IMPLS = ("flex", "sdpa", "naive")
_default_impl = "sdpa"


def set_attention_impl(name: str) -> None:
    """Set the kernel that `attention(..., impl=None)` uses from now on."""
    global _default_impl
    if name not in IMPLS:
        raise ValueError(f"Unknown attention implementation {name!r}: choose one of {', '.join(IMPLS)}.")
    _default_impl = name


def get_attention_impl() -> str:
    return _default_impl


@contextmanager
def use_attention_impl(name: str):
    """Force one kernel inside a `with` block (tests use it), restoring the previous default after."""
    previous = _default_impl
    set_attention_impl(name)
    try:
        yield
    finally:
        set_attention_impl(previous)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int | None,
              impl: str | None = None) -> torch.Tensor:
    """Causal (optionally sliding-window) attention; returns (B, H, T, D) like q."""
    impl = impl or _default_impl
    T = q.size(-2)
    if window is not None and window < 1:
        raise ValueError(f"Attention window must be at least 1, got {window}.")
    full = window is None or window >= T - 1
    # The kernels below take `span`, the number of keys a query sees (0 <= i - j < span): the reach plus itself.
    span = T if full else window + 1
    if impl == "flex" and flex_attention is not None and torch.compiler.is_compiling():
        return _flex(q, k, v, span)
    if impl == "naive":
        return _naive(q, k, v, span)
    if full:
        return _sdpa_causal(q, k, v)
    return _banded(q, k, v, span)


def _expand_kv(q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """Repeat each key/value head for the query heads that share it (GQA), as a view where possible."""
    groups = q.size(1) // kv.size(1)
    if groups == 1:
        return kv
    B, Hkv, T, D = kv.shape
    return kv[:, :, None].expand(B, Hkv, groups, T, D).reshape(B, Hkv * groups, T, D)


def _sdpa_causal(q, k, v):
    return F.scaled_dot_product_attention(q, _expand_kv(q, k), _expand_kv(q, v), is_causal=True)


def _naive(q, k, v, span: int):
    """Dense reference: scores for every (i, j), masked to 0 <= i - j < span, softmax in fp32."""
    k, v = _expand_kv(q, k), _expand_kv(q, v)
    T = q.size(-2)
    pos = torch.arange(T, device=q.device)
    delta = pos[:, None] - pos[None, :]
    allowed = (delta >= 0) & (delta < span)
    scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.size(-1))
    scores = scores.masked_fill(~allowed, float("-inf"))
    return (scores.softmax(dim=-1) @ v.float()).to(q.dtype)


# Smallest query block of the banded path: tiny blocks would turn one big matmul into many small ones.
_MIN_BLOCK = 64


def _banded(q, k, v, span: int):
    """Sliding-window attention in O(T * span) with two sdpa calls and no (T, T) mask.

    Queries are cut into blocks of C = max(64, ceil(span / 2)) positions. Block c (queries [cC, cC + C))
    can only see keys in [cC - span + 1, cC + C), which lie inside [cC - P, cC + C) where
    P = span - 1 rounded up to a multiple of C. The first P queries (whose span would start before 0) are
    the "head": one small dense masked call of P x P. Every later block is a "body" block: its key span is
    cut out with `unfold` (width P + C, stride C), the blocks are folded into the batch dimension, and one
    (C, P + C) mask, the same for all of them, keeps 0 <= i - j < span. Folding into the batch keeps the
    call 4-D with a broadcastable mask, which the fused CPU/GPU sdpa kernels accept (a 5-D call or a
    per-block mask drops to the slow math kernel). Cost: about T * (P + C) ~ 1.5 * T * span scores; every
    query sees itself, so no softmax row is empty.
    """
    B, H, T, D = q.shape
    k, v = _expand_kv(q, k), _expand_kv(q, v)
    C = max(_MIN_BLOCK, -(-span // 2))
    P = -(-(span - 1) // C) * C
    if T <= P + C:  # at most one body block: the dense mask is already about span x span
        return _masked_sdpa(q, k, v, span)
    n = -(-T // C)  # blocks after padding the end; the first P // C are the head
    pad = n * C - T
    q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    nb = n - P // C
    qb = q[:, :, P:].reshape(B, H, nb, C, D)
    kb = k.unfold(2, P + C, C).transpose(-2, -1)  # (B, H, nb, P + C, D)
    vb = v.unfold(2, P + C, C).transpose(-2, -1)
    fold = lambda t: t.transpose(1, 2).reshape(B * nb, H, t.size(-2), D)  # noqa: E731
    r = torch.arange(C, device=q.device)[:, None]
    s = torch.arange(P + C, device=q.device)[None, :]
    delta = r + P - s  # i - j inside every body block
    body = F.scaled_dot_product_attention(fold(qb), fold(kb), fold(vb), attn_mask=(delta >= 0) & (delta < span))
    body = body.reshape(B, nb, H, C, D).transpose(1, 2).reshape(B, H, nb * C, D)
    if P == 0:
        return body[:, :, :T]
    head = _masked_sdpa(q[:, :, :P], k[:, :, :P], v[:, :, :P], span)
    return torch.cat([head, body], dim=2)[:, :, :T]


def _masked_sdpa(q, k, v, span: int):
    T = q.size(-2)
    pos = torch.arange(T, device=q.device)
    delta = pos[:, None] - pos[None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=(delta >= 0) & (delta < span))


# --- flex_attention (under torch.compile) ------------------------------------------------------------------


def _sliding_causal(span: int):
    def mask_mod(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < span)

    return mask_mod


def _flex(q, k, v, span: int):
    """Sliding-window flex attention, traced by torch.compile.

    The BlockMask is built inline on every call: the traced construction is a few tiny fused ops, and keeping
    it inside the graph avoids both a graph break and a global side effect in traced code (modded-nanogpt
    builds its masks the same way)."""
    T = q.size(-2)
    block_mask = create_block_mask(_sliding_causal(span), B=None, H=None, Q_LEN=T, KV_LEN=T, device=str(q.device))
    return flex_attention(q, k, v, block_mask=block_mask, enable_gqa=q.size(1) != k.size(1))
