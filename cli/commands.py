"""What each `autoresearch` subcommand does; cli/main.py only parses arguments and maps errors."""
from __future__ import annotations

import json
import time
from pathlib import Path

from flows.compose import compose, resolve_path
from cli.preflight import check_before_training, check_suite
from prefect_ops.server_reaper import tie_temporary_server_to_us
from research.records.layout import RunLayout


def data_dir(cfg: dict) -> Path:
    return resolve_path(cfg["paths"]["data_dir"])


def prepare_command(overrides: list[str]) -> int:
    from data.prepare import prepare_data

    cfg = compose(overrides, auto=False)
    name = cfg["dataset"]["name"]
    data = prepare_data(name, str(data_dir(cfg)))
    manifest = json.loads((Path(data["shard_dir"]) / "manifest.json").read_text())
    by_split: dict[str, list[int]] = {}
    for shard in manifest["shards"]:
        by_split.setdefault(shard["split"], []).append(int(shard["tokens"]))
    print(f"dataset: {name}")
    print(f"data_version: {data['data_version']}")
    print(f"vocab_size: {manifest['vocab_size']}")
    for split, tokens in sorted(by_split.items()):
        print(f"{split}: {len(tokens)} shards, {sum(tokens) / 1e6:.2f}M tokens")
    print(f"shards: {data['shard_dir']}")
    print(f"next: autoresearch train dataset={name}   (one training)  or  autoresearch run dataset={name}")
    return 0


def summary_lines(metrics: dict, evaluation: dict, depth: int) -> list[str]:
    def fmt(value, spec):
        return "" if value is None else format(value, spec)

    return [
        f"val_bpb: {fmt(evaluation.get('val_bpb'), '.6f')}",
        f"training_seconds: {fmt(metrics.get('training_seconds'), '.1f')}",
        f"total_seconds: {fmt(metrics.get('total_seconds', 0) + evaluation.get('eval_seconds', 0), '.1f')}",
        f"peak_memory_gb: {fmt(metrics.get('peak_memory_gb'), '.2f')}",
        # Two conventions, named by their keys: causal attention FLOPs (this project's), and the reference
        # trainer's 6 N + 12 h d T, which charges every query its whole window (training/metrics.py).
        f"mfu_percent: {fmt(metrics.get('mfu_percent'), '.2f')}",
        f"mfu_percent_full_attention: {fmt(metrics.get('mfu_percent_full_attention'), '.2f')}",
        f"total_tokens_M: {fmt(metrics.get('tokens', 0) / 1e6, '.2f')}",
        f"num_steps: {metrics.get('steps')}",
        # The machine's speed during the training (a fixed matmul, research/judging/speed.py): under a time budget the
        # run's verdicts take it out of val_bpb; under the cpu preset's FLOP budget val_bpb above is already the
        # figure they compare.
        f"machine_speed_gflops: {fmt(metrics.get('machine_speed'), '.1f')}",
        f"num_params_M: {fmt(metrics.get('num_params', 0) / 1e6, '.2f')}",
        f"depth: {depth}",
        f"backend: {metrics.get('backend')}",
        f"device: {metrics.get('device_name')}",
    ]


