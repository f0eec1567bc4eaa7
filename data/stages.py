"""The three DVC stage commands: `python -m data.stages {corpus|tokenizer|shards} NAME`.

Each stage reads conf/dataset/NAME.yaml as plain YAML, builds its output folder beside the old one and
swaps it in only when complete. The functions are also called directly (tests, the tiny_dataset fixture).
A DataError ends the command with its one sentence on stderr (prefixed `DataError:` so
data.prepare can pass it on) and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data import layout
from data.corpus import build_corpus, iter_corpus_texts
from data.errors import DataError
from data.spec import load_dataset_spec
from data.staging import building

STAGES = ("corpus", "tokenizer", "shards")


def _spec(name: str, root: str | Path, spec: dict | None) -> dict:
    return spec or load_dataset_spec(name, Path(root) / "conf")


def run_corpus(name: str, root: str | Path = ".", spec: dict | None = None, base_url: str | None = None) -> dict:
    return build_corpus(name, root, base_url=base_url, spec=_spec(name, root, spec))


def _limited(batches, max_chars: int | None):
    """Pass batches of texts through until max_chars characters have gone by (None = no limit)."""
    seen = 0
    for batch in batches:
        if max_chars is not None and seen >= max_chars:
            return
        seen += sum(map(len, batch))
        yield batch


def run_tokenizer(name: str, root: str | Path = ".", spec: dict | None = None) -> dict:
    from data.tokenizer import train_tokenizer

    spec = _spec(name, root, spec)
    corpus = layout.corpus_dir(name, root)
    corpus_meta = json.loads((corpus / "meta.json").read_text(encoding="utf-8"))
    limit = spec.get("tokenizer_train_chars")
    texts = _limited(iter_corpus_texts(corpus, "train"), int(limit) if limit else None)
    with building(layout.tokenizer_dir(name, root)) as out_dir:
        return train_tokenizer(
            texts, out_dir, int(spec["vocab_size"]),
            invalid_utf8_sequences=corpus_meta.get("invalid_utf8_sequences", 0),
            extra_meta={"dataset": name},
        )


def run_shards(name: str, root: str | Path = ".", spec: dict | None = None) -> dict:
    from data.shard_builder import build_shards

    spec = _spec(name, root, spec)
    with building(layout.shard_dir(name, root)) as out_dir:
        return build_shards(layout.corpus_dir(name, root), layout.tokenizer_dir(name, root), out_dir, name,
                            int(spec.get("shard_tokens", 50_000_000)))


RUNNERS = {"corpus": run_corpus, "tokenizer": run_tokenizer, "shards": run_shards}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.stages", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("dataset")
    parser.add_argument("--root", default=".", help="project root (DVC runs stages from there)")
    args = parser.parse_args(argv)
    try:
        RUNNERS[args.stage](args.dataset, args.root)
    except DataError as error:
        print(f"DataError: {error}", file=sys.stderr, flush=True)
        return 2
    print(f"{args.stage} {args.dataset}: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
