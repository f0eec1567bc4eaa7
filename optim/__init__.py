"""Optimizers: MuonAdamW (torch), its MLX port (optim.muon_mlx), and the LR/momentum schedules.

`build_optimizer(model, optim_hparams, ortho_dtype)` turns the model's named parameter groups and THE
hyperparameter block's optim section into one MuonAdamW. Every key of the optim section is used here:
  matrix_lr, weight_decay, weight_decay_to_zero, cautious_weight_decay, muon_momentum,
  muon_momentum_warmup_steps, ns_steps, normuon_beta2 -> Muon groups
  embedding_lr (token and value embeddings), unembedding_lr, x0_lr, resid_lr, adam_beta1/2,
  x0_adam_beta1 -> AdamW groups
"""

from __future__ import annotations

from optim.muon import MuonAdamW

# Width at which the AdamW LRs of the block were tuned; other widths scale them by (width / 768) ** -0.5,
# nanochat's rule (a wider model has more, smaller, embedding/head coordinates per token, so each needs a
# smaller step). Scalars (x0, resid) and Muon are not scaled: Muon's update is already shape-normalised.
REFERENCE_WIDTH = 768
ADAM_EPS = 1e-10  # tiny: Adam's second moment of rarely seen token rows is small and must not be swamped

__all__ = ["MuonAdamW", "build_optimizer", "param_group_specs", "adamw_lrs", "REFERENCE_WIDTH", "ADAM_EPS"]


def adamw_lrs(optim_hparams: dict, width: int) -> dict[str, float]:
    """Peak LR of each AdamW group, width scaling applied (shared with the MLX port)."""
    scale = (width / REFERENCE_WIDTH) ** -0.5
    return {
        "embedding": float(optim_hparams["embedding_lr"]) * scale,
        "value_embedding": float(optim_hparams["embedding_lr"]) * scale,
        "unembedding": float(optim_hparams["unembedding_lr"]) * scale,
        "x0": float(optim_hparams["x0_lr"]),
        "resid": float(optim_hparams["resid_lr"]),
    }


def build_optimizer(model, optim_hparams: dict, ortho_dtype=None) -> MuonAdamW:
    """One MuonAdamW over every parameter of `model` (a models.gpt.GPT, or anything with param_groups()).

    `ortho_dtype` is the backend adapter's (hardware/); None keeps the optimizer's bf16 default."""
    groups = param_group_specs(model.param_groups(), lambda p: tuple(p.shape), optim_hparams, model.config.n_embd)
    return MuonAdamW(groups) if ortho_dtype is None else MuonAdamW(groups, ortho_dtype=ortho_dtype)


def param_group_specs(named: dict, shape_of, optim_hparams: dict, width: int) -> list[dict]:
    """The optimizer groups of both backends: Muon groups of same-shape matrices, then one AdamW group per kind.

    `named` is the model's param_groups() (parameters for torch, dotted names for MLX); `shape_of` gives the
    shape of one entry, so matrices of one shape can be orthogonalised together.
    """
    groups = []
    by_shape: dict[tuple, list] = {}
    for p in named["matrix"]:
        by_shape.setdefault(shape_of(p), []).append(p)
    for shape, params in sorted(by_shape.items()):
        groups.append(dict(
            name=f"matrix:{shape[0]}x{shape[1]}", kind="muon", params=params,
            lr=float(optim_hparams["matrix_lr"]),
            weight_decay=float(optim_hparams["weight_decay"]),
            weight_decay_to_zero=bool(optim_hparams["weight_decay_to_zero"]),
            cautious=bool(optim_hparams["cautious_weight_decay"]),
            final_momentum=float(optim_hparams["muon_momentum"]),
            momentum_warmup_steps=int(optim_hparams["muon_momentum_warmup_steps"]),
            ns_steps=int(optim_hparams["ns_steps"]),
            normuon_beta2=float(optim_hparams["normuon_beta2"]),
        ))
    beta2 = float(optim_hparams["adam_beta2"])
    betas = {"x0": (float(optim_hparams["x0_adam_beta1"]), beta2)}  # the reference's x0 betas: (0.96, 0.95)
    for name, lr in adamw_lrs(optim_hparams, width).items():
        if named[name]:  # value_embedding is empty when value_residual is off
            group_betas = betas.get(name, (float(optim_hparams["adam_beta1"]), beta2))
            groups.append(dict(name=name, kind="adamw", params=named[name], lr=lr,
                               betas=group_betas, eps=ADAM_EPS, weight_decay=0.0))
    for group in groups:
        group["initial_lr"] = group["lr"]
        group["initial_weight_decay"] = group["weight_decay"]
    return groups
