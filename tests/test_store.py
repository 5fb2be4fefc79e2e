"""The store at work: writes that touch only what changed, duplicates kept right incrementally, the IVF path,
readers that follow writers, upgrades that embed nothing again. All with the stand-in encoder: nothing here
measures retrieval quality."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rag.index.write
from rag import Document, Index
from rag.ingest.dedup import clusters
from rag.ingest.plaintext import parse_document
from rag.models.hashing import HashingEmbedder
from tests.conftest import ROOT, synthetic_articles

WIRE = (
    "Port workers in Busan ended a three-day strike on Friday after the operator agreed to raise night-shift pay "
    "by twelve percent and to hire two hundred crane drivers before the end of the year, the union said. "
    "Container traffic, which had fallen by a third during the stoppage, was expected to return to normal by "
    "Sunday as ships that had waited outside the breakwater were brought in one by one through the night."
)


def story(source: str, text: str, title: str = "Busan port strike ends") -> Document:
    return parse_document(f"{title}\n\n{text}\n", source)


def duplicate_state(index: Index) -> tuple[dict[str, tuple[str | None, str]], dict[int, bytes], dict[int, str]]:
    """source -> (source of the document it copies, source of its cluster's smallest member); the
    signatures and the sources by document id."""
    with index.searcher.store.read() as reader:
        rows = reader.conn.execute(
            "SELECT d.source, (SELECT source FROM documents p WHERE p.id = d.dup_of), "
            "(SELECT source FROM documents c WHERE c.id = d.cluster), d.id, d.minhash FROM documents d"
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}, {r[3]: r[4] for r in rows}, {r[3]: r[0] for r in rows}


def test_incremental_duplicates_equal_a_full_recount(tmp_path: Path):
    index = Index(tmp_path / "idx", model="hashing")
    index.add_documents(
        [
            story("a.txt", WIRE),
            story("b.txt", WIRE),  # the same text: an exact copy
            story("c.txt", WIRE + " Copyright 2025 Harbour Wire. All rights reserved."),  # a near-duplicate
            story("d.txt", "A different story about rail fares in Daegu rising by ten percent next spring."),
        ]
    )
    state, _, _ = duplicate_state(index)
    assert state["b.txt"] == ("a.txt", "a.txt") and state["c.txt"] == (None, "a.txt")
    assert state["d.txt"] == (None, "d.txt")
    index.add_documents([story("e.txt", WIRE.replace("Friday", "Saturday"))])  # joins the cluster
    assert duplicate_state(index)[0]["e.txt"] == (None, "a.txt")
    index.add_documents([story("a.txt", "The holder changed: " + WIRE[:120])])  # the holder's text changes
    state, signatures, names = duplicate_state(index)
    assert state["b.txt"][0] is None, "b holds the wire text now that a changed"
    assert state["a.txt"] == (None, "a.txt") and state["c.txt"][1] == state["e.txt"][1] == "b.txt"
    expected = clusters(signatures.items())
    assert {names[d]: names[c] for d, c in expected.items()} == {s: cluster for s, (_, cluster) in state.items()}
    assert "Daegu" in index.search("rail fares Daegu", k=1).passages[0].text


TEMPLATE = (
    "Harbour market report for {day}. Container volumes at the port of Busan reached {volume} units this week, "
    "the port authority said. Rates for a forty-foot box to Rotterdam stood at {rate} dollars, while feeder "
    "services to Incheon and Kaohsiung ran on their usual schedules. Analysts expect volumes to stay near this "
    "level until the end of the quarter, citing steady demand for electronics and car parts."
)


def templated(n: int, start: int) -> list[Document]:
    """Records made from one template: every one a near-duplicate of every other, all in the same buckets."""
    return [
        story(f"report-{i}.txt", TEMPLATE.format(day=f"2024-03-{i % 28 + 1:02d}", volume=10_000 + i, rate=900 + i))
        for i in range(start, start + n)
    ]


def test_grouping_work_per_added_record_is_bounded_whatever_the_collection_size(tmp_path: Path, monkeypatch):
    """Each added record is compared with at most the most recent members of its buckets: a constant, where
    comparing it with every record it shares a bucket with grew with the collection (quadratic in all)."""
    import rag.build.update
    from rag.ingest.dedup import BANDS, NEIGHBOURS_PER_BUCKET

    compared = 0
    real = rag.build.update.similarity

    def counted(a: bytes, b: bytes) -> float:
        nonlocal compared
        compared += 1
        return real(a, b)

    monkeypatch.setattr(rag.build.update, "similarity", counted)
    index = Index(tmp_path / "idx", model="hashing")
    per_record, start = [], 0
    for size in (60, 600):
        index.add_documents(templated(size, start=start))
        start += size
        compared = 0
        index.add_documents(templated(5, start=10_000 + size))
        per_record.append(compared / 5)
    assert max(per_record) <= BANDS * NEIGHBOURS_PER_BUCKET and per_record[1] < 660 / 4, per_record
    state, _, _ = duplicate_state(index)
    assert len({cluster for _, cluster in state.values()}) == 1, "the template's records are one story"


def test_removing_a_holder_promotes_its_copy_without_embedding(tmp_path: Path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text(f"Busan port strike ends\n\n{WIRE}\n")
    (folder / "b.txt").write_text(f"Busan port strike ends\n\n{WIRE}\n")
    index = Index(tmp_path / "idx", model="hashing")
    first = index.add([folder])
    (folder / "a.txt").unlink()
    report = index.add([folder])
    assert (report.removed, report.embedded, report.chunks) == (1, 0, first.chunks)
    answer = index.search("How much did night-shift pay rise in Busan?", k=1)
    assert answer.passages[0].source == "b.txt"


def test_a_write_touches_only_its_rows(tmp_path: Path, corpus_copy: Path):
    index = Index(tmp_path / "idx", model="hashing")
    index.add([corpus_copy])
    with index.searcher.store.read() as reader:
        before = dict(reader.conn.execute("SELECT id, indexed_at FROM documents"))
    vectors = next((tmp_path / "idx").glob("vectors-*.f16"))
    size = vectors.stat().st_size
    (corpus_copy / "new.txt").write_text(f"Busan port strike ends\n\n{WIRE}\n")
    report = index.add([corpus_copy])
    assert (report.added, report.unchanged, report.embedded) == (1, 7, 1)
    with index.searcher.store.read() as reader:
        after = dict(reader.conn.execute("SELECT id, indexed_at FROM documents"))
    assert {k: v for k, v in after.items() if k in before} == before, "no other document row was rewritten"
    assert vectors.stat().st_size == size + 384 * 2, "one new fp16 row appended, nothing rewritten"


def test_unchanged_files_are_not_read_again(tmp_path: Path, corpus_copy: Path, monkeypatch):
    index = Index(tmp_path / "idx", model="hashing")
    index.add([corpus_copy])
    reads = []
    import rag.build.update

    original = rag.build.update.read_documents
    monkeypatch.setattr(
        rag.build.update, "read_documents", lambda path, *a: reads.append(path.name) or original(path, *a)
    )
    import os
    import time

    old = time.time() - 60
    for path in corpus_copy.iterdir():
        os.utime(path, (old, old))
    index.add([corpus_copy])  # records the settled modification times
    reads.clear()
    report = index.add([corpus_copy])
    assert reads == [] and report.unchanged == 7
    (corpus_copy / "001_33dd8276e80e8104.txt").write_text("A new text\n\nEntirely different now, about ferries.\n")
    report = index.add([corpus_copy])
    assert reads == ["001_33dd8276e80e8104.txt"] and report.updated == 1


def test_a_reader_follows_writes_without_rebuilding(tmp_path: Path, corpus_copy: Path):
    reader = Index(tmp_path / "idx", model="hashing")
    reader.add([corpus_copy])
    assert reader.search("Vermont senator", k=3).passages
    dense = reader.searcher.dense_index()
    writer = Index(tmp_path / "idx")
    (corpus_copy / "003_a37b0dba77dbb840.txt").unlink()
    (corpus_copy / "new.txt").write_text(f"Busan port strike ends\n\n{WIRE}\n")
    writer.add([corpus_copy])
    reader.reload()
    assert reader.searcher.dense_index() is dense, "followed in place"
    with reader.searcher.store.read() as r:
        live = set(r.live_chunk_ids().tolist())
    assert dense.ntotal == len(live)
    hybrid = reader.search("How much did night-shift pay rise at the port?", k=3)
    assert hybrid.passages[0].source == "new.txt"
    assert all("Bernie Sanders" not in p.text for p in reader.search("Vermont senator Sanders", k=10).passages)


@pytest.mark.slow
def test_the_ivf_path_trains_appends_and_follows(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(rag.index.write, "ANN_MIN_ROWS", 2_000)
    corpus = tmp_path / "corpus"
    synthetic_articles(corpus, articles=150, seed=5)
    index = Index(tmp_path / "idx", model="hashing")
    report = index.add([corpus])
    assert report.chunks > 2_000
    meta = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert meta["chunks"] == report.chunks
    dense = index.searcher.dense_index()
    assert dense.approximate and dense.ntotal == report.chunks
    # with every list probed, IVF must give exactly the exact ranking
    dense.index.nprobe = dense.index.nlist
    embedder = HashingEmbedder()
    with index.searcher.store.read() as reader:
        ids = np.sort(reader.live_chunk_ids())
    exact = dense.vectors.read(ids)
    for question in ("harbour strike pay", "senator election campaign", "North Korea summit"):
        q = embedder.encode_query(question)
        expected = ids[np.argsort(-(exact @ q[0]), kind="stable")[:10]]
        assert [cid for cid, _ in dense.search(q, 10)] == expected.tolist()
    # later writes get their lists at append time, deletions leave through the reader's refresh
    (corpus / "late.txt").write_text(f"Busan port strike ends\n\n{WIRE}\n")
    (corpus / "archive-0000.jsonl").unlink()
    index.add([corpus])
    assert index.searcher.dense_index().ntotal == index.info().chunks
    assert index.search("night-shift pay crane drivers", k=1).passages[0].source == "late.txt"


def test_a_format_2_index_is_upgraded_without_embedding(tmp_path: Path, corpus_copy: Path):
    built = Index(tmp_path / "new", model="hashing")
    built.add([corpus_copy])
    with built.searcher.store.read() as reader:
        rows = reader.conn.execute("SELECT id, input_hash FROM chunks").fetchall()
    vectors = built.searcher.vectors.read([cid for cid, _ in rows])
    legacy = tmp_path / "legacy"
    (legacy / "gen-000001").mkdir(parents=True)
    conn = sqlite3.connect(legacy / "gen-000001" / "rag.sqlite")
    conn.execute("CREATE TABLE chunks (input_hash TEXT, vector BLOB)")
    conn.executemany(
        "INSERT INTO chunks VALUES (?, ?)",
        [(digest.hex() + "0" * 32, vec.astype(np.float32).tobytes()) for (_, digest), vec in zip(rows, vectors)],
    )
    conn.commit()
    conn.close()
    (legacy / "gen-000001" / "manifest.json").write_text(json.dumps({"format_version": 2, "model": "hashing"}))
    (legacy / "CURRENT").write_text("gen-000001\n")
    index = Index(legacy, model="hashing")
    assert index.outdated()
    report = index.add([corpus_copy])
    assert (report.added, report.embedded) == (7, 0)
    assert not (legacy / "CURRENT").exists() and not (legacy / "gen-000001").exists()
    assert not index.outdated()


def landed_format_3(folder: Path) -> None:
    """Make an index what the versions before numbered migrations wrote: format 3, no package version, keys
    written one by one (no ann_trained_rows until an IVF was trained), documents without `crawled`."""
    conn = sqlite3.connect(folder / "rag.sqlite")
    with conn:
        conn.execute("DELETE FROM meta WHERE key IN ('package_version', 'ann_trained_rows')")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'format_version'")
        conn.execute("ALTER TABLE documents DROP COLUMN crawled")
    conn.close()


def document_columns(folder: Path) -> set[str]:
    conn = sqlite3.connect(folder / "rag.sqlite")
    try:
        return {row[1] for row in conn.execute("PRAGMA table_info(documents)")}
    finally:
        conn.close()


def test_an_index_of_the_format_before_migrations_opens_and_its_next_write_records_the_version(
    tmp_path: Path, corpus_copy: Path
):
    from rag.index.schema import FORMAT_VERSION, package_version

    Index(tmp_path / "idx", model="hashing").add([corpus_copy])
    landed_format_3(tmp_path / "idx")
    index = Index(tmp_path / "idx")
    info = index.info()
    assert (info.manifest.format_version, info.manifest.package_version, info.document_count) == (3, None, 7)
    hit = index.search("Sejong", k=1, mode="keyword").passages[0]  # read as it is: no crawl day, no error
    assert hit.crawled is None and index.document(hit.doc_id).crawled is None
    assert "crawled" not in document_columns(tmp_path / "idx")
    (corpus_copy / "new.txt").write_text(f"Busan port strike ends\n\n{WIRE}\n")
    assert index.add([corpus_copy]).added == 1
    assert "crawled" in document_columns(tmp_path / "idx")  # migration 4, in that write's transaction
    after = Index(tmp_path / "idx").info().to_dict()
    assert (after["format_version"], after["package_version"]) == (FORMAT_VERSION, package_version())
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["package_version"] == package_version()


def test_a_numbered_migration_runs_once_inside_the_next_write(tmp_path: Path, corpus_copy: Path, monkeypatch):
    """A step registered for the next format: the index still reads before it runs, the next write applies it
    in its own transaction (a write that fails leaves the format and the schema as they were), and a later
    write does not run it again."""
    from rag.errors import IndexFormatError
    from rag.index import schema

    Index(tmp_path / "idx", model="hashing").add([corpus_copy])
    ran: list[int] = []

    def add_column(conn: sqlite3.Connection) -> None:
        ran.append(1)
        conn.execute("ALTER TABLE documents ADD COLUMN note TEXT")

    step = schema.Migration(schema.FORMAT_VERSION + 1, "a note on each document", add_column)
    monkeypatch.setitem(schema.MIGRATIONS, schema.FORMAT_VERSION + 1, step)
    index = Index(tmp_path / "idx")
    assert index.info().manifest.format_version == schema.FORMAT_VERSION, "readable before the step runs"

    def columns() -> set[str]:
        conn = sqlite3.connect(tmp_path / "idx" / "rag.sqlite")
        try:
            return {row[1] for row in conn.execute("PRAGMA table_info(documents)")}
        finally:
            conn.close()

    (corpus_copy / "bad.txt").write_text(f"Busan port strike ends\n\n{WIRE}\n")
    monkeypatch.setattr(rag.index.write.Writer, "finish", lambda self: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError):
        index.add([corpus_copy])
    assert "note" not in columns() and index.info().manifest.format_version == schema.FORMAT_VERSION
    monkeypatch.undo()
    monkeypatch.setitem(schema.MIGRATIONS, schema.FORMAT_VERSION + 1, step)
    index.add([corpus_copy])
    assert "note" in columns() and Index(tmp_path / "idx").info().manifest.format_version == step.to_version
    (corpus_copy / "more.txt").write_text(f"Busan strike, day two\n\n{WIRE} Again.\n")
    index.add([corpus_copy])
    assert ran == [1, 1], "once in the failed write, once in the one that committed, never after"
    monkeypatch.delitem(schema.MIGRATIONS, schema.FORMAT_VERSION + 1)
    with pytest.raises(IndexFormatError, match=f"has index format {step.to_version}, this version reads formats 3 to"):
        Index(tmp_path / "idx").info()


def test_keyword_questions_never_load_the_model(seed_index: Index):
    code = (
        "import sys\nfrom rag.serve.cli import main\n"
        f"args = ['ask', 'Which senator from Vermont?', '--mode', 'keyword', '--index', {str(seed_index.path)!r}]\n"
        "code = main(args)\n"
        "assert code == 0, code\n"
        "loaded = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "Bernie Sanders" in result.stdout


def test_the_stand_in_encoder_is_deterministic_and_normalised():
    first, second = HashingEmbedder(), HashingEmbedder()
    texts = ["Busan port strike ends", "", "이재명 후보", WIRE]
    a, b = first.encode(texts), second.encode(texts)
    assert np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    near = float(a[0] @ first.encode_query("strike at Busan port")[0])
    far = float(a[0] @ first.encode_query("senator from Vermont")[0])
    assert near > far


def test_copies_of_an_index_folder_are_independent(tmp_path: Path, corpus_copy: Path):
    index = Index(tmp_path / "idx", model="hashing")
    index.add([corpus_copy])
    shutil.copytree(tmp_path / "idx", tmp_path / "copy")
    copy = Index(tmp_path / "copy")
    assert copy.search("Vermont senator", k=1).passages[0].text == index.search("Vermont senator", k=1).passages[0].text


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_questions_are_refused(tmp_path: Path, corpus_copy: Path, bad: str):
    from rag import InvalidQueryError

    index = Index(tmp_path / "idx", model="hashing")
    index.add([corpus_copy])
    with pytest.raises(InvalidQueryError):
        index.search(bad)
