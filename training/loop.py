"""The budgeted optimisation loop every port shares, and everything around it that is not the framework's.

- `Budget`: a fixed number of seconds (the GPU presets), of FLOPs (the cpu preset: the same training whatever
  the machine's load), or of optimizer steps (tests). Time budgets count only optimizer steps: compilation and
  warm-up happen before the clock starts. A step is started only if the recent step time says it will finish
  inside the budget, so no optimizer step happens outside it. A FLOP budget becomes a step count once the model's
  FLOPs per token are known: a bigger model or batch gets fewer steps, as on an ideal machine with a time budget.
- `SpeedProbe`: the machine's speed, measured on a fixed workload between steps (research/judging/speed.py takes it out
  of the decisions).
- `budgeted_training`: schedule, budget, fault injection, loss checks, progress and the garbage collector. A port
  supplies its optimizer's param groups (plain dicts, whose live lr and weight decay this loop sets through
  optim.schedule.apply_schedule) and `step() -> loss`, one optimizer step over the full batch.
- `RunPlan`, `FirstStepFit`, `timed_warmup`: the set-up both ports do alike (batch split, loader, the first
  step's fit check, the warm-up outside the budget), so that torch_port.py and mlx_port.py differ only where
  the frameworks do.
- `TrainingFailure`: how a training ends when the orchestrator should record a `crash`: a short machine kind
  (nan, explosion, oom, budget, config, data, backend, error) and a one-sentence reason.
"""
from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

from data.loader import TrainLoader
from models.hparams import grad_accum_steps
from optim.schedule import apply_schedule
from training.faults import Fault
from training.metrics import training_metrics
from training.run_config import shard_dir


class TrainingFailure(RuntimeError):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def check_loss(loss: float, step: int, explosion_limit: float) -> None:
    """Stop on a non-finite loss or one far above the loss of a uniform guess (an exploded model)."""
    if not math.isfinite(loss):
        raise TrainingFailure("nan", f"the training loss became {loss} at step {step}")
    if loss > explosion_limit:
        raise TrainingFailure(
            "explosion", f"the training loss exploded to {loss:.3g} at step {step} (limit {explosion_limit:.3g})"
        )


def explosion_limit(vocab_size: int) -> float:
    # A model that predicts uniformly scores ln(V); twice that means training has diverged, not just stalled.
    return 2.0 * math.log(vocab_size)


BUDGET_KINDS = ("time", "flops", "steps")


