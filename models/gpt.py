"""The GPT that every experiment trains: one torch definition for every torch backend.

Design choices, each with where it comes from:
- Rotary position embeddings (Su et al. 2021, RoFormer), no learned positions.
- QK-norm: queries and keys are RMS-normalised per head before attention (Dehghani et al. 2023,
  "Scaling Vision Transformers to 22B"; used by modded-nanogpt and nanochat). Optional (qk_norm).
- Parameter-free RMSNorm (F.rms_norm, no gain; Zhang & Sennrich 2019) before attention, MLP and the head,
  and on the token embedding (modded-nanogpt).
- Sliding-window attention on the "S" layers of the window pattern, full causal attention on "L" layers
  and always on the last one (Longformer, Beltagy et al. 2020; the short/long mix of Gemma 2 and
  modded-nanogpt's record runs). Kernels live in models/attention.py.
- Grouped-query attention: n_head // kv_head_ratio key/value heads (Ainslie et al. 2023).
- Value residual: value embeddings (a second token embedding per layer) mixed into the attention values
  on alternating layers, the last one included, through a per-kv-head gate that depends on the input:
  2 * sigmoid(W x[..., :ve_gate_channels]), W zero-initialised and trained by Muon with the block matrices
  (ResFormer, Zhou et al. 2024; modded-nanogpt's value embeddings; nanochat's and the reference trainer's
  gated version).
- Learned per-layer residual scaling: before block i, x = resid_lambdas[i] * x + x0_lambdas[i] * x0 where
  x0 is the normalised token embedding (modded-nanogpt's x0 skip, nanochat's resid/x0 lambdas).
- MLP with ReLU^2 (So et al. 2021, "Primer"); GELU and SwiGLU (Shazeer 2020) selectable.
- Untied input embedding and output head (modded-nanogpt, nanochat).
- Logit soft-capping c * tanh(z / c) in fp32 (Gemma 2; modded-nanogpt uses c = 15 to 30).
- Zero-initialised output projections so every block starts as the identity (modded-nanogpt, also
  "ReZero", Bachlechner et al. 2020), a tiny head init and unit-variance embeddings: all in init_weights().
- No biases anywhere; no dropout (single-epoch pretraining on a time budget).
The model knows nothing about hardware: device, dtype (autocast), torch.compile and the attention kernel
are applied around it by the trainer through hardware/ (torchtitan style).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.attention import attention
from models.hparams import GPTConfig


def norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (seq_len, head_dim // 2) in fp32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the two halves of each head (x: B, H, T, D) by position-dependent angles."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.qk_norm = config.qk_norm
        self.c_q = nn.Linear(config.n_embd, config.n_head * config.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, config.n_kv_head * config.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, config.n_kv_head * config.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_head * config.head_dim, config.n_embd, bias=False)
        # Value-residual gate, one per kv head and token: v += 2 * sigmoid(W x[..., :c]) * ve (1.0 at init).
        self.ve_gate_channels = config.ve_gate_channels
        self.ve_gate = (nn.Linear(config.ve_gate_channels, config.n_kv_head, bias=False)
                        if config.has_value_embedding(layer) else None)

    def forward(self, x, ve, cos, sin, window: int):
        B, T, _ = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if ve is not None:
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))  # (B, T, n_kv_head)
            gate = gate.transpose(1, 2).unsqueeze(-1).to(v.dtype)
            v = v + gate * ve.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2).to(v.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if self.qk_norm:  # a rotation keeps the norm, so norm-after-rotary equals rotary-after-norm
            q, k = norm(q), norm(k)
        q, k = q.to(v.dtype), k.to(v.dtype)  # kernels want one dtype; some autocast versions keep norms in fp32
        y = attention(q, k, v, window)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.activation = config.activation
        self.c_fc = nn.Linear(config.n_embd, config.mlp_hidden, bias=False)
        # SwiGLU's gate branch; a separate matrix (not a fused 2x-wide one) so Muon orthogonalises each alone.
        self.c_gate = nn.Linear(config.n_embd, config.mlp_hidden, bias=False) if config.activation == "swiglu" else None
        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=False)

    def forward(self, x):
        h = self.c_fc(x)
        if self.activation == "relu2":
            h = F.relu(h).square()
        elif self.activation == "gelu":
            h = F.gelu(h)
        else:
            h = F.silu(self.c_gate(x)) * h
        return self.c_proj(h)


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos, sin, window: int):
        x = x + self.attn(norm(x), ve, cos, sin, window)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.windows = config.windows()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        kv_dim = config.n_kv_head * config.head_dim
        self.value_embeds = nn.ModuleDict({
            str(i): nn.Embedding(config.vocab_size, kv_dim) for i in range(config.n_layer) if config.has_value_embedding(i)
        })
        self.blocks = nn.ModuleList([Block(config, i) for i in range(config.n_layer)])
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
        self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        cos, sin = rotary_tables(config.seq_len, config.head_dim, config.rope_base)
        # Not persistent: derived from the config, so checkpoints stay small and dtype casts never touch them.
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Every initialisation in one place.

        - wte: N(0, 1). Its output is RMS-normalised right away, so the scale only sets the effective LR.
        - q, k, v, MLP input (and SwiGLU gate) matrices: U(-a, a) with a = sqrt(3 / fan_in), i.e. std
          1 / sqrt(fan_in), so activations keep unit RMS (uniform avoids the rare large normal draws).
        - Output projections of attention and MLP: zeros, so each block starts as the identity
          (modded-nanogpt); Muon still moves them on the first step because their gradient is not zero.
        - value embeddings: the same uniform as v's projection, so ve starts at v's scale.
        - lm_head: N(0, 0.001): near-uniform initial predictions, loss starts at ~ln(vocab).
        - resid_lambdas 1, x0_lambdas 0.1: the stream starts as a plain residual with a small x0 skip.
        - ve_gate weights 0: gate = 2 * sigmoid(0) = 1 for every input, value embeddings fully mixed in from
          the start; Muon moves them on the first step (their gradient is not zero).
        """
        nn.init.normal_(self.wte.weight, mean=0.0, std=1.0)
        bound = math.sqrt(3.0 / self.config.n_embd)
        for block in self.blocks:
            for linear in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc, block.mlp.c_gate):
                if linear is not None:
                    nn.init.uniform_(linear.weight, -bound, bound)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)
        for embedding in self.value_embeds.values():
            nn.init.uniform_(embedding.weight, -bound, bound)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.001)
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)

    EMBEDDING_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

    def store_embeddings_in(self, dtype: str) -> None:
        """Keep the token and value embeddings (and so their Adam state, made like them) in `dtype`: "bfloat16"
        as the reference trainer does on the GPU (half their memory and optimizer traffic), or "float32" (see
        `_lookup` for the stream's dtype); checkpoints store every parameter in fp32 either way."""
        if dtype not in self.EMBEDDING_DTYPES:
            raise ValueError(f"train.embedding_dtype={dtype!r} is not one of {', '.join(self.EMBEDDING_DTYPES)}.")
        for embedding in (self.wte, *self.value_embeds.values()):
            embedding.to(dtype=self.EMBEDDING_DTYPES[dtype])

    @staticmethod
    def _lookup(embedding: nn.Embedding, idx: torch.Tensor) -> torch.Tensor:
        """An embedding's rows as the stream takes them. bf16 rows under autocast stay bf16, so the residual stream
        is bf16 as in the reference trainer on the GPU (a 0-d fp32 lambda does not promote it); without autocast
        they are cast to fp32, the dtype of every weight they meet."""
        rows = embedding(idx)
        if rows.dtype != torch.float32 and not torch.is_autocast_enabled(rows.device.type):
            rows = rows.float()
        return rows

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, loss_reduction: str = "mean"):
        B, T = idx.shape
        if T > self.config.seq_len:
            raise ValueError(f"Sequence length {T} exceeds the model's seq_len {self.config.seq_len}.")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = x0 = norm(self._lookup(self.wte, idx))
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self._lookup(self.value_embeds[str(i)], idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin, self.windows[i])
        logits = self.lm_head(norm(x)).float()
        c = self.config.logit_softcap
        if c > 0:
            logits = c * torch.tanh(logits / c)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=-1, reduction=loss_reduction)
        return loss.view(B, T) if loss_reduction == "none" else loss

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> float:
        """Training FLOPs (forward + backward) per token.

        6 * N for every parameter used in a matmul (block matrices and lm_head; embedding lookups and the
        scalar lambdas/gates are excluded: they cost no matmul), plus attention's two matmuls (QK^T and AV):
        2 FLOPs * 2 matmuls * 3 (fwd + bwd) = 12 * n_head * head_dim per attended key. The keys attended
        are counted per layer by its real window over causal positions: a layer of window (reach) W sees
        w = W + 1 keys (models/attention.py), so position i (0-based) sees min(i + 1, w) keys and the mean
        context over a sequence of T tokens is
            ctx(w) = (w * (w + 1) / 2 + (T - w) * w) / T   for w < T,   (T + 1) / 2 for w >= T.
        Note: this counts causal work only, so full-attention FLOPs are about half of the 12 * h * d * T
        convention of nanochat, PaLM and the reference trainer (flops_per_token_full_attention); a short window
        lowers the count, as it lowers the real work.
        """
        T = self.config.seq_len
        keys = [reach + 1 for reach in self.windows]
        causal = [(T + 1) / 2 if w >= T else (w * (w + 1) / 2 + (T - w) * w) / T for w in keys]
        return self._flops_per_token(causal)

    def flops_per_token_full_attention(self) -> float:
        """The reference trainer's convention: 6 * N + 12 * h * d * min(window, T) per layer, i.e. every query
        charged with its whole window as if attention were not causal. The same speed reads as a higher MFU
        under it (~10% at the datacenter preset), which is why both are reported, each named."""
        return self._flops_per_token([min(w, self.config.seq_len) for w in self.windows])

    def _flops_per_token(self, keys_per_layer: list[float]) -> float:
        """6 FLOPs per matmul parameter, plus 12 * h * d per attended key in each layer."""
        c = self.config
        embedding_ids = {id(self.wte.weight)} | {id(e.weight) for e in self.value_embeds.values()}
        n_matmul = sum(p.numel() for p in self.parameters() if p.dim() == 2 and id(p) not in embedding_ids)
        return 6 * n_matmul + sum(12 * c.n_head * c.head_dim * keys for keys in keys_per_layer)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups for the optimizer; every parameter is in exactly one.

        Every 2-D block parameter is a Muon matrix, the value-residual gates (n_kv_head x channels) included,
        as in the reference trainer.
        """
        groups = {
            "matrix": [p for block in self.blocks for p in block.parameters() if p.dim() == 2],
            "embedding": [self.wte.weight],
            "value_embedding": [e.weight for e in self.value_embeds.values()],
            "unembedding": [self.lm_head.weight],
            "x0": [self.x0_lambdas],
            "resid": [self.resid_lambdas],
        }
        grouped = [id(p) for ps in groups.values() for p in ps]
        assert len(grouped) == len(set(grouped)), "a parameter is in two optimizer groups"
        assert set(grouped) == {id(p) for p in self.parameters()}, "a parameter is in no optimizer group"
        return groups
