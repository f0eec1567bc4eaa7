"""What a run logs to Prefect with the project's default settings: INFO lines reach the API (the UI's Logs tab),
the console shows warnings only. The browser test (tests/test_operate_server.py) checks the same end to end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from research.judging.verdict import Decision
from research.proposing.proposal_record import ProposalRecord
from research.proposing.space import Change
from common.paths import PROJECT_ROOT
from tasks.run_log import proposal_line, verdict_line

# A fresh interpreter with none of the caller's Prefect settings: what `autoresearch` sets is all there is.
PROBE = textwrap.dedent("""
    import json, logging, sys, uuid
    from prefect_ops.prefect_env import configure_prefect_defaults
    configure_prefect_defaults()
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import set_api_log_sink
    setup_logging()
    sent = []
    set_api_log_sink(sent.append)
    run = {"flow_run_id": str(uuid.uuid4()), "task_run_name": "exp-1 train"}  # what a task run's logger adds
    logging.getLogger("prefect.task_runs").info("training line at info", extra=run)
    logging.getLogger("prefect.task_runs").warning("something at warning", extra=run)
    logging.getLogger("EventsWorker").warning("Still processing items: 1 items remaining...")  # exit progress
    logging.getLogger("EventsWorker").error("Service 'EventsWorker' failed with 1 pending items.")
    print(json.dumps([(log["level"], log["message"]) for log in sent]))
""")


def test_default_settings_send_info_to_the_api_and_warnings_only_to_the_console():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    sent = json.loads(done.stdout.strip().splitlines()[-1])
    assert [20, "training line at info"] in sent and [30, "something at warning"] in sent
    assert "Logging error" not in done.stderr, done.stderr
    assert "Task run 'exp-1 train' - something at warning" in done.stderr  # the console still shows warnings...
    assert "training line at info" not in done.stderr  # ...and stays as quiet as before at INFO
    # Prefect's senders' note while they drain at exit stays off the console (it landed under a refused run's
    # one-sentence error); their failures still show.
    assert "Still processing items" not in done.stderr and "failed with 1 pending items" in done.stderr


def test_a_proposal_line_carries_the_change_its_description_and_reasoning():
    change = Change("optim.matrix_lr", 0.05, "hparams.optim.matrix_lr=0.05", "raise the Muon LR",
                    "the last two\nraises helped")
    line = proposal_line(ProposalRecord("ok", "local", change))
    assert line == ("local proposes optim.matrix_lr=0.05: raise the Muon LR | reasoning: the last two raises helped")
    skipped = proposal_line(ProposalRecord("skip", "claude", reason="out of bounds three times"))
    assert skipped == "claude gave no valid change (skip): out of bounds three times"


def test_a_verdict_line_carries_the_status_and_the_rules_reason():
    decision = Decision("discard", "paired gain -0.001000: SPRT rejects; discarded.")
    assert verdict_line(7, decision) == "exp 7: DISCARD: paired gain -0.001000: SPRT rejects; discarded."
