"""Record task: experiment.record's row, as a Prefect task run, with the verdict in its log and the run's results,
report and proposal as Prefect artifacts. It judges nothing itself.
"""
from __future__ import annotations

from pathlib import Path

from prefect import task

from experiment.record import ExperimentFacts, record_experiment, write_run_report
from research.judging.verdict import Decision, Trained
from research.proposing.proposal_record import ProposalRecord
from research.records.layout import RunLayout
from research.records.ledger import Ledger
from tasks.artifacts import artifact_key


def publish_artifacts(run_dir: str, tag: str, proposal: ProposalRecord | None) -> None:
    """Prefect UI: the results table, the report and this proposal's reasoning (inside a flow run only)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = Ledger(RunLayout(run_dir).results).rows()
    columns = ("exp", "status", "val_bpb", "paired_delta", "paired_se", "paired_seeds", "change", "description",
               "verdict", "mfu", "error")
    table = [{k: row.get(k) for k in columns}
             for row in rows]
    create_table_artifact(key=artifact_key(tag, "results"), table=table, description=f"results.tsv of run {tag}")
    report_md, _ = write_run_report(Path(run_dir))
    create_markdown_artifact(key=artifact_key(tag, "report"), markdown=report_md.read_text(), description=f"report of run {tag}")
    if proposal and proposal.ok:
        change = proposal.change
        create_markdown_artifact(markdown=f"### {change.text}\n\n**{change.description}**\n\n{change.reasoning}",
                                 description="proposal")


@task(name="record", task_run_name="exp-{facts.exp} record")
def record_task(run_dir: str, tag: str, facts: ExperimentFacts, decision: Decision, trained: Trained,
                run_info: dict) -> dict:
    row = record_experiment(run_dir, facts, decision, trained, run_info)
    from prefect.logging import get_run_logger

    from tasks.run_log import verdict_line

    get_run_logger().info(verdict_line(facts.exp, decision))  # the UI's Logs tab: the verdict and the rule's reason
    publish_artifacts(run_dir, tag, facts.proposal)
    return row
