"""LLM and training faults: each scenario, its expected outcome, and what happened. Prints Markdown tables.

The scenarios live here once; tests/test_reliability_llm.py and tests/test_reliability_training.py run the
same ones and assert that the observed outcome is the expected one.

    .venv/bin/python bench/faults.py            # both tables
    .venv/bin/python bench/faults.py --only llm
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import fake_anthropic as fa  # noqa: E402  (tests/fake_anthropic.py: the fake Messages server)
from training.run_config import ExperimentDir  # noqa: E402

SENTINEL = "sk-ant-SENTINEL-do-not-leak-4f9c2b"
GOOD = {"key": "optim.matrix_lr", "value": 0.05, "description": "raise the Muon LR", "reasoning": "underfit"}
GOOD2 = {"key": "optim.weight_decay", "value": 0.1, "description": "less decay", "reasoning": "small model"}
# Quick retries and timeouts, so a scenario takes seconds; the behaviour is the same as with the defaults.
FAST = {"max_retries": 2, "timeout": 1.0, "max_attempts": 3}


@dataclass
class LlmScenario:
    name: str
    replies: Callable[[], list]
    expected: str            # recovered | re-asked | skip | transient | stop
    words: str               # must appear in the reason or the error sentence: each scenario names its own
    tried: tuple = ()


# What a recovered scenario's text says: the accepted change, reached on the SDK's second HTTP call.
RECOVERED = "optim.matrix_lr=0.05 after 2 HTTP calls"


LLM_SCENARIOS = [
    LlmScenario("429 with retry-after", lambda: [fa.rate_limited(0.01), fa.tool_answer(GOOD)], "recovered", RECOVERED),
    LlmScenario("500 internal error", lambda: [fa.server_error(retry_after=0.01), fa.tool_answer(GOOD)], "recovered",
                RECOVERED),
    LlmScenario("529 overloaded", lambda: [fa.overloaded(retry_after=0.01), fa.tool_answer(GOOD)], "recovered",
                RECOVERED),
    LlmScenario("read timeout", lambda: [fa.slow(3.0), fa.tool_answer(GOOD)], "recovered", RECOVERED),
    LlmScenario("connection reset", lambda: [fa.connection_reset(), fa.tool_answer(GOOD)], "recovered", RECOVERED),
    LlmScenario("529 on every retry", lambda: [fa.overloaded(retry_after=0.01)] * 3, "transient",
                "overloaded (529 after 2 retries)"),
    # The SDK does not retry a 200 with a broken body; the propose task's retries (Prefect) do.
    LlmScenario("malformed JSON body", lambda: [fa.raw(200, "{not json", {"content-type": "application/json"})],
                "transient", "not valid JSON"),
    LlmScenario("tool input not an object", lambda: [fa.tool_answer("optim.matrix_lr=0.05"), fa.tool_answer(GOOD)],
                "re-asked", "was not a JSON object"),
    LlmScenario("no tool call", lambda: [fa.text_answer(), fa.tool_answer(GOOD)], "re-asked",
                "had no propose_change tool call"),
    LlmScenario("refusal", lambda: [fa.refusal(), fa.tool_answer(GOOD)], "re-asked", "was a refusal"),
    LlmScenario("max_tokens stop", lambda: [fa.max_tokens_stop(), fa.tool_answer(GOOD)], "re-asked",
                "cut off at max_tokens"),
    LlmScenario("two changes at once", lambda: [fa.tool_answers([GOOD, GOOD2]), fa.tool_answer(GOOD)], "re-asked",
                "had 2 tool calls"),
    LlmScenario("unknown key", lambda: [fa.tool_answer({**GOOD, "key": "optim.lr"}), fa.tool_answer(GOOD)],
                "re-asked", "optim.lr is not in the search space"),
    LlmScenario("out-of-range value", lambda: [fa.tool_answer({**GOOD, "value": 7.0}), fa.tool_answer(GOOD)],
                "re-asked", "must lie in [0.001, 0.3]; 7.0 is outside"),
    LlmScenario("duplicate of a tried change", lambda: [fa.tool_answer(GOOD), fa.tool_answer(GOOD2)], "re-asked",
                "already tried from this base", tried=(("optim.matrix_lr", "0.05"),)),
    LlmScenario("value ${oc.env:ANTHROPIC_API_KEY}", lambda: [
        fa.tool_answer({**GOOD, "key": "model.window_pattern", "value": "${oc.env:ANTHROPIC_API_KEY}"}),
        fa.tool_answer(GOOD)], "re-asked", "interpolations like ${...} are not allowed"),
    LlmScenario("invalid three times", lambda: [fa.tool_answer({**GOOD, "value": 7.0})] * 3, "skip",
                "must lie in [0.001, 0.3]; 7.0 is outside"),
    LlmScenario("401 bad key", lambda: [fa.unauthorized()], "stop", "rejected the key"),
    LlmScenario("403 no permission", lambda: [fa.forbidden()], "stop", "no permission"),
    LlmScenario("billing error", lambda: [fa.billing_error()], "stop", "out of credit"),
]


def llm_context(tried=()):
    import yaml

    from research.proposing.proposers import ProposalContext
    from research.proposing.space import load_space

    hparams = yaml.safe_load((ROOT / "conf/hparams/default.yaml").read_text())
    return ProposalContext(hparams=hparams, space=load_space(ROOT / "conf/space.yaml"), seq_len=2048, seed=0,
                           noise_sigma=0.002, best_val_bpb=1.0, baseline_val_bpb=1.0, tried=set(tried),
                           hardware="cpu", budget="steps budget: 5 steps")


def run_llm_scenario(scenario: LlmScenario, workdir: Path) -> dict:
    """Through tasks.propose.propose_change (what the propose task runs): the record, or the error it raised."""
    import yaml

    from research.errors import ProposerFatal
    from research.proposing.proposers import ProposerTransient
    from tasks.propose import propose_change

    cfg = yaml.safe_load((ROOT / "conf/proposer/claude.yaml").read_text())
    exp_dir = workdir / scenario.name.replace(" ", "_").replace("$", "").replace("{", "").replace("}", "")
    saved = os.environ.get("ANTHROPIC_API_KEY")
    os.environ["ANTHROPIC_API_KEY"] = SENTINEL
    started = time.monotonic()
    try:
        with fa.FakeAnthropic(scenario.replies()) as fake:
            try:
                record = propose_change(str(exp_dir), {**cfg, **FAST, "base_url": fake.base_url},
                                        llm_context(scenario.tried))
                error = None
            except (ProposerTransient, ProposerFatal) as exc:
                record, error = None, exc
            calls = len(fake.message_requests())
            bodies = json.dumps(fake.message_requests())
    finally:
        if saved is None:
            os.environ.pop("ANTHROPIC_API_KEY", None)
        else:
            os.environ["ANTHROPIC_API_KEY"] = saved
    if error is not None:
        outcome = "transient" if isinstance(error, ProposerTransient) else "stop"
        text = str(error)
    elif not record.ok:
        outcome, text = "skip", record.reason
    else:
        outcome = "re-asked" if record.attempts > 1 else "recovered" if calls > 1 else "first answer"
        text = "; ".join(record.rejected_reasons) or f"{record.change.text} after {calls} HTTP calls"
    proposal_file = ExperimentDir(exp_dir).proposal
    written = proposal_file.read_text() if proposal_file.is_file() else ""
    return {"scenario": scenario.name, "expected": scenario.expected, "outcome": outcome, "calls": calls,
            "text": text, "seconds": round(time.monotonic() - started, 1),
            "leaked": SENTINEL in text or SENTINEL in written or SENTINEL in bodies,
            "one_sentence": text.count(". ") == 0 and "\n" not in text,
            "ok": outcome == scenario.expected and scenario.words in text}


# --------------------------------------------------------------------------------------- training faults
@dataclass
class TrainingScenario:
    name: str
    fault: dict | None
    words: str                       # must appear in the recorded error
    deadline: float | None = 120.0
    silence: float | None = None     # kill after this long without output (the steps-budget watchdog)
    stop_after: float | None = None  # SIGSTOP the trainer this many seconds in (a hang without a fault entry)
    drop_checkpoint: bool = False    # delete the checkpoint before evaluation
    eval_silence: float = 120.0      # kill the evaluation after this long without output (the flow: 2 x grace)


TRAINING_SCENARIOS = [
    TrainingScenario("NaN loss at step 2", {"kind": "nan", "step": 2}, "became nan at step 2"),
    TrainingScenario("loss explosion at step 2", {"kind": "explode", "step": 2}, "exploded"),
    TrainingScenario("out of memory at step 2", {"kind": "oom", "step": 2}, "out of memory"),
    TrainingScenario("exit code 3 at step 2", {"kind": "exit", "step": 2, "code": 3}, "exited with code 3"),
    TrainingScenario("segfault at step 2", {"kind": "segfault", "step": 2}, "killed by SIGSEGV"),
    TrainingScenario("hang at step 2 (deadline 8 s)", {"kind": "hang", "step": 2}, "past its deadline", deadline=8.0),
    TrainingScenario("trainer SIGSTOPped (deadline 8 s)", None, "past its deadline", deadline=8.0, stop_after=2.0),
    TrainingScenario("hang at step 2 (silent 6 s, no deadline)", {"kind": "hang", "step": 2}, "no output for 6 s",
                     deadline=None, silence=6.0),
    TrainingScenario("checkpoint missing at evaluation", None, "checkpoint.npz is missing", drop_checkpoint=True),
    TrainingScenario("evaluation hang (silent 4 s)", {"kind": "eval_hang"}, "no output for 4 s", eval_silence=4.0),
]


def _stop_children_later(parent_pid: int, after: float, done: threading.Event) -> None:
    """SIGSTOP every training.entry child of this process `after` seconds in: a frozen trainer."""
    sys.path.insert(0, str(ROOT / "bench"))
    from chaos import process_tree

    if done.wait(after):
        return
    for pid in process_tree(parent_pid)[1:]:
        try:
            if b"training.entry" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGSTOP)
        except OSError:
            pass


def run_training_scenario(scenario: TrainingScenario, exp_dir: Path, run_dir: Path, exp: int) -> dict:
    """run_training -> run_evaluation -> record_experiment on a prepared experiment folder; returns the row."""
    from research.records.state import RunState
    from research.judging.verdict import Trained, judge_baseline, judge_failure
    from experiment.record import ExperimentFacts, failure_reason, record_experiment
    from tasks.evaluate import run_evaluation
    from tasks.train import run_training

    started = time.monotonic()
    done = threading.Event()
    if scenario.stop_after is not None:
        threading.Thread(target=_stop_children_later, args=(os.getpid(), scenario.stop_after, done),
                         daemon=True).start()
    try:
        metrics = run_training(str(exp_dir), scenario.deadline, silence_seconds=scenario.silence)
    finally:
        done.set()
    evaluation = None
    if metrics.get("status") == "ok":
        if scenario.drop_checkpoint:
            ExperimentDir(exp_dir).checkpoint.unlink()
        evaluation = run_evaluation(str(exp_dir), scenario.eval_silence)
    state = RunState(rows=[], hparams={}, base_sha="0" * 40, best_val_bpb=3.0, baseline_val_bpb=3.0, sigma=0.01)
    run_info = {"dataset": "tiny", "data_version": "test", "code_version": "test", "proposer": "local"}
    error = failure_reason(None, metrics, evaluation)
    # Every scenario should end in a crash row; one that trained fine is recorded as a plain run and fails the check.
    decision = judge_failure([], "crash", error) if error else judge_baseline([], 0, evaluation["val_bpb"])
    row = record_experiment(str(run_dir), ExperimentFacts(exp, state, None, metrics, evaluation, "", 0, time.time()),
                            decision, Trained({}), run_info)
    return {"scenario": scenario.name, "status": row["status"], "error": row.get("error") or "",
            "seconds": round(time.monotonic() - started, 1),
            "ok": row["status"] == "crash" and scenario.words in (row.get("error") or "")}


def training_tables(workdir: Path) -> list[dict]:
    from data.stages import run_corpus, run_shards, run_tokenizer  # noqa: F401  (the tiny dataset, as in conftest)
    from data import layout
    from data.shards import verify_shards
    from training_helpers import make_experiment
    import conftest

    dataset_root = workdir / "dataset"
    dataset_root.mkdir(parents=True, exist_ok=True)

    class Factory:
        def mktemp(self, name):
            return dataset_root

    dataset = conftest.tiny_dataset.__wrapped__(Factory())
    assert verify_shards(dataset["shard_dir"], dataset["tokenizer_dir"]) and layout
    results = []
    for number, scenario in enumerate(TRAINING_SCENARIOS, start=2):
        exp_dir = make_experiment(workdir, dataset, ["budget.steps=4"], scenario.fault, name=f"exp{number}")
        results.append(run_training_scenario(scenario, exp_dir, workdir / "run", number))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("llm", "training"))
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="autoresearch-faults-"))
    failed = 0
    if args.only in (None, "llm"):
        print("| LLM fault | expected | outcome | HTTP calls | reason / error (as recorded) | key leaked | held | s |")
        print("|---|---|---|---:|---|---|---|---:|")
        for scenario in LLM_SCENARIOS:
            r = run_llm_scenario(scenario, workdir / "llm")
            failed += not r["ok"] or r["leaked"]
            text = r["text"].replace("|", "\\|")
            print(f"| {r['scenario']} | {r['expected']} | {r['outcome']} | {r['calls']} | {text[:110]} | "
                  f"{'yes' if r['leaked'] else 'no'} | {'yes' if r['ok'] else 'NO'} | {r['seconds']} |")
        print()
    if args.only in (None, "training"):
        results = training_tables(workdir / "training")
        print("| training fault | status | recorded error | held | s |")
        print("|---|---|---|---|---:|")
        for r in results:
            failed += not r["ok"]
            error = r["error"].replace("|", "\\|")
            print(f"| {r['scenario']} | {r['status']} | {error[:120]} | {'yes' if r['ok'] else 'NO'} | {r['seconds']} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
