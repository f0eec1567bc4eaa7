"""MuonAdamW: Muon for the 2-D matrices inside the transformer blocks, AdamW for everything else.

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers"; Liu et al. 2025, "Muon is scalable")
replaces each matrix's momentum by its nearest semi-orthogonal matrix, so every direction of the update
moves at the same rate. Embeddings, the head and scalars are not hidden-layer matrices and use AdamW
(Loshchilov & Hutter 2019), as in modded-nanogpt and nanochat.

Param groups are plain dicts, built by optim.build_optimizer, with kind "muon" or "adamw", a `name`, the
live `lr` and `initial_lr` (the trainer sets lr = initial_lr * schedule multiplier), and a `step` counter
that travels with the optimizer's state_dict. Muon groups hold matrices of ONE shape, so each step stacks
them and orthogonalises the whole group in a single batched call.

Muon details (the reference single-GPU trainer's defaults, each a knob of the block's optim section):
- Nesterov momentum, momentum warmed up from 0.85 to its final value over `momentum_warmup_steps`
  (optim.schedule.muon_momentum); the optimizer computes it from its own step count, so the trainer only
  drives the LR and the weight decay.
- Orthogonalisation in the backend adapter's `ortho_dtype` (bf16 where the hardware multiplies bf16 natively:
  the iteration is self-correcting, and bf16 halves its cost there; fp32 where bf16 would be emulated):
  ns_steps >= 5 runs the 5 Polar Express steps (Amsel et al. 2025; coefficients as used by
  modded-nanogpt/nanochat) and polishes with ns_steps - 5 cubic Newton-Schulz steps (1.5x - 0.5x^3, fixed
  point 1); ns_steps < 5 runs Jordan's quintic Newton-Schulz (3.4445, -4.7750, 2.0315), which unlike a
  truncated Polar Express sequence is tuned to be used for any number of steps.
- NorMuon (Li et al. 2025, "NorMuon: Making Muon more efficient and scalable"): the orthogonal update gives
  every singular direction the same size but leaves single neurons (rows) very uneven. Each row (each column
  of a matrix wider than tall) is divided by the square root of an EMA (`normuon_beta2`) of its mean squared
  entry, then the whole update is rescaled to the Frobenius norm it had, so only the balance between
  neurons changes, not the step size. normuon_beta2 = 0 turns it off.
- LR scaled by max(1, rows / cols) ** 0.5 so tall matrices (MLP c_proj in, c_fc out) get an update of the
  same RMS per element (Keller Jordan's Muon; nanochat).
- Decoupled weight decay with the scaled LR: p -= lr * (update + wd * p * mask). With `cautious` the mask
  keeps only coordinates where update and weight agree in sign (update * p >= 0), i.e. where the step already
  moves the weight towards zero (Chen et al. 2025, "Cautious Weight Decay"); without it the mask is all ones.
  The trainer sets the group's live `weight_decay` from `initial_weight_decay` every step
  (optim.schedule.apply_schedule), so with weight_decay_to_zero it fades to 0 by the end of the budget.
"""

from __future__ import annotations

import torch

from optim.schedule import muon_momentum

POLAR_EXPRESS = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)
JORDAN_QUINTIC = (3.4445, -4.7750, 2.0315)
CUBIC_POLISH = (1.5, -0.5, 0.0)
# Added to the scaled Frobenius norm before dividing by it: the reference trainer's 1e-6 (karpathy/autoresearch,
# nanochat). It matters for a matrix whose gradient is tiny, e.g. the zero-initialised value-residual gates early
# on, whose updates 1e-7 moved by ~13% over three steps.
NORMALISE_EPS = 1e-6


def ns_coefficients(ns_steps: int) -> list[tuple[float, float, float]]:
    """(a, b, c) per iteration of X <- a X + b (X X^T) X + c (X X^T)^2 X."""
    if ns_steps < len(POLAR_EXPRESS):
        return [JORDAN_QUINTIC] * ns_steps
    return list(POLAR_EXPRESS) + [CUBIC_POLISH] * (ns_steps - len(POLAR_EXPRESS))


def orthogonalize(G: torch.Tensor, ns_steps: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Approximate U V^T of each matrix in G (..., rows, cols), batched over the leading dimensions.

    Singular values land in about [0.85, 1.15] after the 5 Polar Express steps (closer to 1 with polish
    steps) and in about [0.7, 1.2] with Jordan's quintic; exactly-zero directions stay zero."""
    X = G.to(dtype)
    transposed = X.size(-2) > X.size(-1)
    if transposed:  # iterate on the wide orientation: X X^T is then the smaller Gram matrix
        X = X.mT
    # Spectral norm <= Frobenius norm, so this puts every singular value in [0, 1]; 1.02 is headroom for bf16.
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.02 + NORMALISE_EPS)
    for a, b, c in ns_coefficients(ns_steps):
        A = X @ X.mT
        B = b * A + c * (A @ A) if c else b * A
        X = a * X + B @ X
    return X.mT if transposed else X


