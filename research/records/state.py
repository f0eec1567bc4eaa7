"""The state of a run, derived from its ledger and run repository alone, so a resumed run picks up exactly
where the killed one stopped: the current block, the best so far, the noise level, what was tried.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from research.judging.verdict import baseline_best, noise_sigma
from research.judging.pairing import incumbent
from research.records.ledger import status_counts
from research.records.runrepo import RunRepo
from research.proposing.space import Space, canonical_text


@dataclass
class RunState:
    rows: list[dict]
    hparams: dict            # the block every new experiment starts from (the last keep's, or the baseline's)
    base_sha: str            # its commit in the run repository
    best_val_bpb: float | None
    baseline_val_bpb: float | None
    sigma: float | None
    tried: set = field(default_factory=set)

    @property
    def counts(self) -> dict:
        return status_counts(self.rows)


def tried_changes(rows: list[dict], space: Space) -> set:
    """(base_sha, key, canonical value) of every proposal already run, for duplicate detection."""
    tried = set()
    for row in rows:
        key = row.get("key")
        if not key or key not in space or row.get("value") is None:
            continue
        try:
            tried.add((row.get("baseline_sha"), key, canonical_text(space[key], row["value"])))
        except (TypeError, ValueError):
            continue
    return tried


def derive_state(rows: list[dict], repo: RunRepo, baseline_hparams: dict, space: Space) -> RunState:
    rows = sorted(rows, key=lambda row: row["exp"])
    baseline_values = [row["val_bpb"] for row in rows if row.get("status") == "baseline"]
    keeps = [row for row in rows if row.get("status") == "keep"]
    if keeps:
        hparams = yaml.safe_load(repo.show(keeps[-1]["exp"]))
        base_sha = keeps[-1]["commit_sha"]
    else:
        hparams, base_sha = baseline_hparams, repo.tag_sha(0)
    # The best is the incumbent's mean over its runs, as research.judging.verdict judges it (one owner of that fact).
    current = incumbent(rows).mean
    baseline_value = baseline_best(baseline_values)
    return RunState(
        rows=rows,
        hparams=hparams,
        base_sha=base_sha,
        best_val_bpb=current if current is not None else baseline_value,
        baseline_val_bpb=baseline_value,
        sigma=noise_sigma(baseline_values),
        tried=tried_changes(rows, space),
    )


def hparams_yaml(hparams: dict) -> str:
    return yaml.safe_dump(hparams, sort_keys=False, default_flow_style=False)
