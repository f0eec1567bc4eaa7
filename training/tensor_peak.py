"""The measured peak of the training process's CPU tensors, over its first optimizer steps.

A CPU has no torch.cuda.max_memory_allocated, and the process's peak resident set (hardware/cpu.py) holds the
interpreter and torch's libraries besides the tensors. This meter asks the allocator itself: torch's profiler,
with profile_memory, receives every CPU allocation and free together with the allocator's running total since
profiling began (`total_allocated`). The tensors already alive when it starts (weights, buffers, the batch, the
speed probe's inputs) are counted once from the garbage collector's view of live tensors, each storage once.
Peak = those + the highest running total. It is measured over the first `steps` optimizer steps only (the
profiler slows a step): the second one runs with the optimizer's state allocated, as every later step does,
and a training's peak is reached there (every later step repeats its allocations).
"""
from __future__ import annotations

import gc
from typing import Callable


def live_tensor_bytes() -> int:
    """Bytes of the distinct storages of every CPU tensor the garbage collector tracks."""
    import torch

    seen: dict[int, int] = {}
    for obj in gc.get_objects():
        # type(), not isinstance(): the collector also lists weak proxies (torch.compile keeps some), and
        # isinstance asks a dead proxy for its class, which raises ReferenceError. Only plain tensors and
        # parameters hold memory: the fake and functional tensors torch.compile leaves behind hold none.
        if type(obj) in (torch.Tensor, torch.nn.Parameter) and obj.is_cpu:
            try:
                storage = obj.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
            except (RuntimeError, NotImplementedError):  # sparse or otherwise storage-less tensors
                continue
    return sum(seen.values())


def _highest_total(events) -> int:
    import torch

    cpu = torch.device("cpu")
    highest, stack = 0, list(events)
    while stack:
        event = stack.pop()
        fields = event.extra_fields
        if type(fields).__name__ == "_ExtraFields_Allocation" and fields.device == cpu:
            highest = max(highest, int(fields.total_allocated))
        stack.extend(event.children)
    return highest


class CPUTensorPeak:
    """`start()` before the loop freezes the garbage collector (it then no longer lists the frozen tensors),
    `wrap(step)` measures the first `steps` calls; `peak_bytes` is None until they ran."""

    @classmethod
    def for_device(cls, device) -> "CPUTensorPeak | None":
        """A meter for a training on the CPU; None elsewhere (a GPU's allocator counts its own peak)."""
        import torch

        return cls() if torch.device(device) == torch.device("cpu") else None

    def __init__(self, steps: int = 2):
        self.steps = steps
        self.baseline = 0
        self.peak_bytes: int | None = None
        self._calls = 0
        self._profiler = None

    def start(self) -> None:
        self.baseline = live_tensor_bytes()

    def wrap(self, step: Callable[[], float]) -> Callable[[], float]:
        def measured() -> float:
            if self._calls >= self.steps:
                return step()
            from torch.profiler import ProfilerActivity, profile

            if self._profiler is None:
                self._profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
                self._profiler.__enter__()
            try:
                return step()
            finally:
                self._calls += 1
                if self._calls >= self.steps:
                    self.stop()

        return measured

    def stop(self) -> None:
        """End the measurement (also when the training ends before `steps` steps)."""
        if self._profiler is None:
            return
        profiler, self._profiler = self._profiler, None
        profiler.__exit__(None, None, None)
        self.peak_bytes = self.baseline + _highest_total(profiler.profiler.kineto_results.experimental_event_tree())
