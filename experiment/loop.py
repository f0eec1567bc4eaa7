"""A run's experiments, one after another (or a round at a time with research.parallel) until the ledger holds
`research.max_experiments` rows or a stop condition. Everything it reads is on disk, so it resumes where a
killed run stopped. The research flow runs it on Prefect's steps; bench/surrogate_replay.py on a surrogate's."""
from __future__ import annotations

from experiment.lifecycle import ExperimentLifecycle
from experiment.rounds import clear_round, open_round, run_round, start_round
from research.errors import ResearchStopped
from research.judging.verdict import check_baseline, check_stop
from research.records.ledger import Ledger
from research.records.state import derive_state


def run_experiments(life: ExperimentLifecycle, ledger: Ledger) -> None:
    cfg, run_dir, repo, space = life.cfg, life.run_dir, life.repo, life.space
    max_experiments = int(cfg["research"]["max_experiments"])
    parallel = max(1, int(cfg["research"].get("parallel") or 1))
    while True:
        rows = ledger.rows()
        if len(rows) >= max_experiments:
            clear_round(run_dir)
            return
        check_baseline(rows)
        stop = check_stop(rows, int(cfg["decide"]["max_consecutive_crashes"]))
        if stop:
            raise ResearchStopped(stop)
        exp = ledger.next_exp()
        # A round cut short by a crash is finished as that round (same members, same starting point), even
        # if the run is resumed with another research.parallel.
        pending = open_round(run_dir, exp)
        if pending is not None:
            first, members = pending
            members = [m for m in members if m < max_experiments]
            start = derive_state([row for row in rows if row["exp"] < first], repo, cfg["hparams"], space)
            run_round(life, ledger, first, members, start)
        elif parallel == 1:
            life.run(exp, derive_state(rows, repo, cfg["hparams"], space))
        else:
            baselines_left = max(0, int(cfg["decide"]["baseline_repeats"]) - exp)
            size = min(parallel, max_experiments - len(rows), baselines_left or parallel)
            members = list(range(exp, exp + size))
            start = derive_state(rows, repo, cfg["hparams"], space)
            start_round(run_dir, exp, members)
            run_round(life, ledger, exp, members, start)
