"""`autoresearch`: the command line. Subcommands take trailing Hydra overrides, e.g. `dataset=climbmix`.

  prepare  build the dataset (corpus, tokenizer, shards) through DVC
  train    one training + evaluation, like the seed's `python train.py`
  run      the research loop (a Prefect flow)
  status   a run's heartbeat: phase, experiment, best, whether it is alive
  report   a run's report.md and progress.png

Errors a user can cause end in one sentence and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from flows.prefect_env import configure_prefect_defaults


def _user_errors() -> tuple[type[BaseException], ...]:
    from data.errors import DataError
    from flows.compose import ConfigurationError
    from hardware import BackendUnavailable
    from research.errors import InvalidProposal, ProposerFatal, ResearchStopped

    return (DataError, ConfigurationError, BackendUnavailable, InvalidProposal, ProposerFatal, ResearchStopped)


def cmd_prepare(args) -> int:
    from flows.commands import prepare_command

    return prepare_command(args.overrides)


def cmd_train(args) -> int:
    from flows.commands import train_command

    return train_command(args.overrides)


def cmd_run(args) -> int:
    from flows.commands import run_command

    return run_command(args.overrides)


def cmd_status(args) -> int:
    from flows.commands import status_command

    return status_command(args.tag, args.overrides)


def cmd_report(args) -> int:
    from flows.commands import report_command

    return report_command(args.tag, args.overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoresearch", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, func, text in (
        ("prepare", cmd_prepare, "build the dataset's corpus, tokenizer and shards (DVC)"),
        ("train", cmd_train, "train and evaluate once on the detected hardware"),
        ("run", cmd_run, "run the research loop"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("overrides", nargs="*", metavar="key=value", help="Hydra overrides")
        p.set_defaults(func=func)
    for name, func, text in (
        ("status", cmd_status, "show a run's heartbeat (all runs without a tag)"),
        ("report", cmd_report, "write a run's report.md and progress.png"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("tag", nargs="?", help="run tag (a folder under runs/)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="Hydra overrides (e.g. paths.runs_dir=...)")
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_prefect_defaults()
    args = build_parser().parse_args(argv)
    if getattr(args, "tag", None) and "=" in args.tag:
        args.overrides.insert(0, args.tag)
        args.tag = None
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything recorded so far is kept; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