def normuon_scale(update: torch.Tensor, second_moment: torch.Tensor, beta2: float) -> torch.Tensor:
    """NorMuon: `update` (n, rows, cols) with each neuron's scale evened out, Frobenius norm kept.

    `second_moment` is the running mean of squares, (n, rows, 1) for tall or square matrices, (n, 1, cols) for
    wide ones (the shorter side is reduced, as in the paper); it is updated in place."""
    reduce_dim = -1 if second_moment.size(-1) == 1 else -2
    u = update.to(torch.promote_types(update.dtype, torch.float32))  # bf16 updates are scaled in fp32
    mean_sq = u.square().mean(dim=reduce_dim, keepdim=True)
    second_moment.lerp_(mean_sq.to(second_moment.dtype), 1 - beta2)
    scaled = u * second_moment.to(u.dtype).clamp_min(1e-10).rsqrt()
    before = u.norm(dim=(-2, -1), keepdim=True)
    after = scaled.norm(dim=(-2, -1), keepdim=True).clamp_min(1e-10)
    return (scaled * (before / after)).to(update.dtype)


def second_moment_shape(shape: torch.Size | tuple) -> tuple[int, int]:
    rows, cols = shape[-2], shape[-1]
    return (rows, 1) if rows >= cols else (1, cols)


class MuonAdamW(torch.optim.Optimizer):
    def __init__(self, param_groups: list[dict], ortho_dtype: torch.dtype = torch.bfloat16):
        for group in param_groups:
            if group.get("kind") not in ("muon", "adamw"):
                raise ValueError(f"Param group {group.get('name')!r} needs kind 'muon' or 'adamw'.")
            group.setdefault("initial_lr", group["lr"])
            group.setdefault("initial_weight_decay", group.get("weight_decay", 0.0))
            group.setdefault("step", 0)
            if group["kind"] == "muon":
                shapes = {tuple(p.shape) for p in group["params"]}
                if len(shapes) != 1 or len(next(iter(shapes))) != 2:
                    raise ValueError(f"Muon group {group.get('name')!r} must hold 2-D matrices of one shape, got {shapes}.")
                group.setdefault("normuon_beta2", 0.0)
                group.setdefault("cautious", False)
        super().__init__(param_groups, defaults={})
        self.ortho_dtype = ortho_dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["kind"] == "muon":
                self._muon_step(group)
            else:
                self._adamw_step(group)
            group["step"] += 1
        return loss

    def _muon_step(self, group: dict) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        momentum = muon_momentum(group["step"], group["momentum_warmup_steps"], group["final_momentum"])
        group["momentum"] = momentum  # for logging
        grads = [p.grad for p in params]
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
        bufs = [state["momentum_buffer"] for state in states]
        torch._foreach_lerp_(bufs, grads, 1 - momentum)  # buf = m * buf + (1 - m) * g
        nesterov = torch._foreach_lerp(grads, bufs, momentum)  # look ahead: (1 - m) * g + m * buf
        updates = orthogonalize(torch.stack(nesterov), group["ns_steps"], self.ortho_dtype)
        beta2 = group["normuon_beta2"]
        if beta2:
            for p, state in zip(params, states):
                if "second_moment" not in state:
                    state["second_moment"] = torch.zeros(second_moment_shape(p.shape), device=p.device,
                                                        dtype=torch.promote_types(p.dtype, torch.float32))
            second = torch.stack([state["second_moment"] for state in states])
            updates = normuon_scale(updates, second, beta2)
            for state, row in zip(states, second.unbind(0)):
                state["second_moment"].copy_(row)
        rows, cols = params[0].shape
        lr = group["lr"] * max(1.0, rows / cols) ** 0.5
        wd = group["weight_decay"]
        for p, u in zip(params, updates.unbind(0)):
            u = u.to(p.dtype)
            if wd:
                decay = p * ((u * p) >= 0) if group["cautious"] else p
                p.sub_(decay, alpha=lr * wd)
            p.sub_(u, alpha=lr)

    def _adamw_step(self, group: dict) -> None:
        beta1, beta2 = group["betas"]
        t = group["step"] + 1
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad
            state = self.state[p]
            if "exp_avg" not in state:
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(g, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            if wd:
                p.mul_(1 - lr * wd)
            denom = (exp_avg_sq / bias2).sqrt_().add_(eps)
            p.addcdiv_(exp_avg, denom, value=-lr / bias1)
