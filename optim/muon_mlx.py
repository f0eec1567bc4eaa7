"""MuonAdamW for MLX: the algorithm of optim/muon.py (read its docstring for the why), on GPTMLX.

Groups, LRs, width scaling, momentum warmup, orthogonalisation coefficients, NorMuon, cautious weight decay
and the schedules are the torch optimizer's, taken from the same functions and constants, so both backends
train the same way. Usage:
    opt = MuonAdamWMLX(model, optim_hparams, ortho_dtype)
    loss, grads = nn.value_and_grad(model, loss_fn)(...)
    apply_schedule(opt.param_groups, progress, schedule)   # optim.schedule: live lr and weight decay
    opt.update(model, grads)
    mx.eval(model.parameters(), opt.state)   # MLX is lazy: evaluate once per step
"""

from __future__ import annotations

import mlx.core as mx
from mlx.utils import tree_flatten

from models.gpt_mlx import set_parameter
from optim import param_group_specs
from optim.muon import NORMALISE_EPS, ns_coefficients, second_moment_shape
from optim.schedule import muon_momentum


def orthogonalize(G: mx.array, ns_steps: int, dtype=mx.bfloat16) -> mx.array:
    """optim.muon.orthogonalize in MLX: G (..., rows, cols) -> approximately U V^T."""
    X = G.astype(dtype)
    transposed = X.shape[-2] > X.shape[-1]
    if transposed:
        X = X.swapaxes(-1, -2)
    fro = mx.sqrt(mx.sum(mx.square(X.astype(mx.float32)), axis=(-2, -1), keepdims=True))
    X = (X / (fro * 1.02 + NORMALISE_EPS)).astype(dtype)
    for a, b, c in ns_coefficients(ns_steps):
        A = X @ X.swapaxes(-1, -2)
        B = b * A + c * (A @ A) if c else b * A
        X = a * X + B @ X
    return X.swapaxes(-1, -2) if transposed else X


def normuon_scale(update: mx.array, second_moment: mx.array, beta2: float) -> tuple[mx.array, mx.array]:
    """optim.muon.normuon_scale in MLX (functional: returns the scaled update and the new second moment)."""
    reduce_axis = -1 if second_moment.shape[-1] == 1 else -2
    u = update.astype(mx.float32)
    mean_sq = mx.mean(mx.square(u), axis=reduce_axis, keepdims=True)
    second_moment = beta2 * second_moment + (1 - beta2) * mean_sq
    scaled = u * mx.rsqrt(mx.maximum(second_moment, 1e-10))
    before = mx.sqrt(mx.sum(mx.square(u), axis=(-2, -1), keepdims=True))
    after = mx.maximum(mx.sqrt(mx.sum(mx.square(scaled), axis=(-2, -1), keepdims=True)), 1e-10)
    return (scaled * (before / after)).astype(update.dtype), second_moment


class MuonAdamWMLX:
    def __init__(self, model, optim_hparams: dict, ortho_dtype=mx.bfloat16):
        params = dict(tree_flatten(model.parameters()))
        self.ortho_dtype = ortho_dtype
        self.param_groups: list[dict] = param_group_specs(
            model.param_groups(), lambda name: tuple(params[name].shape), optim_hparams, model.config.n_embd)
        for group in self.param_groups:
            group["step"] = 0
        self.state: dict[str, dict[str, mx.array]] = {}

    def update(self, model, grads) -> None:
        """One optimizer step: new parameters are set on `model` (lazily; mx.eval them after)."""
        params = dict(tree_flatten(model.parameters()))
        grads = dict(tree_flatten(grads))
        for group in self.param_groups:
            names = [n for n in group["params"] if n in grads]
            if names:
                step = self._muon if group["kind"] == "muon" else self._adamw
                for name, value in step(group, names, params, grads).items():
                    set_parameter(model, name, value)
            group["step"] += 1

    def _muon(self, group, names, params, grads) -> dict[str, mx.array]:
        m = muon_momentum(group["step"], group["momentum_warmup_steps"], group["final_momentum"])
        group["momentum"] = m
        nesterov = []
        for name in names:
            g = grads[name]
            buf = self.state.setdefault(name, {}).get("momentum_buffer", mx.zeros_like(g))
            buf = m * buf + (1 - m) * g
            self.state[name]["momentum_buffer"] = buf
            nesterov.append((1 - m) * g + m * buf)
        updates = orthogonalize(mx.stack(nesterov), group["ns_steps"], self.ortho_dtype)
        if group["normuon_beta2"]:
            shape = second_moment_shape(params[names[0]].shape)
            second = mx.stack([self.state[n].get("second_moment", mx.zeros(shape)) for n in names])
            updates, second = normuon_scale(updates, second, group["normuon_beta2"])
            for i, name in enumerate(names):
                self.state[name]["second_moment"] = second[i]
        rows, cols = params[names[0]].shape
        lr = group["lr"] * max(1.0, rows / cols) ** 0.5
        wd = group["weight_decay"]
        out = {}
        for i, name in enumerate(names):
            p, u = params[name], updates[i].astype(params[name].dtype)
            if wd:
                mask = (u * p) >= 0 if group["cautious"] else 1.0
                p = p - lr * wd * p * mask
            out[name] = p - lr * u
        return out

    def _adamw(self, group, names, params, grads) -> dict[str, mx.array]:
        beta1, beta2 = group["betas"]
        t = group["step"] + 1
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        out = {}
        for name in names:
            p, g = params[name], grads[name]
            state = self.state.setdefault(name, {})
            exp_avg = beta1 * state.get("exp_avg", mx.zeros_like(g)) + (1 - beta1) * g
            exp_avg_sq = beta2 * state.get("exp_avg_sq", mx.zeros_like(g)) + (1 - beta2) * mx.square(g)
            state["exp_avg"], state["exp_avg_sq"] = exp_avg, exp_avg_sq
            if wd:
                p = p * (1 - lr * wd)
            out[name] = p - (lr / bias1) * exp_avg / (mx.sqrt(exp_avg_sq / bias2) + eps)
        return out
