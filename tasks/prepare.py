"""Prepare task: make sure the dataset's corpus, tokenizer and shards exist and match their manifest."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from data.prepare import prepare_dataset
from data.shards import data_version

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def prepare_data(dataset: str, data_dir: str) -> dict:
    """Run the DVC stages for `dataset` (a no-op when up to date) and say where its files are."""
    prepare_dataset(dataset, root=str(PROJECT_ROOT))
    base = Path(data_dir) / dataset
    shard_dir = base / "shards"
    return {"dataset": dataset, "shard_dir": str(shard_dir), "tokenizer_dir": str(base / "tokenizer"),
            "data_version": data_version(shard_dir)}


# Downloads can fail transiently; DVC re-runs only the stages whose outputs are missing or stale.
@task(name="prepare", task_run_name="prepare-{dataset}", retries=2, retry_delay_seconds=10)
def prepare_task(dataset: str, data_dir: str) -> dict:
    return prepare_data(dataset, data_dir)
