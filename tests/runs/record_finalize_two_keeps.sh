#!/usr/bin/env bash
# Records tests/runs/finalize-two-keeps.tar.xz, the run tests/test_finalize.py finalizes: a real
# `autoresearch run` of 4 tiny experiments on the tests' tiny dataset (tests/conftest.py's build, named bundled,
# no test split) in which both proposals were kept, on two different keys (exp 2 batch.total_batch_tokens,
# exp 3 schedule.warmdown_frac), so finalize has two keeps to leave out. About a minute on 2 cores.
#
#   tests/runs/record_finalize_two_keeps.sh        # from the project root, after `make install`
#
# Kept: what finalize reads (results.tsv, settings.json, the run repository, exp/0/config.json); not kept: the
# checkpoints, logs, report and run_id (each copy a test unpacks gets its own run_id, hence its own cache keys).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$root"

mkdir -p "$work/data"
"$python" -c 'import sys; from pathlib import Path; sys.path.insert(0, "."); from tests.conftest import build_tiny_dataset; build_tiny_dataset(Path(sys.argv[1]), "bundled")' "$work/data"
# Every candidate is kept (rule single, a margin far below zero); a large exploration bonus makes the local
# proposer try a second key instead of stepping the kept one again.
PREFECT_HOME="$work/prefect" "$python" -m cli.main run preset=cpu hparams.model.depth=2 hparams.model.aspect_ratio=32 \
  hparams.model.head_dim=32 hparams.batch.device_batch_size=8 hparams.batch.total_batch_tokens=1024 train.seq_len=128 \
  train.eval_tokens=4096 train.eval_batch_size=8 budget.kind=steps budget.steps=4 proposer=local \
  proposer.exploration=100 research.max_experiments=4 decide.rule=single decide.min_delta=-10 decide.sigma_k=-1000 \
  "paths.data_dir=$work/data/datasets" "paths.runs_dir=$work/runs" tag=fin

run="$work/runs/fin"
keys="$(awk -F'\t' 'NR > 1 && $5 == "keep" { print $8 }' "$run/results.tsv" | sort -u | wc -l)"
[ "$keys" = 2 ] || { echo "error: the run did not keep two different keys; see $run/results.tsv" >&2; exit 1; }

keep="$work/keep/fin"
mkdir -p "$keep/exp/0"
cp "$run/results.tsv" "$run/settings.json" "$keep/"
cp "$run/exp/0/config.json" "$keep/exp/0/"
cp -a "$run/repo" "$keep/repo"
rm -rf "$keep/repo/.git/hooks" "$keep/repo/.git/logs" "$keep/repo/.git/ORIG_HEAD"
tar -C "$work/keep" --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -cJf "$root/tests/runs/finalize-two-keeps.tar.xz" fin
echo "recorded tests/runs/finalize-two-keeps.tar.xz ($(wc -c < "$root/tests/runs/finalize-two-keeps.tar.xz") bytes)"
