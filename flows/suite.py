"""The suite: the research flow once per dataset of conf/suite/<name>.yaml, one subflow each (then, with
`finalize: true`, the finalize flow on that run), then a summary artifact comparing the datasets (baseline,
best, gain, keeps, crashes).

Re-running the suite the same night resumes it: a dataset whose run (tag `nightly-{date}-{dataset}`) already
holds `experiments_per_dataset` rows is skipped, an unfinished one resumes. One dataset failing (a download,
a crashed baseline) does not stop the others; the suite run ends Failed afterwards, naming them.
"""
from __future__ import annotations

import datetime

from prefect import flow

from flows.compose import compose, run_layout
from flows.research import research_flow
from research.records.ledger import Ledger
from research.reporting.report import summarize
from research.reporting.run_costs import cost_figures, verified_gain

SUITE_OWNED = ("suite", "tag", "dataset")  # override keys the suite sets per run


class SuiteIncomplete(RuntimeError):
    """Some datasets' runs failed; the others finished and the summary artifact lists them all."""


def local_timezone_name() -> str:
    """This machine's IANA time zone (for the cron schedule and the suite's date); UTC when unknown."""
    try:
        import tzlocal

        return str(tzlocal.get_localzone_name() or "UTC")
    except Exception:  # noqa: BLE001 - no tzlocal, or a machine with no zone configured
        return "UTC"


def suite_date(suite_cfg: dict, now: datetime.datetime | None = None) -> str:
    """The night's date in the schedule's time zone: a run started 02:00 and one resumed at 09:00 agree."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(suite_cfg["schedule"].get("timezone") or local_timezone_name())
    now = now.astimezone(zone) if now else datetime.datetime.now(zone)
    return now.strftime(suite_cfg.get("date_format") or "%Y%m%d")


def suite_tag(suite_cfg: dict, date: str, dataset: str) -> str:
    return suite_cfg["tag_format"].format(date=date, dataset=dataset, suite=suite_cfg.get("name", "suite"))


def dataset_summary(cfg: dict, tag: str, dataset: str, status: str) -> dict:
    """One line of the comparison: read from the run's results.tsv, the source of truth."""
    layout = run_layout(cfg, tag)
    rows = Ledger(layout.results).rows()
    summary = summarize(rows) if rows else {"counts": {}}
    counts = summary.get("counts", {})
    return {"dataset": dataset, "tag": tag, "status": status, "experiments": len(rows),
            "baseline_val_bpb": summary.get("baseline_val_bpb"), "best_val_bpb": summary.get("best_val_bpb"),
            "gain": summary.get("gain"), "keeps": counts.get("keep", 0), "crashes": counts.get("crash", 0),
            **cost_figures(rows, summary.get("gain"), verified_gain(layout.finalize_table))}


def _suite_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"suite-{params.get('date') or 'tonight'}"


def stop_if_disk_full(state) -> None:
    """A dataset's run that stopped on a full disk stops the suite with its sentence: the next would not fit either."""
    from common.atomic import DiskFull

    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a result that cannot be read back: an ordinary failure
        return
    if isinstance(error, DiskFull):
        raise error


@flow(name="suite", flow_run_name=_suite_run_name, log_prints=True)
def suite_flow(overrides: list[str] | None = None, date: str | None = None) -> dict:
    """Every dataset of the suite in turn. `overrides` (Hydra) apply to the suite config and to every run,
    e.g. ["suite.datasets=[bundled,tinystories]", "proposer=claude"]; `date` picks the night (default: today)."""
    overrides = list(overrides or [])
    cfg = compose(overrides, auto=False)
    suite = cfg["suite"]
    date = date or suite_date(suite)
    # Suite keys stay here, and the suite sets each run's tag, dataset and size itself; every other override
    # (after the suite's own list) goes to each run.
    run_overrides = [item for item in list(suite.get("overrides") or []) + overrides
                     if item.split("=", 1)[0].lstrip("+~").split(".")[0] not in SUITE_OWNED
                     and item.split("=", 1)[0].lstrip("+~") != "research.max_experiments"]
    wanted = int(suite["experiments_per_dataset"])
    results, failed = [], []
    for dataset in suite["datasets"]:
        tag = suite_tag(suite, date, dataset)
        done = len(Ledger(run_layout(cfg, tag).results).rows())
        state, status = None, "done"
        if done >= wanted:
            print(f"{dataset}: {tag} already holds {done} experiments; its run is skipped")
            status = "complete (skipped)"
        else:
            state = research_flow(overrides=run_overrides, tag=tag, dataset=dataset, max_experiments=wanted,
                                  return_state=True)
        if (state is None or state.is_completed()) and suite.get("finalize", True):
            # The keeps re-measured on fresh seeds; a finalize cut short resumes here, one already done trains nothing.
            from flows.finalize import finalize_flow

            state = finalize_flow(tag=tag, overrides=run_overrides, return_state=True)
        if state is None or state.is_completed():
            results.append(dataset_summary(cfg, tag, dataset, status))
        else:
            stop_if_disk_full(state)
            failed.append(dataset)
            results.append(dataset_summary(cfg, tag, dataset, f"{state.name.lower()}: {state.message or ''}".strip()))
    publish_summary(suite.get("name", "suite"), date, results)
    print(summary_markdown(suite.get("name", "suite"), date, results))
    if failed:
        raise SuiteIncomplete(f"The suite finished, but these datasets did not: {', '.join(failed)}; "
                              "see their runs, then run the suite again to retry them.")
    return {"name": suite.get("name", "suite"), "date": date, "datasets": results}


def summary_markdown(name: str, date: str, results: list[dict]) -> str:
    def fmt(value, digits: int = 6):
        return "" if value is None else f"{value:.{digits}f}"

    lines = [f"# {name} suite {date}", "", "| dataset | status | experiments | baseline | best | gain | keeps | crashes |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for item in results:
        lines.append(f"| {item['dataset']} | {item['status']} | {item['experiments']} | {fmt(item['baseline_val_bpb'])} | "
                     f"{fmt(item['best_val_bpb'])} | {fmt(item['gain'])} | {item['keeps']} | {item['crashes']} |")
    # What each night cost, and per 0.01 val_bpb of gain: verified by finalize where it ran, else as kept.
    lines += ["", "| dataset | device hours | energy kWh | LLM tokens | LLM $ | verified gain | gain used | "
                  "LLM $ per 0.01 val_bpb | kWh per 0.01 val_bpb |", "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for item in results:
        lines.append(f"| {item['dataset']} | {fmt(item.get('device_hours'), 3)} | "
                     f"{fmt(item.get('energy_kwh'), 4) or 'not measured'} | {item.get('llm_tokens') or 0:,} | "
                     f"{fmt(item.get('llm_cost_usd'), 4)} | {fmt(item.get('verified_gain'))} | {item.get('gain_basis', '')} | "
                     f"{fmt(item.get('llm_usd_per_gain'), 4)} | {fmt(item.get('kwh_per_gain'), 4)} |")
    return "\n".join(lines) + "\n"


def publish_summary(name: str, date: str, results: list[dict]) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from tasks.artifacts import artifact_key

    create_table_artifact(key=artifact_key(f"{name}-{date}", "summary"), table=results,
                          description=f"{name} suite {date}: datasets compared (val_bpb, lower is better)")
    create_markdown_artifact(key=artifact_key(f"{name}-{date}", "summary-report"),
                             markdown=summary_markdown(name, date, results), description=f"{name} suite {date}")
