"""An index records the precision its vectors were computed in; its questions are encoded in the same, and a
change of precision embeds every stored passage again (in one commit, surviving a kill), saying so."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag import Index
from rag.index.crash import CRASH_ENV
from rag.serve.cli import main as cli
from tests.conftest import CORPUS

pytestmark = pytest.mark.slow  # the real model, in both precisions

QUESTION = "Which city did Kim Kyoung-soo promise to move the presidential office to?"
EVIDENCE = "Sejong"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    shutil.copytree(CORPUS, folder)
    return folder


def vectors_by_text(index: Index) -> dict[str, np.ndarray]:
    """Each live passage's stored vector, by its text (chunk ids differ between indexes)."""
    searcher = index.searcher
    with searcher.store.read() as reader:
        rows = reader.passage_rows(reader.live_chunk_ids().tolist())
    stored = searcher.vectors.read([row.id for row in rows])
    return {row.text: vector for row, vector in zip(rows, stored, strict=True)}


def finds_evidence(index: Index) -> bool:
    return any(EVIDENCE in p.text for p in index.search(QUESTION, k=3, mode="semantic").passages)


def test_a_change_of_precision_embeds_the_stored_passages_again_as_a_fresh_build_would(tmp_path: Path, corpus: Path):
    exact = Index(tmp_path / "idx", precision="fp32", multilingual=False)
    built = exact.add([corpus])
    assert built.precision == "fp32" and exact.info().manifest.precision == "fp32"
    assert not Index(tmp_path / "idx").outdated(), "an index keeps its own precision unless asked"
    assert Index(tmp_path / "idx").embedder.precision == "fp32"
    assert finds_evidence(exact) and exact.searcher.embedder.precision == "fp32"
    old_files = {p.name for p in (tmp_path / "idx").glob("vectors-*.f16")}

    changed = Index(tmp_path / "idx", precision="int8")
    assert changed.outdated()
    report = changed.add([corpus])
    assert report.reembedded == built.chunks and report.embedded == 0 and report.unchanged == built.added
    assert changed.info().manifest.precision == "int8"
    assert {p.name for p in (tmp_path / "idx").glob("vectors-*.f16")}.isdisjoint(old_files), "a new vector file"
    assert changed.searcher.embedder.precision == "int8", "questions follow the index's precision"
    assert finds_evidence(changed)

    fresh = Index(tmp_path / "fresh", precision="int8", multilingual=False)
    fresh.add([corpus])
    again, clean = vectors_by_text(changed), vectors_by_text(fresh)
    assert again.keys() == clean.keys()
    assert all(np.array_equal(again[text], clean[text]) for text in clean), "the vectors a fresh build computes"
    # Their cache keys are the fresh build's too: adding a copy of an article embeds nothing.
    (corpus / "copy.txt").write_text((corpus / sorted(os.listdir(corpus))[0]).read_text())
    assert changed.add([corpus]).embedded == 0


def test_an_index_written_before_precisions_were_recorded_keeps_its_float_vectors_until_int8_is_asked(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
):
    built = Index(tmp_path / "idx", multilingual=False).add([corpus])
    with sqlite3.connect(tmp_path / "idx" / "rag.sqlite") as conn:  # as an older version (torch) wrote it
        conn.execute("DELETE FROM meta WHERE key = 'precision'")
    old = Index(tmp_path / "idx")
    assert old.info().manifest.precision is None and old.embedder.precision == "fp32" and not old.outdated()
    assert old.searcher.embedder.precision == "fp32" and finds_evidence(old)
    assert cli(["info", "--index", str(tmp_path / "idx")]) == 0
    assert "(384 dimensions, float32 vectors)" in capsys.readouterr().out
    assert cli(["index", str(corpus), "--index", str(tmp_path / "idx"), "--quiet"]) == 0
    assert "embedded again" not in capsys.readouterr().err, "float32 vectors are kept"

    asked = ["index", str(corpus), "--index", str(tmp_path / "idx"), "--quiet", "--precision", "int8"]
    assert cli(asked) == 0
    err = capsys.readouterr().err
    assert f"embedded again: {built.chunks} stored passages, now in int8" in err
    assert Index(tmp_path / "idx").info().manifest.precision == "int8"
    assert cli(["info", "--index", str(tmp_path / "idx")]) == 0
    assert "(384 dimensions, int8 vectors)" in capsys.readouterr().out
    assert cli(["index", str(corpus), "--index", str(tmp_path / "idx"), "--quiet"]) == 0
    assert "embedded again" not in capsys.readouterr().err, "the index keeps int8 unless asked otherwise"
    assert Index(tmp_path / "idx").embedder.precision == "int8"


CHILD = """
import sys
from rag import Index
Index(sys.argv[1], precision="int8").add(sys.argv[2:])
"""


def test_a_change_of_precision_killed_halfway_leaves_the_index_as_it_was(tmp_path: Path, corpus: Path):
    index = Index(tmp_path / "idx", precision="fp32", multilingual=False)
    index.add([corpus])
    before = vectors_by_text(index)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "idx"), str(corpus)],
        env={**os.environ, CRASH_ENV: "vectors-appended"},  # after the first block of new vectors is written
        capture_output=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    after = Index(tmp_path / "idx")
    assert after.info().manifest.precision == "fp32" and after.searcher.embedder.precision == "fp32"
    kept = vectors_by_text(after)
    assert kept.keys() == before.keys() and all(np.array_equal(kept[t], before[t]) for t in before)
    assert finds_evidence(after)

    resumed = Index(tmp_path / "idx", precision="int8")
    assert resumed.add([corpus]).reembedded == len(before)
    assert resumed.info().manifest.precision == "int8" and finds_evidence(resumed)
    assert {p.name for p in (tmp_path / "idx").glob("vectors-*.f16")} == {"vectors-000002.f16"}