def train_command(overrides: list[str]) -> int:
    from data.prepare import prepare_data
    from hardware import detect
    from training.disk import ensure_room
    from training.launch import run_attached
    from training.run_config import ExperimentDir, training_config, write_training_config

    cfg = compose(overrides)
    check_before_training(cfg, checks=("hparams", "budget", "device", "dataset"))  # no proposer in one training
    detect(cfg.get("backend", "auto"))  # an unavailable backend fails here, in one sentence, before any work
    data = prepare_data(cfg["dataset"]["name"], str(data_dir(cfg)))
    exp_dir = resolve_path(cfg["paths"]["runs_dir"]) / "train" / time.strftime("%Y%m%d-%H%M%S")
    exp_dir.mkdir(parents=True, exist_ok=True)
    run_cfg = training_config(cfg, cfg["hparams"], cfg["hparams"]["seed"], data, cfg.get("fault"))
    write_training_config(exp_dir, run_cfg)
    ensure_room(exp_dir, run_cfg)  # its checkpoint must fit (it keeps it: one training, like the seed's train.py)
    print(f"training in {exp_dir} ({cfg['budget']['kind']} budget)")
    files = ExperimentDir(exp_dir)
    if run_attached("training.entry", exp_dir) != 0:
        metrics = json.loads(files.metrics.read_text()) if files.metrics.is_file() else {}
        print(f"error: training failed: {metrics.get('reason', 'see the output above')}")
        return 1
    if run_attached("training.evaluate", exp_dir) != 0:
        print("error: evaluation failed; see the output above")
        return 1
    metrics = json.loads(files.metrics.read_text())
    evaluation = json.loads(files.evaluation.read_text())
    print("---")
    print("\n".join(summary_lines(metrics, evaluation, metrics.get("depth", cfg["hparams"]["model"]["depth"]))))
    return 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_command(overrides: list[str]) -> int:
    import signal

    from flows.research import research_flow
    from research.judging.keep_line import noise_sentence
    from research.records.ledger import Ledger
    from research.reporting.report import results_table_markdown
    from research.records.run_settings import decide_settings

    # A bad override or value fails here in one sentence, before Prefect starts or anything is written or trained.
    check_before_training(compose(overrides))
    # SIGTERM ends the run like Ctrl-C: the training child is killed, the heartbeat says stopped, and the
    # same command resumes later. (SIGKILL cannot be caught; resume covers it too.)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tie_temporary_server_to_us()
    summary = research_flow(overrides=overrides)
    layout = RunLayout(summary["run_dir"])
    results = layout.results
    rows = Ledger(results).rows()
    print(results_table_markdown(rows, limit=50))
    print(noise_sentence(rows, decide_settings(layout.settings)))  # why a keep is rare: the noise and the line
    print(f"\nresults: {results}")
    print(f"report:  {summary.get('report')}")
    print(f"plot:    {summary.get('plot')}")
    return 0


def suite_command(overrides: list[str]) -> int:
    from flows.suite import SuiteIncomplete, summary_markdown, suite_flow

    check_suite(overrides)  # a bad override or value fails here, before Prefect starts its server
    tie_temporary_server_to_us()
    try:
        summary = suite_flow(overrides=overrides)
    except SuiteIncomplete as exc:
        print(f"error: {exc}")
        return 1
    print(summary_markdown(summary["name"], summary["date"], summary["datasets"]))
    return 0


def status_command(tag: str | None, overrides: list[str]) -> int:
    """Without a tag, every run under paths.runs_dir in one table; with one, that run in detail."""
    from research.reporting.run_overview import run_detail, runs_table

    cfg = compose(overrides, auto=False)
    runs_root = resolve_path(cfg["paths"]["runs_dir"])
    if tag:
        layout = RunLayout.of(runs_root, tag)
        if not (layout.heartbeat.is_file() or layout.results.is_file()):
            print(f"{tag}: no run at {layout.root}; is the tag right? `autoresearch status` lists the runs.")
            return 1
        print(run_detail(layout))
        return 0
    table = runs_table(runs_root)
    if len(table.splitlines()) <= 2:
        print(f"no runs under {runs_root}; start one with `autoresearch run`.")
        return 0
    print(table)
    return 0


def report_command(tag: str | None, overrides: list[str]) -> int:
    from experiment.record import write_run_report

    cfg = compose(overrides, auto=False)
    runs_root = resolve_path(cfg["paths"]["runs_dir"])
    if tag is None:
        ledgers = [RunLayout(folder).results for folder in runs_root.glob("*")]
        candidates = sorted((path for path in ledgers if path.is_file()), key=lambda p: p.stat().st_mtime)
        if not candidates:
            print(f"no runs under {runs_root}; start one with `autoresearch run`.")
            return 1
        tag = candidates[-1].parent.name
    if not RunLayout.of(runs_root, tag).results.is_file():
        print(f"error: no run '{tag}' under {runs_root}.")
        return 2
    report, plot = write_run_report(runs_root / tag)
    print(f"report: {report}\nplot:   {plot}")
    return 0


def finalize_command(tag: str | None, overrides: list[str]) -> int:
    import signal

    from flows.finalize import cost_line, finalize_flow
    from research.errors import ConfigurationError

    if not tag:
        raise ConfigurationError("finalize needs the run's tag: autoresearch finalize TAG (see autoresearch status).")
    # A bad override or a run without results fails here in one sentence, before Prefect starts; then the cost.
    print(cost_line(compose([*overrides, f"tag={tag}"]), tag), flush=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tie_temporary_server_to_us()
    summary = finalize_flow(tag=tag, overrides=overrides)
    print(f"report: {summary['report']}")
    return 0
