"""Propose task: ask the proposer for ONE validated change, once per experiment.

The answer is written to EXP_DIR/proposal.json before anything else happens, and the Prefect task is cached
on (run id, experiment, base commit, block), so a resumed run re-uses it: the LLM is never asked twice for
the same experiment. Transient LLM errors are retried by Prefect (visible as retries in the UI); an invalid
answer after the proposer's bounded re-asks becomes a `skip` record with the reason.
"""
from __future__ import annotations

import json

from prefect import task

from common.atomic import atomic_write_json
from research.errors import InvalidProposal
from research.proposing.proposers import make_proposer
from research.proposing.proposal_record import ProposalRecord
from research.proposing.proposers.base import ProposalContext, ProposerTransient
from training.run_config import ExperimentDir

def propose_change(exp_dir: str, proposer_cfg: dict, context: ProposalContext) -> ProposalRecord:
    path = ExperimentDir(exp_dir).proposal
    if path.is_file():
        return ProposalRecord.from_json(json.loads(path.read_text()))
    proposer = make_proposer(proposer_cfg)
    try:
        record = ProposalRecord.accepted(proposer.propose(context), proposer.name)
    except InvalidProposal as exc:
        record = ProposalRecord.skipped(exc, proposer.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record.to_json())
    return record


def _retry_transient(task, task_run, state) -> bool:
    """Retry only errors that may pass (rate limits, overload, timeouts); a bad key must stop at once."""
    try:
        state.result()
    except ProposerTransient:
        return True
    except Exception:  # noqa: BLE001 - anything else is final
        return False
    return False


@task(
    name="propose",
    task_run_name="exp-{exp} propose",
    retries=3,
    retry_delay_seconds=[10, 30, 90],
    retry_condition_fn=_retry_transient,
    persist_result=True,
    cache_key_fn=lambda context, parameters: parameters["cache_key"],
)
def propose_task(exp: int, exp_dir: str, proposer_cfg: dict, context: ProposalContext, cache_key: str) -> ProposalRecord:
    from prefect.logging import get_run_logger

    from tasks.run_log import proposal_line

    record = propose_change(exp_dir, proposer_cfg, context)
    get_run_logger().info(proposal_line(record))  # the UI's Logs tab: the change, its description and reasoning
    return record