@dataclass
class Budget:
    kind: str  # "time" | "flops" | "steps"
    seconds: float
    steps: int
    flops: float = 0.0  # kind=flops: training FLOPs (model FLOPs per token x tokens), turned into `steps` by resolve()
    # Exponential moving average of the step time, for predicting whether one more step fits.
    _step_seconds_ema: float | None = None

    @classmethod
    def from_config(cls, budget_cfg: dict) -> "Budget":
        kind = budget_cfg.get("kind", "time")
        if kind not in BUDGET_KINDS:
            raise ValueError(f"budget.kind must be one of {', '.join(BUDGET_KINDS)}, not {kind!r}.")
        seconds, steps = float(budget_cfg.get("seconds", 0)), int(budget_cfg.get("steps", 0))
        flops = float(budget_cfg.get("flops") or 0)
        if seconds < 0 or steps < 0 or flops < 0:  # a negative value is a mistake whichever kind is in use
            raise ValueError("budget.seconds, budget.steps and budget.flops must not be negative.")
        if kind == "time" and seconds <= 0:
            raise ValueError("budget.seconds must be positive for budget.kind=time.")
        if kind == "steps" and steps <= 0:
            raise ValueError("budget.steps must be positive for budget.kind=steps.")
        if kind == "flops" and not (flops > 0 and math.isfinite(flops)):
            raise ValueError("budget.flops must be a positive number for budget.kind=flops (e.g. budget.flops=2e14).")
        return cls(kind=kind, seconds=seconds, steps=steps if kind == "steps" else 0, flops=flops)

    def resolve(self, flops_per_token: float, tokens_per_step: int) -> None:
        """A FLOP budget's step count, once the model is built: at least one step."""
        if self.kind == "flops":
            self.steps = max(1, int(self.flops // (flops_per_token * tokens_per_step)))

    @property
    def counts_steps(self) -> bool:
        """True where the budget is a number of steps fixed before training (steps, or flops once resolved)."""
        return self.kind != "time"

    def progress(self, step: int, elapsed: float) -> float:
        """Fraction of the budget used, in [0, 1]; drives the LR schedule."""
        if self.counts_steps:
            return min(1.0, step / self.steps)
        return min(1.0, elapsed / self.seconds)

    def record_step(self, step_seconds: float) -> None:
        ema = self._step_seconds_ema
        self._step_seconds_ema = step_seconds if ema is None else 0.8 * ema + 0.2 * step_seconds

    def has_room(self, step: int, elapsed: float) -> bool:
        """True if another optimizer step fits in the budget."""
        if self.counts_steps:
            return step < self.steps
        predicted = self._step_seconds_ema or 0.0
        return elapsed + predicted <= self.seconds

    def check_step_fits(self, micro_batch_seconds: float, micro_batches: int) -> None:
        """Fail at once when a single optimizer step would outlast a whole time budget.

        Called after the first micro-batch of the first step. Without it a step of, say, 2,048 micro-batches
        runs until the orchestrator's deadline kills the process, minutes later, as an unexplained crash.
        """
        estimate = micro_batch_seconds * micro_batches
        if self.kind == "time" and micro_batches > 1 and estimate > self.seconds:
            raise TrainingFailure(
                "budget", f"one optimizer step would take about {estimate:.0f} s ({micro_batches} micro-batches of "
                          f"{micro_batch_seconds:.2f} s), more than the whole {self.describe()} budget; lower "
                          f"batch.total_batch_tokens")

    def describe(self) -> str:
        if self.kind == "flops":
            return f"{self.flops:.3g} FLOPs" + (f" ({self.steps} steps)" if self.steps else "")
        return f"{self.steps} steps" if self.kind == "steps" else f"{self.seconds:g} s"


class SpeedProbe:
    """The machine's speed while a training runs, on a workload no change of the block can alter: a fixed matmul
    (the port's `workload`, `flops` FLOPs, waited for) timed before the first step and then every `every_seconds`
    of training, outside the budget's clock. Its median rate is the run's `machine_speed` (GFLOP/s): a loaded CPU,
    a hot or throttled GPU score lower, whatever the block."""

    def __init__(self, workload: Callable[[], object], flops: float, every_seconds: float):
        self.workload, self.flops, self.every_seconds = workload, flops, every_seconds
        self.rates: list[float] = []
        self._next_at = 0.0

    def maybe_sample(self, elapsed: float) -> None:
        if self.every_seconds <= 0 or elapsed < self._next_at:
            return
        started = time.perf_counter()
        self.workload()
        seconds = time.perf_counter() - started
        if seconds > 0:
            self.rates.append(self.flops / seconds / 1e9)
        self._next_at = elapsed + self.every_seconds

    @property
    def gflops(self) -> float | None:
        """The median rate: one probe caught by a frequency step or a cold cache (idle CPU samples spread
        1,600-2,200 GFLOP/s here) must not move the run's figure."""
        return statistics.median(self.rates) if self.rates else None


class Progress:
    """A live bar on a terminal, throttled plain lines in a log: the orchestrator tails train.log, so plain
    lines must be informative on their own and not flood it."""

    def __init__(self, total_label: str, every_seconds: float = 5.0, stream=None):
        self.stream = stream or sys.stdout
        self.is_tty = self.stream.isatty()
        self.every_seconds = every_seconds
        self.total_label = total_label
        self._last_print = 0.0

    def update(self, step: int, progress: float, loss: float, tokens_per_second: float, elapsed: float) -> None:
        now = time.monotonic()
        line = (
            f"step {step:5d} | {100 * progress:5.1f}% of {self.total_label} | loss {loss:.4f} | "
            f"{tokens_per_second / 1e3:8.1f}k tok/s | {elapsed:6.1f}s"
        )
        if self.is_tty:
            width = 30
            filled = int(width * progress)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}")
            self.stream.flush()
        elif now - self._last_print >= self.every_seconds or step == 1:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_print = now

    def close(self) -> None:
        if self.is_tty:
            self.stream.write("\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        if self.is_tty:
            self.stream.write("\n")
        self.stream.write(text + "\n")
        self.stream.flush()


@dataclass
class LoopResult:
    steps: int
    training_seconds: float
    final_loss: float


def budgeted_training(step: Callable[[], float], param_groups: list[dict], budget: Budget, schedule: dict,
                      fault: Fault | None, vocab_size: int, tokens_per_step: int,
                      log_every_seconds: float, probe: SpeedProbe | None = None, tensor_peak=None) -> LoopResult:
    """Run optimizer steps until the budget is used. `step` must return the step's mean loss as a float,
    which forces the device to finish the step, so the clock measures real work. `probe` times the machine
    between steps, off the clock. `tensor_peak` (training.tensor_peak.CPUTensorPeak) measures the first steps'
    peak of live tensors where the device's allocator does not."""
    limit = explosion_limit(vocab_size)
    if tensor_peak is not None:  # before gc.freeze: frozen objects are no longer listed by the collector
        tensor_peak.start()
        step = tensor_peak.wrap(step)
    progress = Progress(budget.describe(), log_every_seconds)
    steps, elapsed, loss = 0, 0.0, float("nan")
    # Everything built so far (model, optimizer, compiled graphs) lives to the end: freezing it keeps the
    # collector from walking it again, and a full collection in the middle of a step stalls it (the reference
    # trainer measured ~500 ms). Collection stays on, for the short-lived objects of each step.
    gc.collect()
    gc.freeze()
    try:
        while budget.has_room(steps, elapsed):
            if probe is not None:
                probe.maybe_sample(elapsed)
            started = time.time()
            apply_schedule(param_groups, budget.progress(steps, elapsed), schedule)
            loss = step()
            steps += 1
            if fault:
                fault.trigger_process_fault(steps)
                loss *= fault.loss_factor(steps)
            check_loss(loss, steps, limit)
            step_seconds = time.time() - started
            budget.record_step(step_seconds)
            elapsed += step_seconds
            progress.update(steps, budget.progress(steps, elapsed), loss, steps * tokens_per_step / elapsed, elapsed)
    finally:
        progress.close()
        gc.unfreeze()
        if tensor_peak is not None:
            tensor_peak.stop()
    return LoopResult(steps, elapsed, loss)


@dataclass
class RunPlan:
    """What both ports read from config.json before building anything: the budget and the batch split."""

    cfg: dict
    budget: Budget
    seq_len: int
    device_batch: int
    accum: int  # micro-batches per optimizer step
    tensor_peak: object = None  # training.tensor_peak.CPUTensorPeak where the port measures the CPU's tensors

    @classmethod
    def from_config(cls, cfg: dict) -> "RunPlan":
        hp = cfg["hparams"]
        seq_len, device_batch = int(cfg["train"]["seq_len"]), int(hp["batch"]["device_batch_size"])
        return cls(cfg, Budget.from_config(cfg["budget"]), seq_len, device_batch,
                   grad_accum_steps(int(hp["batch"]["total_batch_tokens"]), device_batch, seq_len))

    @property
    def seed(self) -> int:
        return int(self.cfg["hparams"]["seed"])

    @property
    def tokens_per_step(self) -> int:
        return self.accum * self.device_batch * self.seq_len

    def loader(self) -> TrainLoader:
        return TrainLoader(shard_dir(self.cfg), batch_size=self.device_batch, seq_len=self.seq_len, seed=self.seed)

    def run(self, step: Callable[[], float], param_groups: list[dict], vocab_size: int, flops_per_token: float,
            probe: SpeedProbe | None = None) -> LoopResult:
        """budgeted_training with this run's schedule, fault (tests only), log interval and FLOP budget."""
        self.budget.resolve(flops_per_token, self.tokens_per_step)
        return budgeted_training(step, param_groups, self.budget, self.cfg["hparams"]["schedule"],
                                 Fault.from_config(self.cfg.get("fault")), vocab_size, self.tokens_per_step,
                                 float(self.cfg["train"].get("log_every_seconds", 5.0)), probe, self.tensor_peak)

    def speed_probe(self, workload: Callable[[], object], flops: float) -> SpeedProbe:
        """A SpeedProbe at this run's interval (train.speed_probe_seconds; 0 turns it off)."""
        return SpeedProbe(workload, flops, float(self.cfg["train"].get("speed_probe_seconds", 5.0)))

    def metrics(self, result: LoopResult, adapter, flops: dict[str, float], num_params: int, warmup_seconds: float,
                started: float, extra: dict, probe: SpeedProbe | None = None) -> dict:
        """The metrics.json record, with what the adapter knows of the device (peak FLOPS, memory, name) and the
        machine's measured speed."""
        if probe is not None:
            extra = {**extra, "machine_speed": probe.gflops, "machine_speed_samples": len(probe.rates)}
        # The measured peak of live tensors, what training.fit predicts: the CPU meter's, else the device
        # allocator's (torch.cuda.max_memory_allocated on CUDA and ROCm, reset after the warm-up).
        measured = self.tensor_peak.peak_bytes if self.tensor_peak is not None else adapter.peak_memory_bytes()
        extra = {**extra, "peak_tensor_gb": measured / 1e9 if measured else None}
        return training_metrics(
            result, tokens_per_step=self.tokens_per_step, **flops, peak_flops=adapter.peak_flops(),
            peak_memory_bytes=adapter.peak_memory_bytes(), num_params=num_params, warmup_seconds=warmup_seconds,
            started=started, backend=adapter.name, device_name=adapter.device_name(), extra=extra)


class FirstStepFit:
    """Budget.check_step_fits on the first micro-batch of the run, once: `wait` finishes the device's queued work
    first (a synchronize, or MLX's lazy eval), so the time is honest."""

    def __init__(self, budget: Budget, accum: int):
        self.budget, self.accum, self.checked = budget, accum, False

    def check(self, micro_batch_started: float, wait: Callable[[], object]) -> None:
        if self.checked:
            return
        wait()
        self.budget.check_step_fits(time.time() - micro_batch_started, self.accum)
        self.checked = True


def timed_warmup(warm_up: Callable[[], object], adapter) -> float:
    """Seconds of the warm-up (compilation, graph building) that runs before the budget's clock; the peak
    memory is measured from after it."""
    started = time.time()
    warm_up()
    seconds = time.time() - started
    adapter.reset_peak_memory()
    return seconds
