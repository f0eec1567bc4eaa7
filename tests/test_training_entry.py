"""The training child's own environment: the reference trainer's CUDA allocator setting, unless the user set one."""

import json

from training import entry


def run_main(monkeypatch, tmp_path, preset=None) -> str | None:
    seen = {}
    # A private environment for the call, so the setting cannot leak into the rest of the test session.
    monkeypatch.setattr(entry.os, "environ", {} if preset is None else {"PYTORCH_ALLOC_CONF": preset})
    monkeypatch.setattr(entry, "die_with_parent", lambda: None)

    def fake_run(exp_dir):
        seen["value"] = entry.os.environ.get("PYTORCH_ALLOC_CONF")  # what torch would read at its first allocation
        return {"status": "ok"}

    monkeypatch.setattr(entry, "run", fake_run)
    assert entry.main([str(tmp_path)]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"status": "ok"}
    return seen["value"]


def test_expandable_segments_are_set_before_training(monkeypatch, tmp_path):
    assert run_main(monkeypatch, tmp_path) == "expandable_segments:True"


def test_a_users_allocator_setting_wins(monkeypatch, tmp_path):
    assert run_main(monkeypatch, tmp_path, preset="max_split_size_mb:256") == "max_split_size_mb:256"
