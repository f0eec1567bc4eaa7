"""Run repository: baseline, per-experiment commits and tags, main only on keep, idempotence, orphans,
and the project's own checkout left alone even with GIT_DIR pointing at it."""
import os
import subprocess

import pytest

from research.records.runrepo import RunRepo, RunRepoError

BASE = "optim:\n  matrix_lr: 0.04\n"
LR05 = "optim:\n  matrix_lr: 0.05\n"
LR03 = "optim:\n  matrix_lr: 0.03\n"


def git(cwd, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t",
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, env=env, check=True).stdout.strip()


def log_messages(repo, ref):
    return git(repo.path, "log", "--format=%s", ref).splitlines()


def test_init_is_idempotent_and_makes_the_baseline(tmp_path):
    repo = RunRepo(tmp_path / "run" / "repo")
    sha = repo.init(BASE)
    assert repo.init(BASE) == sha and RunRepo(tmp_path / "run" / "repo").init(BASE) == sha
    assert repo.main_sha() == sha == repo.tag_sha(0)
    assert log_messages(repo, "main") == ["exp0: baseline"]
    assert repo.show(0) == BASE
    assert git(repo.path, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert (repo.path / "hparams.yaml").read_text() == BASE  # readable work tree for humans


def test_init_finishes_a_half_done_init(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")  # died right after `git init`
    sha = RunRepo(path).init(BASE)
    assert RunRepo(path).show(0) == BASE and RunRepo(path).tag_sha(0) == sha


def test_experiments_are_tagged_and_main_moves_only_on_keep(tmp_path):
    repo = RunRepo(tmp_path / "repo")
    base = repo.init(BASE)
    discarded = repo.commit_experiment(1, LR03, "optim.matrix_lr=0.03 lower LR", base)
    assert repo.main_sha() == base  # not moved by a commit
    assert repo.tag_sha(1) == discarded and repo.show(1) == LR03
    kept = repo.commit_experiment(2, LR05, "optim.matrix_lr=0.05 higher LR", base)
    repo.advance_main(kept)
    assert repo.main_sha() == kept
    assert log_messages(repo, "main") == ["exp2: optim.matrix_lr=0.05 higher LR", "exp0: baseline"]
    assert (repo.path / "hparams.yaml").read_text() == LR05
    # The discarded one is still reachable through its tag, with its base as parent.
    assert git(repo.path, "rev-parse", "exp1^") == base
    assert git(repo.path, "status", "--porcelain") == ""
    assert repo.tags() == {0: base, 1: discarded, 2: kept}


def test_commit_is_idempotent_and_an_orphan_with_other_content_is_moved(tmp_path):
    repo = RunRepo(tmp_path / "repo")
    base = repo.init(BASE)
    first = repo.commit_experiment(1, LR05, "exp1: optim.matrix_lr=0.05 x", base)
    assert repo.commit_experiment(1, LR05, "exp1: optim.matrix_lr=0.05 x", base) == first
    count = git(repo.path, "rev-list", "--all", "--count")
    assert repo.commit_experiment(1, LR05, "whatever", base) == first
    assert git(repo.path, "rev-list", "--all", "--count") == count  # no second commit
    assert log_messages(repo, "exp1")[0] == "exp1: optim.matrix_lr=0.05 x"  # prefix not doubled
    # Redone with a different proposal after a crash: the orphan tag moves.
    moved = repo.commit_experiment(1, LR03, "optim.matrix_lr=0.03 y", base)
    assert moved != first and repo.tag_sha(1) == moved and repo.show(1) == LR03


def test_orphans_and_pruning(tmp_path):
    repo = RunRepo(tmp_path / "repo")
    base = repo.init(BASE)
    for exp in (1, 2, 3):
        repo.commit_experiment(exp, f"x: {exp}\n", f"k={exp}", base)
    known = {0, 1}  # rows for 0 and 1; 2 and 3 died before their ledger row
    assert repo.orphans(known) == [2, 3]
    assert repo.orphans(set()) == [1, 2, 3]  # exp0 belongs to init, never an orphan
    assert repo.prune_orphans(known, keep_from=3) == [2]  # 3 is about to be redone: kept for re-use
    assert repo.orphans(known) == [3]
    assert repo.prune_orphans(known) == [3]
    assert repo.orphans(known) == [] and repo.tag_sha(2) is None


def test_errors_are_clear(tmp_path):
    repo = RunRepo(tmp_path / "repo")
    with pytest.raises(RunRepoError, match="init"):
        repo.main_sha()
    base = repo.init(BASE)
    with pytest.raises(RunRepoError, match="not in"):
        repo.commit_experiment(1, LR05, "m", "0" * 40)
    with pytest.raises(RunRepoError, match="no commit"):
        repo.show(9)
    with pytest.raises(RunRepoError, match=r"\.git"):
        RunRepo(tmp_path / "project" / ".git" / "runs" / "repo")
    assert repo.tag_sha(9) is None and base


def test_project_checkout_is_untouched_even_with_git_env_pointing_at_it(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q", "-b", "trunk")
    (project / "code.py").write_text("print('hi')\n")
    git(project, "add", "code.py")
    git(project, "commit", "-q", "-m", "project commit")

    def snapshot():
        return (git(project, "rev-parse", "HEAD"), git(project, "for-each-ref"), git(project, "status", "--porcelain"),
                git(project, "rev-list", "--all", "--count"), git(project, "rev-parse", "--abbrev-ref", "HEAD"))

    before = snapshot()
    monkeypatch.setenv("GIT_DIR", str(project / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(project))
    monkeypatch.setenv("GIT_INDEX_FILE", str(project / ".git" / "index"))
    # The run folder lies inside the project's work tree, as runs/ does (git-ignored there).
    repo = RunRepo(project / "runs" / "tag" / "repo")
    base = repo.init(BASE)
    sha = repo.commit_experiment(1, LR05, "k=v", base)
    repo.advance_main(sha)
    repo.prune_orphans([0])
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    monkeypatch.delenv("GIT_INDEX_FILE")
    after = snapshot()
    assert after[:2] == before[:2] and after[3:] == before[3:]
    assert after[2] == "?? runs/"  # only the new, untracked run folder
    assert (repo.path / ".git").is_dir()
    assert git(repo.path, "rev-parse", "--show-toplevel") == str(repo.path)
