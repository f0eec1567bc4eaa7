"""The run repository: runs/<tag>/repo, a plain git repository with one hparams.yaml per experiment.

- `main` holds the baseline and every kept experiment, in order: `git log main` is the path of improvements.
- Every experiment is a commit on top of the commit it started from (its base), tagged `expN`; a discarded
  one is never on main but stays reachable through its tag.
- Commits are built with plumbing (hash-object, mktree, commit-tree): no index, no checkout, nothing half
  done if the process dies, and main moves only when advance_main() says so.

Safety: the project's own checkout must never be touched. Every command is `git -C <repo>` with an
environment stripped of every GIT_* variable (a GIT_DIR or GIT_WORK_TREE left by a hook or a shell would
otherwise redirect our commits into the project), GIT_CEILING_DIRECTORIES set so git never climbs into an
enclosing repository, no global/system config, no hooks, no signing, and an explicit identity.

Orphans (a tag expN with no ledger row: the process died between the commit and the ledger write): kept
for re-use. When the experiment is redone, commit_experiment() re-uses the tag if it holds the same
hparams.yaml on the same base (same sha: true idempotence) and moves it to a new commit otherwise.
prune_orphans() deletes the orphans that can never be redone (numbers below the next experiment) or, at the
end of a run, all of them.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

HPARAMS_FILE = "hparams.yaml"
BRANCH = "main"
_TAG_RE = re.compile(r"^exp(\d+)$")
_IDENTITY = {
    "GIT_AUTHOR_NAME": "autoresearch",
    "GIT_AUTHOR_EMAIL": "autoresearch@localhost",
    "GIT_COMMITTER_NAME": "autoresearch",
    "GIT_COMMITTER_EMAIL": "autoresearch@localhost",
}
# Per-command config: independent of whatever the machine's or user's git config says.
_CONFIG = ("-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", "-c", "core.hooksPath=/dev/null",
           "-c", "gc.auto=0", "-c", "core.autocrlf=false", "-c", f"init.defaultBranch={BRANCH}")


class RunRepoError(RuntimeError):
    """A git command in the run repository failed; the message names the command and git's answer."""


