"""One training per device at a time, also across flows running at once, through Prefect global concurrency
limits: one limit per device (`autoresearch-gpu-0`, `autoresearch-gpu-1`, ... or `autoresearch-cpu`), each
with one slot, created on first use.

A training takes whichever device is free: it tries each device's limit without waiting, and polls while
all are busy. The device it got reaches the training process through the variable its backend adapter names
(`visible_devices_env`: CUDA_VISIBLE_DEVICES, ROCm's HIP_VISIBLE_DEVICES), so the process only ever sees that
one device.

Limits need a Prefect server that outlives the flow (`slots.enabled: auto` turns them on only when
PREFECT_API_URL is set): with the temporary per-command server, a flow killed by kill -9 would leave its
slot taken in the shared database, and the resumed run would wait forever. On a real server a held slot is
a lease: a dead holder's slot is given back when the lease runs out (`LEASE_SECONDS`).

Without limits (slots off), trainings of one process still take one GPU each: an in-process claim per
device, so a parallel round of K never stacks its trainings on the first GPU. Such a round may not ask for
more trainings than there are GPUs (`check_parallel_fits`); with limits on, extra trainings wait for a
device instead.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from hardware import get_adapter
from research.errors import ConfigurationError
from training.launch import child_env
from training.run_config import ExperimentDir

LIMIT_PREFIX = "autoresearch"
SCOPE_ENV = "AUTORESEARCH_SLOT_SCOPE"   # per-host limit names on a pool of several machines
LEASE_SECONDS = 60.0                    # renewed while held; a crashed holder frees its slot within this
POLL_SECONDS = 1.0

# Slot names taken by this process's own trainings while limits are off (threads of one parallel round).
_claimed: set[str] = set()
_claims_changed = threading.Condition()


@dataclass(frozen=True)
class Slot:
    name: str                                   # the global concurrency limit's name
    env: dict = field(default_factory=dict)     # what the child process needs to see only this device


def slots_enabled(setting) -> bool:
    """`auto`: on only with a real Prefect server (see the module docstring)."""
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() in ("true", "1", "yes", "on"):
        return True
    if str(setting).lower() in ("false", "0", "no", "off", "none"):
        return False
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def visible_gpu_ids(backend: str) -> list[str]:
    """The GPU ids this process may use: its own *_VISIBLE_DEVICES list if set, else every GPU torch sees."""
    adapter = get_adapter(backend)
    if adapter.visible_devices_env is None:
        return []
    listed = os.environ.get(adapter.visible_devices_env)
    if listed is not None:
        return [item.strip() for item in listed.split(",") if item.strip()]
    return adapter.device_ids()


def device_slots(backend: str, devices="auto", scope: str | None = None) -> list[Slot]:
    """One slot per GPU for CUDA/ROCm; one slot for the whole machine on every other backend (CPU, MPS, ...)."""
    scope = os.environ.get(SCOPE_ENV, "") if scope in (None, "") else scope
    prefix = f"{LIMIT_PREFIX}-{scope}-" if scope else f"{LIMIT_PREFIX}-"
    variable = get_adapter(backend).visible_devices_env
    if variable is None:
        return [Slot(f"{prefix}{backend}")]
    ids = visible_gpu_ids(backend) if devices in (None, "auto") else [str(item) for item in devices]
    if not ids:
        return [Slot(f"{prefix}{backend}")]
    return [Slot(f"{prefix}gpu-{device}", {variable: device}) for device in ids]


def resolve_slots(slots_cfg: dict | None, backend: str) -> dict:
    """The plain dict a task receives: {"enabled", "per_device", "slots": [{"name", "env"}]}.

    Resolved once in the flow (or on the pool worker's host), so tasks need neither Hydra nor detection.
    """
    slots_cfg = slots_cfg or {}
    enabled = slots_enabled(slots_cfg.get("enabled", "auto"))
    found = device_slots(backend, slots_cfg.get("devices", "auto"), slots_cfg.get("scope"))
    return {"enabled": enabled, "per_device": int(slots_cfg.get("per_device", 1)),
            "slots": [{"name": slot.name, "env": dict(slot.env)} for slot in found]}


def ensure_limits(names: list[str], per_device: int = 1) -> None:
    """Create the missing limits. An existing limit is left as it is: an operator may have changed it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_global_concurrency_limit_by_name(name)
                continue
            except ObjectNotFound:
                pass
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=per_device))
            except ObjectAlreadyExists:
                pass  # another flow created it between our read and our create


