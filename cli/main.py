"""`autoresearch`: the command line. Subcommands take trailing Hydra overrides, e.g. `dataset=climbmix`.

  prepare  build the dataset (corpus, tokenizer, shards) through DVC
  train    one training + evaluation, like the seed's `python train.py`
  run      the research loop (a Prefect flow)
  suite    the research loop over the suite's datasets (conf/suite/), with a comparison
  serve    serve the `research` and `nightly-suite` deployments to a Prefect server (launch runs from the UI)
  worker   a work-pool worker for research.executor=pool, each flow run forked from a warm process
  status   a run's heartbeat: phase, experiment, best, whether it is alive
  report   a run's report.md and progress.png
  finalize re-measure a run on fresh paired seeds: baseline vs final, and each kept change left out

Errors a user can cause end in one sentence and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys

from prefect_ops.prefect_env import configure_prefect_defaults


def _user_errors() -> tuple[type[BaseException], ...]:
    from common.atomic import DiskFull  # a full disk, naming its folder: one sentence like the others
    from data.errors import DataError
    from hardware import BackendUnavailable
    from research.errors import ConfigurationError, InvalidProposal, ProposerFatal, ResearchStopped
    from research.records.ledger import LedgerError  # a hand-damaged results.tsv: its sentence says which line to fix

    return (DataError, ConfigurationError, BackendUnavailable, InvalidProposal, ProposerFatal, ResearchStopped,
            LedgerError, DiskFull)


def cmd_prepare(args) -> int:
    from cli.commands import prepare_command

    return prepare_command(args.overrides)


def cmd_train(args) -> int:
    from cli.commands import train_command

    return train_command(args.overrides)


class _HideUserErrors(logging.Filter):
    """Drop Prefect's console records about an error a user can cause (a flow's exception with its traceback,
    "Finished in state Failed(...)"): the CLI prints that error as one sentence, and a traceback above it buries
    it. Only the console handler gets this filter, so the Prefect UI still shows the failure in full."""

    def __init__(self, types: tuple[type[BaseException], ...]):
        super().__init__()
        self.types = types
        names, todo = set(), list(types)
        while todo:  # subclasses too (RunLocked is a ResearchStopped)
            cls = todo.pop()
            names.add(cls.__name__)
            todo.extend(cls.__subclasses__())
        self.markers = tuple(f"{name}{end}" for name in names for end in (":", "("))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.types):
            return False
        message = record.getMessage()
        return not any(marker in message for marker in self.markers)


def hide_user_errors_on_console() -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    hide = _HideUserErrors(_user_errors())
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(isinstance(f, _HideUserErrors) for f in handler.filters):
            handler.addFilter(hide)


def cmd_run(args) -> int:
    from cli.live_view import watching

    with watching("run", args.quiet):  # on screen at once, before the slow imports below
        from cli.commands import run_command
        import flows.research  # noqa: F401  (imports Prefect, which sets up its console handler, and RunLocked)

        hide_user_errors_on_console()
        return run_command(args.overrides)


def cmd_suite(args) -> int:
    from cli.live_view import watching

    with watching("suite", args.quiet):
        from cli.commands import suite_command

        return suite_command(args.overrides)


def cmd_serve(args) -> int:
    from prefect_ops.serve import serve_command

    return serve_command(args.overrides)


def cmd_worker(args) -> int:
    from flows.pool import require_server
    from prefect_ops.warm_worker import worker_command
    from research.errors import ConfigurationError

    require_server("autoresearch worker")
    if args.limit < 1:
        raise ConfigurationError(f"--limit must be at least 1 (flow runs at once), not {args.limit}.")
    return worker_command(args.pool, args.limit, args.name)


def cmd_status(args) -> int:
    from cli.commands import status_command

    return status_command(args.tag, args.overrides)


def cmd_report(args) -> int:
    from cli.commands import report_command

    return report_command(args.tag, args.overrides)


def cmd_finalize(args) -> int:
    from cli.live_view import watching

    with watching("finalize", args.quiet):
        from cli.commands import finalize_command
        import flows.finalize  # noqa: F401  (imports Prefect, which sets up its console handler)

        hide_user_errors_on_console()
        return finalize_command(args.tag, args.overrides)


WATCHED = ("run", "suite", "finalize")  # the commands that show their progress (cli/live_view.py)
QUIET_HELP = "show nothing until the end (no live view, no progress lines)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoresearch", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, func, text in (
        ("prepare", cmd_prepare, "build the dataset's corpus, tokenizer and shards (DVC)"),
        ("train", cmd_train, "train and evaluate once on the detected hardware"),
        ("run", cmd_run, "run the research loop"),
        ("suite", cmd_suite, "run the research loop over the suite's datasets (conf/suite/nightly.yaml)"),
        ("serve", cmd_serve, "serve the research and nightly-suite deployments (needs PREFECT_API_URL)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("overrides", nargs="*", metavar="key=value", help="Hydra overrides")
        p.set_defaults(func=func)
        if name in WATCHED:
            p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    worker = sub.add_parser("worker", help="serve a work pool's train-evaluate runs (research.executor=pool)",
                            description="Serve a work pool's train-evaluate runs, each forked from a warm process.")
    worker.add_argument("--pool", default="gpu", help="work pool name, as research.pool.name (default: gpu)")
    worker.add_argument("--limit", type=int, default=1, help="flow runs at once (default 1: one per GPU)")
    worker.add_argument("--name", default=None, help="worker name shown in the UI (default: Prefect's)")
    worker.set_defaults(func=cmd_worker)
    for name, func, text in (
        ("status", cmd_status, "show a run's heartbeat (all runs without a tag)"),
        ("report", cmd_report, "write a run's report.md and progress.png"),
        ("finalize", cmd_finalize, "re-measure a run's keeps on fresh paired seeds (baseline, final, each keep left out)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("tag", nargs="?", help="run tag (a folder under runs/)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="Hydra overrides (e.g. paths.runs_dir=...)")
        p.set_defaults(func=func)
        if name in WATCHED:
            p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    return parser


def _is_interrupt(exc: BaseException) -> bool:
    if isinstance(exc, KeyboardInterrupt):
        return True
    from prefect.exceptions import TerminationSignal

    return isinstance(exc, TerminationSignal)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_prefect_defaults(args.command)  # before anything imports Prefect
    if getattr(args, "tag", None) and "=" in args.tag:
        args.overrides.insert(0, args.tag)
        args.tag = None
    try:
        return args.func(args)
    except _user_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:  # Ctrl-C, or SIGTERM surfacing as Prefect's TerminationSignal
        if not _is_interrupt(exc):
            from cli.disk_full import disk_full_sentence, written_folders

            full = None  # a full disk anywhere (ledger, run repository, checkpoint, Prefect's database): one sentence
            if isinstance(exc, Exception):
                full = disk_full_sentence(exc, written_folders(getattr(args, "overrides", None)))
            if full is None:
                raise
            print(f"error: {full}", file=sys.stderr)
            return 2
        print("interrupted: everything recorded so far is kept; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
