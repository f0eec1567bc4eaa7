"""report.md and progress.png from a synthetic run."""
import matplotlib.image
import pytest

from research.reporting.report import config_diff, results_table_markdown, write_report

BASELINE = {"optim": {"matrix_lr": 0.04, "weight_decay": 0.2}, "model": {"depth": 8}}
BEST = {"optim": {"matrix_lr": 0.05, "weight_decay": 0.2}, "model": {"depth": 10}}


def synthetic_rows():
    rows = [{"exp": 0, "status": "baseline", "val_bpb": 1.000, "change": None},
            {"exp": 1, "status": "baseline", "val_bpb": 1.004, "change": None}]
    best = 1.002
    plan = ["discard", "keep", "crash", "discard", "keep", "skip", "discard", "crash", "keep", "discard"]
    for exp, status in enumerate(plan, start=2):
        row = {"exp": exp, "status": status, "change": f"optim.matrix_lr=0.0{exp}", "description": f"d|{exp}",
               "llm_input_tokens": 1000, "llm_output_tokens": 100, "llm_cost_usd": 0.01, "val_bpb": None}
        if status == "keep":
            best -= 0.01
            row.update(val_bpb=best, best_val_bpb=best, delta=-0.01)
        elif status == "discard":
            row.update(val_bpb=best + 0.004 * exp, delta=0.004 * exp)
        elif status == "crash":
            row["error"] = "CUDA out of memory\nTraceback | with a pipe"
        rows.append(row)
    rows[5]["val_bpb"] = 9.0  # a diverged run: clipped in the plot, not hiding the rest
    return rows


def test_report_files(tmp_path):
    run_dir = tmp_path / "climbmix-datacenter"
    md_path, png_path = write_report(run_dir, synthetic_rows(), BASELINE, BEST, {"dataset": "climbmix"})
    assert md_path == run_dir / "report.md" and png_path == run_dir / "progress.png"
    text = md_path.read_text()
    assert text.startswith("# autoresearch report: climbmix-datacenter")
    assert "Experiments: 12 (3 keep, 4 discard, 2 crash, 1 skip, 2 baseline)" in text
    assert "Baseline val_bpb: 1.002000" in text and "Best val_bpb: 0.972000" in text
    assert "Gain: 0.030000 (2.99%)" in text
    assert "Noise sigma (repeated baselines): 0.002828" in text
    assert "LLM tokens: 11,000; cost: $0.1000" in text
    assert "- `optim.matrix_lr`: 0.04 -> 0.05" in text and "- `model.depth`: 8 -> 10" in text
    assert "weight_decay" not in text
    assert "| 10 | keep |" in text
    assert "CUDA out of memory Traceback \\| with a pipe" in text  # one line, pipe escaped
    assert "- dataset: climbmix" in text

    assert png_path.stat().st_size > 20_000
    image = matplotlib.image.imread(png_path)
    assert image.shape[:2] == (600, 1400)
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_report_of_an_empty_or_all_crashed_run(tmp_path):
    md_path, png_path = write_report(tmp_path / "r", [], BASELINE, BASELINE, {})
    assert "The best configuration is the baseline." in md_path.read_text()
    assert matplotlib.image.imread(png_path).shape[:2] == (600, 1400)
    crashed = [{"exp": 0, "status": "crash", "error": "boom"}]
    md_path, _ = write_report(tmp_path / "r2", crashed, BASELINE, BASELINE, {})
    assert "Baseline val_bpb: n/a" in md_path.read_text() and "boom" in md_path.read_text()


def test_results_table_markdown_limits_and_escapes():
    rows = synthetic_rows()
    table = results_table_markdown(rows, limit=3)
    lines = table.splitlines()
    assert lines[0].startswith("| exp | status | val_bpb |")
    assert [line.split("|")[1].strip() for line in lines[2:5]] == ["9", "10", "11"]
    assert "9 earlier rows not shown" in table
    assert "d\\|10" in table
    assert len(results_table_markdown(rows, limit=None).splitlines()) == 2 + len(rows)


def test_config_diff_flattens_nested_blocks():
    assert config_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 4}}) == [("a.c", 2, 3), ("a.d", None, 4)]


def test_best_so_far_starts_at_the_baseline_mean_and_only_steps_down():
    from research.reporting.progress_plot import best_so_far

    rows = [
        {"exp": 0, "status": "baseline", "val_bpb": 1.80},
        {"exp": 1, "status": "baseline", "val_bpb": 1.90},  # a worse repeat must not make the line rise
        {"exp": 2, "status": "discard", "val_bpb": 1.84, "best_val_bpb": 1.85},
        {"exp": 3, "status": "keep", "val_bpb": 1.70, "best_val_bpb": 1.70},
        {"exp": 4, "status": "keep", "val_bpb": 1.60, "best_val_bpb": 1.62},
    ]
    points = best_so_far(rows)
    assert points[0] == (1, pytest.approx(1.85))
    assert points[1:] == [(3, 1.70), (4, 1.62)]
    assert all(later[1] <= earlier[1] for earlier, later in zip(points, points[1:]))


def test_results_table_shows_the_paired_delta_its_error_and_the_verdict():
    row = {"exp": 3, "status": "keep", "val_bpb": 0.95, "paired_delta": -0.012, "paired_se": 0.004,
           "paired_seeds": "42 43 44", "verdict": "SPRT accepts a gain", "change": "optim.matrix_lr=0.05"}
    table = results_table_markdown([row], limit=None)
    assert "| -0.012000 +- 0.004000 (3) |" in table and "SPRT accepts a gain" in table
