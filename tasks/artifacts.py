"""The progress plot in the Prefect UI, next to the results table and the report (tasks/record.py).

The UI runs in a browser that cannot read the orchestrator's disk, so the PNG travels inside the artifact as a
data URL (~50 KB); the description gives the file's path on the machine that ran the flow.
"""
from __future__ import annotations

import base64
from research.records.layout import RunLayout


def artifact_key(tag: str, suffix: str) -> str:
    """`<tag>-<suffix>` for every artifact of a run: keys allow lowercase letters, digits and dashes only."""
    key = "".join(ch if ch.isalnum() else "-" for ch in tag.lower()).strip("-") or "run"
    return f"{key}-{suffix}"


def publish_progress_plot(run_dir: str, tag: str) -> None:
    """Publish run_dir/progress.png (written by the decide step's report) as an image artifact."""
    from prefect.artifacts import create_image_artifact
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return  # outside a Prefect run (plain function tests): nowhere to publish
    plot = RunLayout(run_dir).plot
    if not plot.is_file():
        return
    data_url = "data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode("ascii")
    create_image_artifact(image_url=data_url, key=artifact_key(tag, "progress"),
                          description=f"run {tag}: val_bpb per experiment and best so far ({plot.resolve()})")
