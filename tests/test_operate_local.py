"""The suite and research.parallel, on the temporary local Prefect server, plus the small pure pieces of
operating autoresearch (run names, suite tags, device slots, parallel rounds)."""
from __future__ import annotations

import datetime
import json

import pytest

from tests.operate_helpers import TINY, overlap_seconds, read_intervals


# -- pure pieces -----------------------------------------------------------------------------------------

def test_research_run_names_read_well():
    from flows.research import run_name_from

    assert run_name_from({"tag": "night1"}) == "research-night1"
    assert run_name_from({"overrides": ["preset=cpu", "tag=exp-a"]}) == "research-exp-a"
    assert run_name_from({"overrides": ["dataset=climbmix"]}) == "research-climbmix"
    assert run_name_from({}) == "research-default"


def test_suite_tag_and_date_follow_the_schedule_time_zone():
    from flows.suite import suite_date, suite_tag

    suite = {"tag_format": "nightly-{date}-{dataset}", "date_format": "%Y%m%d", "schedule": {"timezone": "Asia/Tokyo"}}
    late_utc = datetime.datetime(2026, 3, 1, 20, 0, tzinfo=datetime.timezone.utc)  # already 2 March in Tokyo
    assert suite_date(suite, late_utc) == "20260302"
    assert suite_tag(suite, "20260302", "climbmix") == "nightly-20260302-climbmix"