def git_env(repo: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env.update(_IDENTITY)
    env["GIT_CEILING_DIRECTORIES"] = str(repo.parent)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"  # stable messages
    return env


class RunRepo:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        if ".git" in self.path.parts:
            raise RunRepoError(f"The run repository {self.path} lies inside a .git folder; choose a runs_dir outside any repository's .git.")

    # -- plumbing ------------------------------------------------------------------------------------------
    def _git(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["git", *_CONFIG, "-C", str(self.path), *args],
            input=stdin.encode("utf-8") if stdin is not None else None,
            capture_output=True, env=git_env(self.path), check=False,
        )
        if check and result.returncode != 0:
            raise RunRepoError(
                f"git {' '.join(args[:2])} failed in {self.path}: {result.stderr.decode(errors='replace').strip()}")
        return result

    def _out(self, *args: str, stdin: str | None = None) -> str:
        return self._git(*args, stdin=stdin).stdout.decode("utf-8").strip()

    def _rev(self, ref: str) -> str | None:
        result = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if result.returncode != 0:
            return None
        return result.stdout.decode().strip() or None

    def _require_repo(self) -> None:
        # Without our own .git, `git -C` would discover an enclosing repository (the ceiling guards this too).
        if not (self.path / ".git").is_dir():
            raise RunRepoError(f"{self.path} is not a run repository yet; call init() first.")

    def _commit_file(self, content: str, message: str, parent: str | None) -> str:
        blob = self._out("hash-object", "-w", "--stdin", stdin=content)
        tree = self._out("mktree", stdin=f"100644 blob {blob}\t{HPARAMS_FILE}\n")
        parents = ["-p", parent] if parent else []
        return self._out("commit-tree", tree, *parents, "-m", message)

    # -- public --------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / ".git").is_dir() and self._rev(f"refs/heads/{BRANCH}") is not None

    def init(self, initial_hparams_yaml: str) -> str:
        """Create the repository with the baseline commit "exp0: baseline" on main (tag exp0); returns its sha.

        Idempotent: an existing repository is re-used as it is and its baseline sha returned, finishing an
        init that died half-way (repo without commit, commit without tag).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        if not (self.path / ".git").is_dir():
            self._git("init", "-q", "-b", BRANCH)
        top = Path(self._out("rev-parse", "--show-toplevel")).resolve()
        if top != self.path:
            raise RunRepoError(f"git resolved {self.path} to {top}; the run repository must be its own repository.")
        baseline = self._rev("refs/tags/exp0")
        if baseline is None:
            main = self._rev(f"refs/heads/{BRANCH}")
            if main is None:
                baseline = self._commit_file(initial_hparams_yaml, "exp0: baseline", None)
                self._git("update-ref", f"refs/heads/{BRANCH}", baseline)
                self._git("reset", "-q", "--hard", baseline)  # a readable work tree for humans
            else:
                baseline = self._out("rev-list", "--max-parents=0", f"refs/heads/{BRANCH}").splitlines()[0]
            self._git("tag", "exp0", baseline)
        if self.show(0) != initial_hparams_yaml:
            log.warning("The run repository %s keeps its existing baseline config, which differs from the one "
                        "given now.", self.path)
        return baseline

    def commit_experiment(self, exp: int, hparams_yaml: str, message: str, base_sha: str) -> str:
        """Commit hparams.yaml on top of base_sha (main is not moved) and tag it expN; returns the sha.

        Idempotent: if tag expN already holds the same hparams.yaml on the same base (a crash came between
        this commit and the ledger row), its sha is returned and nothing is written. A tag with different
        content is an orphan from an abandoned attempt: it is moved to the new commit.
        """
        self._require_repo()
        if exp <= 0:
            raise RunRepoError("Experiment numbers above 0 are committed with commit_experiment; exp0 is the baseline from init().")
        base = self._rev(base_sha)
        if base is None:
            raise RunRepoError(f"The base commit {base_sha} is not in {self.path}; pass a sha from this run's repository.")
        existing = self.tag_sha(exp)
        if existing is not None:
            parents = self._out("rev-list", "--parents", "-n", "1", existing).split()[1:]
            if parents == [base] and self.show(exp) == hparams_yaml:
                return existing
            log.info("Moving orphan tag exp%d (different config or base) to the redone experiment.", exp)
        prefix = f"exp{exp}:"
        full_message = message if message.startswith(prefix) else f"{prefix} {message}".rstrip()
        sha = self._commit_file(hparams_yaml, full_message, base)
        self._git("tag", "-f", f"exp{exp}", sha)
        return sha

    def advance_main(self, sha: str) -> None:
        """Point main (and the work tree) at sha: called for kept experiments only."""
        self._require_repo()
        target = self._rev(sha)
        if target is None:
            raise RunRepoError(f"The commit {sha} is not in {self.path}; pass a sha from this run's repository.")
        self._git("update-ref", f"refs/heads/{BRANCH}", target)
        self._git("reset", "-q", "--hard", target)

    def main_sha(self) -> str:
        self._require_repo()
        sha = self._rev(f"refs/heads/{BRANCH}")
        if sha is None:
            raise RunRepoError(f"{self.path} has no {BRANCH} branch yet; call init() first.")
        return sha

    def tag_sha(self, exp: int) -> str | None:
        self._require_repo()
        return self._rev(f"refs/tags/exp{exp}")

    def show(self, exp: int) -> str:
        """hparams.yaml exactly as committed for experiment exp."""
        self._require_repo()
        result = self._git("show", f"refs/tags/exp{exp}:{HPARAMS_FILE}", check=False)
        if result.returncode != 0:
            raise RunRepoError(f"Experiment {exp} has no commit in {self.path}.")
        return result.stdout.decode("utf-8")

    def tags(self) -> dict[int, str]:
        """{exp: commit sha} for every expN tag."""
        self._require_repo()
        out = self._out("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags/")
        found = {}
        for line in out.splitlines():
            name, _, sha = line.partition(" ")
            match = _TAG_RE.match(name)
            if match:
                found[int(match.group(1))] = sha
        return found

    def orphans(self, known_exps) -> list[int]:
        """Experiment tags without a ledger row. exp0 is never one: it belongs to init(), not to a row."""
        known = {int(exp) for exp in known_exps}
        return sorted(exp for exp in self.tags() if exp != 0 and exp not in known)

    def prune_orphans(self, known_exps, keep_from: int | None = None) -> list[int]:
        """Delete orphan tags and return their numbers.

        On resume pass keep_from=ledger.next_exp(): orphans from there on are kept, because the experiment
        with that number is about to be redone and commit_experiment() re-uses or moves the tag. At the end
        of a run pass nothing: every orphan goes, so no tag points at a config that was never measured.
        """
        doomed = [exp for exp in self.orphans(known_exps) if keep_from is None or exp < keep_from]
        for exp in doomed:
            self._git("tag", "-d", f"exp{exp}")
        return doomed
