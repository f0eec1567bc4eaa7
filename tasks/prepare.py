"""Prepare task: make sure the dataset's corpus, tokenizer and shards exist and match their manifest."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from data import layout
from data.errors import DataCorrupt
from data.prepare import prepare_dataset
from data.shards import data_version, verify_shards

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def prepare_data(dataset: str, data_dir: str) -> dict:
    """Run the DVC stages for `dataset` (a no-op when up to date) and say where its files are."""
    prepare_dataset(dataset, root=str(PROJECT_ROOT))
    base = Path(data_dir) / dataset
    shard_dir = base / "shards"
    if shard_dir.resolve() != layout.shard_dir(dataset, PROJECT_ROOT).resolve():
        # prepare_dataset verified the DVC outputs under the project; a paths.data_dir elsewhere is what the run
        # trains on, so it is checked too (a flipped byte there went unnoticed before).
        verify_shards(shard_dir, base / "tokenizer")
    return {"dataset": dataset, "shard_dir": str(shard_dir), "tokenizer_dir": str(base / "tokenizer"),
            "data_version": data_version(shard_dir)}


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
@task(name="prepare", task_run_name="prepare-{dataset}", retries=2, retry_delay_seconds=10,
      retry_condition_fn=_retry_unless_corrupt)
def prepare_task(dataset: str, data_dir: str) -> dict:
    return prepare_data(dataset, data_dir)
