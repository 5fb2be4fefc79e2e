"""A crash mid-write must leave the previous index or the new one, whole, and the next write must go on.

Each named step of a write (`rag.store.crash_point`) is killed in turn, then random moments, then the same on
an index of 100,000 chunks. After each crash the index must open, its counts must agree (documents, chunk
rows, full-text rows, vectors the dense index holds), a known question must still find its passage, and the
next write must give exactly what an uninterrupted run gives.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import Index
from rag.store import CRASH_ENV
from tests.conftest import synthetic_articles

QUESTION = "Which senator from Vermont did Kim Jong-hoon meet?"
EVIDENCE = "Bernie Sanders"
CHILD = """
import sys
from rag import Index
Index(sys.argv[1], model="hashing").add(sys.argv[2:])
"""
STEPS = [
    "documents-written",
    "chunks-written",
    "vectors-appended",
    "before-commit",
    "lexical-committed",
    "after-commit",
]


def index_in_child(index: Path, *paths: Path, crash_at: str | None = None) -> subprocess.Popen:
    env = {**os.environ, CRASH_ENV: crash_at or ""}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(index), *map(str, paths)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def state(index_dir: Path) -> dict:
    """What a reader sees, checked for consistency on the way."""
    index = Index(index_dir)
    info = index.info()
    searcher = index.searcher
    with searcher.store.read() as reader:
        counts = reader.counts()
    rows = counts["chunks"]
    assert info["chunks"] == rows == searcher.lexical.passages() == searcher.dense_index().ntotal
    assert len(info["documents"]) == info["document_count"]
    return {"documents": sorted(d["source"] for d in info["documents"]), "chunks": rows}


def finds_evidence(index_dir: Path) -> bool:
    answer = Index(index_dir).search(QUESTION, k=5, mode="keyword")
    return any(EVIDENCE in p.text for p in answer.passages)


def add_copies(corpus: Path, n: int) -> None:
    for i in range(n):
        for src in sorted(corpus.glob("00*.txt"))[:2]:
            (corpus / f"copy{i:02d}_{src.name}").write_text(f"Copy {i} of an article\n" + src.read_text())


@pytest.mark.parametrize("step", STEPS)
def test_a_write_killed_at_each_step_leaves_a_whole_index(tmp_path: Path, corpus_copy: Path, step: str):
    idx = tmp_path / "idx"
    Index(idx, model="hashing").add([corpus_copy])
    before = state(idx)
    add_copies(corpus_copy, 3)
    (corpus_copy / "001_33dd8276e80e8104.txt").unlink()

    child = index_in_child(idx, corpus_copy, crash_at=step)
    child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()

    after = state(idx)
    assert after == before if step != "after-commit" else after != before
    assert finds_evidence(idx)
    Index(idx).add([corpus_copy])
    clean = tmp_path / "clean"
    Index(clean, model="hashing").add([corpus_copy])
    assert state(idx) == state(clean)
    assert finds_evidence(idx)


def test_writes_killed_at_random_moments(tmp_path: Path, corpus_copy: Path):
    idx = tmp_path / "idx"
    Index(idx, model="hashing").add([corpus_copy])
    states = [state(idx)]
    rng = random.Random(7)
    for round_ in range(6):
        add_copies(corpus_copy, 20 + round_)
        child = index_in_child(idx, corpus_copy)
        time.sleep(rng.uniform(0.2, 1.5))
        child.kill()
        child.wait()
        now = state(idx)
        clean = tmp_path / f"clean{round_}"
        Index(clean, model="hashing").add([corpus_copy])
        assert now in (states[-1], state(clean)), "a state that is neither the one before nor the one after"
        assert finds_evidence(idx)
        Index(idx).add([corpus_copy])
        states.append(state(idx))
    report = Index(idx).add([corpus_copy])
    assert report.chunks == state(idx)["chunks"]
    assert not [p for p in idx.iterdir() if p.name.startswith(".staging")]


def test_a_killed_write_on_100k_chunks(tmp_path: Path, corpus_copy: Path):
    """The same promise at a size where the old design copied a gigabyte per write."""
    big = tmp_path / "archive"
    synthetic_articles(big, articles=6_500, seed=3)
    idx = tmp_path / "idx"
    report = Index(idx, model="hashing").add([big, corpus_copy])
    assert report.chunks >= 100_000
    before = state(idx)
    (corpus_copy / "new_story.txt").write_text(
        "Harbour pilots strike in Busan\n\nPilots at the port of Busan stopped work on Monday over pay, "
        "and forty container ships waited outside the breakwater until the evening.\n"
    )
    for step in ("vectors-appended", "before-commit"):
        child = index_in_child(idx, big, corpus_copy, crash_at=step)
        child.wait(timeout=300)
        assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()
        assert state(idx) == before
    assert finds_evidence(idx)
    report = Index(idx).add([big, corpus_copy])
    assert (report.added, report.removed) == (1, 0)
    assert state(idx)["chunks"] == before["chunks"] + 1
    assert (
        "forty container ships" in Index(idx).search("How many container ships waited in Busan?", k=1).passages[0].text
    )


def test_a_first_build_killed_before_its_commit_leaves_no_index_and_the_next_build_goes_on(
    tmp_path: Path, corpus_copy: Path
):
    idx = tmp_path / "idx"
    child = index_in_child(idx, corpus_copy, crash_at="chunks-written")
    child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL
    assert not Index(idx).exists()
    report = Index(idx, model="hashing").add([corpus_copy])
    assert report.added == 7 and finds_evidence(idx)
