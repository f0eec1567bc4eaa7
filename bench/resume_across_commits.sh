#!/usr/bin/env bash
# A run started by an older commit's code, killed -9 while it trains, resumed by this tree's code: what a user who
# updates the project in the middle of a night gets. Checks that the rows recorded before the kill are unchanged,
# the experiment cut off keeps its proposal (no second LLM question), and the run completes.
#
#   bench/resume_across_commits.sh OLD_COMMIT      # from the project root, after `make install`; ~5 min on 2 cores
#
# The old commit runs from a git worktree with this venv; the command line module is found under either layout
# (cli/main.py since the folders were split by job, flows/cli.py before).
set -uo pipefail
old_commit="${1:?usage: bench/resume_across_commits.sh OLD_COMMIT}"
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$root/.venv/bin/python}"
work="$(mktemp -d)"; old="$work/old-tree"
trap 'pkill -9 -f "$work" 2>/dev/null; git -C "$root" worktree remove --force "$old" >/dev/null 2>&1; rm -rf "$work"' EXIT
git -C "$root" worktree add --detach "$old" "$old_commit" >/dev/null || exit 2
cli_of() { if [ -f "$1/cli/main.py" ]; then echo cli.main; else echo flows.cli; fi; }
mkdir -p "$work/data"
(cd "$root" && "$py" -c 'import sys; from pathlib import Path; sys.path.insert(0, "."); from tests.conftest import build_tiny_dataset; build_tiny_dataset(Path(sys.argv[1]), "bundled")' "$work/data") >/dev/null
args=(preset=cpu hparams.model.depth=2 hparams.model.aspect_ratio=32 hparams.model.head_dim=32
      hparams.batch.device_batch_size=8 hparams.batch.total_batch_tokens=1024 train.seq_len=128 train.eval_tokens=4096
      train.eval_batch_size=8 budget.kind=steps budget.steps=40 proposer=local research.max_experiments=6
      "paths.data_dir=$work/data/datasets" "paths.runs_dir=$work/runs" tag=across)
run="$work/runs/across"
export PREFECT_HOME="$work/prefect"
(cd "$old" && exec "$py" -m "$(cli_of "$old")" run "${args[@]}" > "$work/old.log" 2>&1) &
for _ in $(seq 1 1200); do  # until exp 3 trains (3 rows recorded, its train.log past two steps)
  rows=$( [ -f "$run/results.tsv" ] && tail -n +2 "$run/results.tsv" | wc -l || echo 0)
  steps=$(grep -c "^step" "$run/exp/3/train.log" 2>/dev/null); steps=${steps:-0}
  [ "$rows" -ge 3 ] && [ "$steps" -ge 2 ] && break
  sleep 0.5
done
pkill -9 -f "run ${args[0]} .*tag=across"; pkill -9 -f "$run/exp"; sleep 2
[ -f "$run/exp/3/proposal.json" ] || { echo "error: the old run did not reach exp 3's training; see $work/old.log" >&2; exit 1; }
echo "old code ($old_commit) killed -9 with $(tail -n +2 "$run/results.tsv" | wc -l) rows, exp 3 training"
cp "$run/results.tsv" "$work/before.tsv"; before_proposal="$(stat -c %Y "$run/exp/3/proposal.json")"
(cd "$root" && "$py" -m "$(cli_of "$root")" run "${args[@]}" > "$work/new.log" 2>&1) || { tail -5 "$work/new.log"; exit 1; }
rows=$(tail -n +2 "$run/results.tsv" | wc -l)
head -n "$(wc -l < "$work/before.tsv")" "$run/results.tsv" | cmp -s - "$work/before.tsv" && same=yes || same=no
[ "$(stat -c %Y "$run/exp/3/proposal.json")" = "$before_proposal" ] && reused=yes || reused=no
echo "this tree resumed it: $rows rows; rows recorded before the kill unchanged: $same; exp 3's proposal re-used: $reused"
[ "$rows" = 6 ] && [ "$same" = yes ] && [ "$reused" = yes ]