def test_device_slots_one_per_gpu_and_one_for_the_cpu(monkeypatch):
    from tasks.gpu_slots import device_slots, resolve_slots

    monkeypatch.delenv("AUTORESEARCH_SLOT_SCOPE", raising=False)
    assert [s.name for s in device_slots("cpu")] == ["autoresearch-cpu"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    cuda = device_slots("cuda")
    assert [(s.name, s.env) for s in cuda] == [("autoresearch-gpu-2", {"CUDA_VISIBLE_DEVICES": "2"}),
                                               ("autoresearch-gpu-3", {"CUDA_VISIBLE_DEVICES": "3"})]
    assert device_slots("rocm", devices=[0])[0].env == {"HIP_VISIBLE_DEVICES": "0"}
    assert device_slots("cuda", devices=[1], scope="hostb")[0].name == "autoresearch-hostb-gpu-1"
    # No Prefect server in the unit tests: `auto` stays off, so a killed run can never leave a slot taken.
    assert resolve_slots({"enabled": "auto"}, "cpu")["enabled"] is False
    assert resolve_slots({"enabled": True}, "cpu")["slots"] == [{"name": "autoresearch-cpu", "env": {}}]


def test_without_limits_each_parallel_training_gets_its_own_gpu(monkeypatch, tmp_path):
    """Slots off (no server) on a faked 2-GPU machine: two trainings at once see two different devices."""
    import threading

    from tasks.gpu_slots import device_slot, resolve_slots
    from training.launch import child_environment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    resolved = resolve_slots({"enabled": "auto"}, "cuda")
    assert resolved["enabled"] is False and len(resolved["slots"]) == 2
    both_inside = threading.Barrier(2, timeout=10)
    seen = {}

    def training(name):
        (tmp_path / name).mkdir()
        with device_slot(resolved, "train", str(tmp_path / name)):
            both_inside.wait()  # both hold their device at the same time, as in a round of two
            seen[name] = child_environment()["CUDA_VISIBLE_DEVICES"]

    threads = [threading.Thread(target=training, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen.values()) == ["0", "1"], seen
    recorded = {read_intervals(tmp_path / name)[0]["slot"] for name in ("a", "b")}
    assert recorded == {"autoresearch-gpu-0", "autoresearch-gpu-1"}
    # Released: the next training takes a device again at once instead of waiting forever.
    with device_slot(resolved, "train"):
        assert child_environment()["CUDA_VISIBLE_DEVICES"] in ("0", "1")


def test_a_round_larger_than_the_gpus_is_refused_without_limits(monkeypatch):
    from research.errors import ConfigurationError
    from tasks.gpu_slots import check_parallel_fits, resolve_slots

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    off = resolve_slots({"enabled": False}, "cuda")
    check_parallel_fits(2, off)  # one GPU each
    with pytest.raises(ConfigurationError, match=r"research.parallel=3 needs 3 GPUs but this machine shows 2 "
                                                  r"\(CUDA_VISIBLE_DEVICES=0,1\): set research.parallel=2"):
        check_parallel_fits(3, off)
    check_parallel_fits(3, resolve_slots({"enabled": True}, "cuda"))  # limits queue the third training
    check_parallel_fits(4, resolve_slots({"enabled": False}, "cpu"))  # one shared CPU: trainings share its cores


def test_device_env_reaches_the_child_process_only_inside_the_block():
    from training.launch import child_env, child_environment

    with child_env({"CUDA_VISIBLE_DEVICES": "1"}):
        assert child_environment()["CUDA_VISIBLE_DEVICES"] == "1"
    assert child_environment().get("CUDA_VISIBLE_DEVICES") == __import__("os").environ.get("CUDA_VISIBLE_DEVICES")


def test_round_winner_and_open_round(tmp_path):
    from experiment.outcome import Outcome
    from experiment.rounds import clear_round, open_round, round_winner, start_round

    outcomes = {4: Outcome({"status": "ok"}, {"val_bpb": 1.2}), 5: Outcome({"status": "ok"}, {"val_bpb": 1.1}),
                6: Outcome({"status": "failed"})}
    assert round_winner(outcomes) == 5
    assert round_winner({7: Outcome({"status": "failed"})}) is None
    start_round(tmp_path, 4, [4, 5, 6])
    assert open_round(tmp_path, 5) == (4, [4, 5, 6])  # exp 4 recorded, 5 and 6 not: finish that round
    assert open_round(tmp_path, 7) is None and not (tmp_path / "round.json").exists()  # all recorded
    clear_round(tmp_path)


# -- suite + parallel, end to end on the temporary server ------------------------------------------------

@pytest.fixture(scope="module")
def parallel_suite(tmp_path_factory):
    """The suite over the bundled dataset, 4 experiments, research.parallel=2, then the same suite again. The suite
    finalizes each run, on 1 fresh seed here instead of the default 4: each seed is a training, a val and a test
    evaluation per arm, one after another, so 4 seeds started more processes than the run's 2 rounds of two (and a
    second seed repeated them for nothing a test here reads: the seeds' pairing is tests/test_finalize.py's)."""
    from flows.suite import suite_flow
    from research.records.finalize_table import FinalizeTable

    runs = tmp_path_factory.mktemp("suite-runs")
    overrides = [*TINY, f"paths.runs_dir={runs}", "suite.experiments_per_dataset=4", "research.parallel=2",
                 "proposer=local", "finalize.seeds=1"]
    first = suite_flow(overrides=overrides, date="20260101")
    finalized = FinalizeTable(runs / "nightly-20260101-bundled" / "finalize.tsv").rows()
    again = suite_flow(overrides=overrides, date="20260101")
    return {"runs": runs, "first": first, "again": again, "finalized": finalized}


@pytest.mark.slow
def test_parallel_two_trains_two_at_once_and_records_both_rows(parallel_suite):
    from research.records.ledger import Ledger

    run_dir = parallel_suite["runs"] / "nightly-20260101-bundled"
    rows = Ledger(run_dir / "results.tsv").rows()
    assert [row["exp"] for row in rows] == [0, 1, 2, 3]
    assert [row["status"] for row in rows[:2]] == ["baseline", "baseline"]
    assert all(row["val_bpb"] is not None for row in rows)
    # Both proposals of the round started from the same commit, changed different keys, and at most one was kept.
    assert rows[2]["baseline_sha"] == rows[3]["baseline_sha"]
    assert rows[2]["key"] != rows[3]["key"]
    assert sum(row["status"] == "keep" for row in rows[2:]) <= 1
    for first, second in ((0, 1), (2, 3)):
        a, b = (read_intervals(run_dir / "exp" / str(n))[-1] for n in (first, second))
        # Trained at the same time: a round starts its members together (a thread each, experiment/rounds.py), so
        # the later training started before the earlier one was half done, not merely before it ended.
        earlier, later = sorted((a, b), key=lambda interval: interval["started_at"])
        half = (earlier["finished_at"] - earlier["started_at"]) / 2
        assert 0 <= later["started_at"] - earlier["started_at"] < half, (a, b)
        assert overlap_seconds(a, b) > 0, (a, b)
    assert not (run_dir / "round.json").exists()


@pytest.mark.slow
def test_suite_summarises_and_skips_a_complete_dataset(parallel_suite):
    first, again = parallel_suite["first"], parallel_suite["again"]
    assert [item["status"] for item in first["datasets"]] == ["done"]
    assert first["datasets"][0]["experiments"] == 4 and first["datasets"][0]["baseline_val_bpb"] is not None
    assert [item["status"] for item in again["datasets"]] == ["complete (skipped)"]
    assert json.dumps(again)  # plain data: the flow's result is persisted and shown in the UI


@pytest.mark.slow
def test_suite_finalizes_each_run_once(parallel_suite):
    from research.records.finalize_table import FinalizeTable

    run_dir = parallel_suite["runs"] / "nightly-20260101-bundled"
    finalized = parallel_suite["finalized"]
    # The baseline block on the fresh seed (and the final one too when a proposal was kept), each scored.
    assert {(row["arm"], row["seed"]) for row in finalized} >= {("baseline", 1000)}
    assert all(row["val_bpb"] is not None for row in finalized)
    assert "## Verified" in (run_dir / "report.md").read_text()
    assert FinalizeTable(run_dir / "finalize.tsv").rows() == finalized  # the second suite trained nothing more
