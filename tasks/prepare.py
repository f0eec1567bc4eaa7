"""Prepare task: data.prepare.prepare_data (the dataset's DVC stages, then the run's copy verified) as a Prefect
task, with the retries a download may need."""
from __future__ import annotations

from prefect import task

from data.errors import DataCorrupt
from data.prepare import prepare_data


def _retry_unless_corrupt(task, task_run, state) -> bool:
    """A corrupt file stays corrupt: stop at once with its sentence instead of 20 s of retries."""
    try:
        state.result()
    except DataCorrupt:
        return False
    except Exception:  # noqa: BLE001 - a download or DVC failure may pass
        return True
    return False


# Downloads can fail transiently; DVC re-runs only the stages whose outputs are missing or stale.
prepare_task = task(name="prepare", task_run_name="prepare-{dataset}", retries=2, retry_delay_seconds=10,
                    retry_condition_fn=_retry_unless_corrupt)(prepare_data)