def _holder():
    """The task run holding the slot, so the UI's concurrency page says who has the device."""
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    return ConcurrencyLeaseHolder(type="task_run", id=context.task_run.id) if context else None


def _is_busy(exc: BaseException) -> bool:
    """A 423 Locked from the server: the limit is full. Anything else (server down, bad name) is a real error."""
    import httpx

    cause = exc.__cause__
    return isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423


def _try_acquire(stack: ExitStack, name: str) -> bool:
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import concurrency

    try:
        # max_retries=0: one attempt, so a busy device does not stop us from trying the next one.
        # strict: a missing limit must fail loudly, never run without a slot. A failed lease renewal,
        # though, must not kill a training that is half done.
        stack.enter_context(concurrency(name, occupy=1, max_retries=0, lease_duration=LEASE_SECONDS, strict=True,
                                        holder=_holder(), raise_on_lease_renewal_failure=False))
        return True
    except ConcurrencySlotAcquisitionError as exc:
        if _is_busy(exc):
            return False
        raise


def check_parallel_fits(parallel: int, resolved: dict) -> None:
    """Refuse a round of more trainings than this machine has GPUs when no limit queues them.

    Only GPU slots count (they carry a visible-devices variable); a CPU or Apple machine is one shared device
    on which parallel trainings simply share the cores.
    """
    gpus = [slot for slot in resolved.get("slots") or [] if slot.get("env")]
    if parallel > 1 and gpus and not resolved.get("enabled") and parallel > len(gpus):
        variable = next(iter(gpus[0]["env"]))
        raise ConfigurationError(
            f"research.parallel={parallel} needs {parallel} GPUs but this machine shows {len(gpus)} "
            f"({variable}={','.join(slot['env'][variable] for slot in gpus)}): set research.parallel={len(gpus)}, "
            "or start a Prefect server (slots.enabled) so that extra trainings wait for a free device.")


@contextmanager
def _local_claim(slots: list[dict]):
    """Take one GPU no other training of this process holds (waiting if all are taken); yields the slot."""
    gpus = [slot for slot in slots if slot.get("env")]
    if not gpus:
        yield None  # one shared device: nothing to hand out
        return
    with _claims_changed:
        while (chosen := next((slot for slot in gpus if slot["name"] not in _claimed), None)) is None:
            _claims_changed.wait()
        _claimed.add(chosen["name"])
    try:
        yield chosen
    finally:
        with _claims_changed:
            _claimed.discard(chosen["name"])
            _claims_changed.notify_all()


def _record(exp_dir: str | None, entry: dict) -> None:
    if exp_dir:
        with open(ExperimentDir(exp_dir).device_record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


@contextmanager
def device_slot(resolved: dict | None, phase: str = "train", exp_dir: str | None = None, log=None):
    """Hold one free device for the block; processes started inside see only that device.

    `resolved` is resolve_slots()'s dict; None or disabled runs the block at once (still recording the
    interval, so tests and humans can see what ran when), on a GPU of its own where there are several.
    """
    resolved = resolved or {"enabled": False, "slots": []}
    slots = resolved.get("slots") or []
    entry = {"phase": phase, "host": socket.gethostname(), "slot": None, "env": {}}
    with ExitStack() as stack:
        if resolved.get("enabled") and slots:
            ensure_limits([slot["name"] for slot in slots], int(resolved.get("per_device", 1)))
            waited_since, announced = time.monotonic(), False
            while True:
                chosen = next((slot for slot in slots if _try_acquire(stack, slot["name"])), None)
                if chosen is not None:
                    break
                if not announced and log:
                    log(f"waiting for a free device: {', '.join(slot['name'] for slot in slots)} all busy")
                    announced = True
                time.sleep(POLL_SECONDS)
            entry.update(slot=chosen["name"], env=chosen["env"], waited_seconds=round(time.monotonic() - waited_since, 3))
            stack.enter_context(child_env(chosen["env"]))
            if log and announced:
                log(f"got {chosen['name']} after {entry['waited_seconds']:.0f} s")
        elif slots:
            chosen = stack.enter_context(_local_claim(slots))
            if chosen is not None:
                entry.update(slot=chosen["name"], env=chosen["env"])
                stack.enter_context(child_env(chosen["env"]))
        entry["started_at"] = time.time()
        try:
            yield entry
        finally:
            entry["finished_at"] = time.time()
            _record(exp_dir, entry)
