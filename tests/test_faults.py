"""The fault campaign: whatever happens to a write, the index is the previous state or the new one, whole,
and the next write goes on without a person.

- SIGKILL at each named step of a write (`rag.index.store.crash_point`: after each file is written or renamed,
  during embedding, during the SQLite commit), at random moments, and on an index of 100,000 chunks;
- a full disk (a small tmpfs where this machine may mount one, and always a file-size limit, which fails
  writes the same way), a read-only index folder, two writers at once, a reader open across many writes.

After each case the index must open, its counts must agree (documents, chunk rows, lexical passages, vectors
the dense index holds), a known question must still find its passage, and the next write must give exactly
what an uninterrupted run gives.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rag.build.update
from rag import Index
from rag.errors import UnknownSourceError
from rag.index import lexical as lexical_index
from rag.index.crash import CRASH_ENV
from tests.conftest import synthetic_articles

pytestmark = pytest.mark.slow  # the fault campaign: processes killed at every step of a write

QUESTION = "Which senator from Vermont did Kim Jong-hoon meet?"
EVIDENCE = "Bernie Sanders"
CHILD = """
import os, sys
import rag.index.write
from rag import Index
if "ANN_MIN_ROWS" in os.environ:  # IVF on a small index: a few lists, trained from what there is
    rag.index.write.ANN_MIN_ROWS = int(os.environ["ANN_MIN_ROWS"])
    rag.index.write.lists_for = lambda rows: 4
Index(sys.argv[1], model="hashing").add(sys.argv[2:])  # the multilingual arm as the index has it
"""
STEPS = [
    "documents-written",
    "embedding",
    "chunks-written",
    "vectors-appended",
    "multilingual-appended",
    "before-commit",
    "lexical-pending-written",
    "lexical-committed",
    "during-commit",
    "after-commit",
    "manifest-written",
    "ann-trained",  # the child trains IVF centroids at 20 passages (ANN_MIN_ROWS), then dies before its commit
]
COMMITTED = {"after-commit", "manifest-written"}


def index_in_child(index: Path, *paths: Path, crash_at: str | None = None) -> subprocess.Popen:
    env = {**os.environ, CRASH_ENV: crash_at or "", **({"ANN_MIN_ROWS": "20"} if crash_at == "ann-trained" else {})}
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
    rows = counts.chunks
    assert info.chunks == rows == searcher.lexical.passages() == searcher.dense_index().ntotal
    assert len(info.documents) == info.document_count
    multilingual = searcher.multilingual_index()
    if multilingual is not None:  # the second arm's rows follow the same commits
        assert multilingual.ntotal == rows
        assert multilingual.layout.rows == searcher.dense_index().layout.rows
        on_disk = multilingual.vectors.rows_on_disk()
        assert on_disk >= multilingual.layout.rows  # a killed writer's tail may follow, never a gap
        live = multilingual.vectors.read(sorted(reader_ids(index_dir)))
        assert (abs(live).sum(axis=1) > 0).all()  # every live chunk has its vector
    return {"documents": sorted(d.source for d in info.documents), "chunks": rows}


def reader_ids(index_dir: Path) -> list[int]:
    with Index(index_dir).searcher.store.read() as reader:
        return reader.live_chunk_ids().tolist()


def state_of_clean_build(folder: Path, *paths: Path) -> dict:
    """What a clean build of `paths` holds. With the hashing stand-in the multilingual arm is off, as in the
    faulted indexes compared with it (the tests of the arm under kills build their own with it): encoding
    every passage with the arm cost 13-17 s a call and changed nothing `state` compares."""
    Index(folder, model="hashing").add(list(paths))
    return state(folder)


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
    Index(idx, model="hashing", multilingual=True).add([corpus_copy])
    before = state(idx)
    add_copies(corpus_copy, 3)
    (corpus_copy / "001_33dd8276e80e8104.txt").unlink()

    child = index_in_child(idx, corpus_copy, crash_at=step)
    child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()

    after = state(idx)
    if step == "during-commit":  # killed inside the commit, or just after it: either whole state
        assert after == before or after == state_of_clean_build(tmp_path / "during", corpus_copy)
    else:
        assert (after != before) if step in COMMITTED else (after == before)
    assert finds_evidence(idx)
    Index(idx).add([corpus_copy])
    clean = tmp_path / "clean"
    Index(clean, model="hashing", multilingual=True).add([corpus_copy])
    assert state(idx) == state(clean)
    assert finds_evidence(idx)
    assert finds_across_languages(idx)


def finds_across_languages(index_dir: Path) -> bool:
    """The multilingual arm after the kill: a Korean question still reaches the English evidence."""
    answer = Index(index_dir).search("김경수가 대통령실을 옮기겠다고 한 도시는?", k=5, mode="hybrid")
    return any("relocate the presidential office from Seoul to Sejong" in p.text for p in answer.passages)


def test_writes_killed_at_random_moments(tmp_path: Path, corpus_copy: Path):
    idx = tmp_path / "idx"
    Index(idx, model="hashing", multilingual=True).add([corpus_copy])  # both arms' files under the kills
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


def test_files_a_write_killed_inside_the_lexical_commit_left_do_not_stop_the_next_write(
    tmp_path: Path, corpus_copy: Path
):
    """A writer killed inside tantivy's commit has written the new segment and deletion files but not the meta
    that names them. The next writer makes the same deletions at the same operation stamp and would create one
    of those files again (seen in CI as `FileAlreadyExists(....del)` after a random kill). Recreated here
    exactly: the same write made on a copy, its new files put beside the index as the killed writer left them."""
    idx, twin = tmp_path / "idx", tmp_path / "twin"
    Index(idx, model="hashing").add([corpus_copy])
    shutil.copytree(idx, twin)
    story = sorted(corpus_copy.glob("*.txt"))[0]
    story.write_text(story.read_text() + "\n\nHarbour pilots stopped work on Monday over pay.\n")
    Index(twin).add([corpus_copy])
    ours, theirs = idx / lexical_index.FOLDER, twin / lexical_index.FOLDER
    left = [f for f in theirs.iterdir() if not (ours / f.name).exists() and f.name != "meta.json"]
    assert any(f.name.endswith(".del") for f in left)
    for f in left:
        shutil.copy(f, ours / f.name)
    shutil.copy(theirs / ".managed.json", ours / ".managed.json")  # tantivy lists a file before writing it
    report = Index(idx).add([corpus_copy])
    assert report.updated == 1 and state(idx) == state(twin)
    assert "Harbour pilots stopped work" in Index(idx).search("Why did harbour pilots stop work?", k=1).passages[0].text


def test_a_killed_write_on_10k_chunks(tmp_path: Path, corpus_copy: Path):
    """The same promise at a size where the old design copied hundreds of megabytes per write (bench/scale.py
    measures writes at 1M; 10k keeps the suite inside its time)."""
    big = tmp_path / "archive"
    synthetic_articles(big, articles=650, seed=3)
    idx = tmp_path / "idx"
    report = Index(idx, model="hashing").add([big, corpus_copy])
    assert report.chunks >= 10_000
    before = state(idx)
    (corpus_copy / "new_story.txt").write_text(
        "Harbour pilots strike in Busan\n\nPilots at the port of Busan stopped work on Monday over pay, "
        "and forty container ships waited outside the breakwater until the evening.\n"
    )
    for step in ("before-commit",):  # every step is killed on the small index above; here the largest write
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


# --- the folder refuses writes ----------------------------------------------------------------------------
def mount(*args: str) -> bool:
    """Whether this machine lets the tests mount (root with the capability, as CI has); else they fall back."""
    return os.geteuid() == 0 and subprocess.run(["mount", *args], capture_output=True).returncode == 0


def unmount(path: Path) -> None:
    """Unmount once the test's own handles are closed; lazily if one is still held."""
    gc.collect()
    if subprocess.run(["umount", str(path)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def rag_index(index: Path, *paths: Path, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag", "index", *map(str, paths), "--index", str(index), "--quiet"],
        capture_output=True,
        text=True,
        preexec_fn=preexec,
        timeout=120,
    )


def limit_file_size(limit: int):
    """For a child: any file write past `limit` bytes fails with EFBIG, as a full disk fails it."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def unnamed_lexical_files(idx: Path) -> list[str]:
    """Files of the lexical index that its committed meta.json does not name (what a failed write began)."""
    folder = idx / lexical_index.FOLDER
    named = {s["segment_id"].replace("-", "") for s in json.loads((folder / "meta.json").read_text())["segments"]}
    return [
        f.name for f in folder.iterdir() if f.name[0] != "." and f.name.split(".")[0] not in named | {"meta", "pending"}
    ]


@pytest.mark.parametrize("how", ["tmpfs", "file-size-limit"])
def test_a_full_disk_leaves_the_index_as_it_was_and_the_next_write_goes_on(tmp_path: Path, corpus_copy: Path, how):
    disk = tmp_path / "disk"
    disk.mkdir()
    idx = disk / "idx"
    more = tmp_path / "more"
    synthetic_articles(more, articles=120, seed=4)
    if how == "tmpfs" and not mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)):
        pytest.skip("this machine may not mount a tmpfs; the file-size limit case covers a full disk")
    try:
        Index(idx, model="hashing").add([corpus_copy])
        before = state(idx)
        if how == "tmpfs":
            refused = rag_index(idx, corpus_copy, more)
        else:
            refused = rag_index(idx, corpus_copy, more, preexec=limit_file_size((idx / "rag.sqlite").stat().st_size))
        assert refused.returncode == 2, refused.stderr
        message = refused.stderr.strip().splitlines()
        assert len(message) == 1 and message[0].startswith(f"error: cannot write the index in {idx}: "), message
        assert state(idx) == before and finds_evidence(idx)
        assert not unnamed_lexical_files(idx), "what the failed write began is not left holding the space"
        if how == "tmpfs":
            assert mount("-o", "remount,size=64m", str(disk))
        report = Index(idx).add([corpus_copy, more])
        assert state(idx) == state_of_clean_build(tmp_path / "clean", corpus_copy, more)
        assert report.added == 120 and finds_evidence(idx)
    finally:
        if how == "tmpfs":
            unmount(disk)


def rag_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, timeout=120)


def fill(disk: Path) -> Path:
    """Write a file on `disk` until no byte more fits."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
    with open(filler, "ab", buffering=0) as out:  # the last few bytes
        try:
            while True:
                out.write(b"\0")
        except OSError:
            pass
    return filler


def test_an_index_on_a_full_disk_answers_every_read_and_refuses_writes_in_one_line(tmp_path: Path, corpus_copy: Path):
    """Built cleanly (no WAL side files left), then the disk filled to its last byte: every search, `rag info`
    and the Python API answer; `rag index` says in one line that there is no room; once space is freed, the
    next write goes on and an open index follows it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not mount("-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)):
        pytest.skip("this machine may not mount a tmpfs: a full disk cannot be made here")
    idx = disk / "idx"
    try:
        built = rag_cli("index", str(corpus_copy), "--index", str(idx), "--model", "hashing", "--quiet")
        assert built.returncode == 0, built.stderr
        assert not (idx / "rag.sqlite-wal").exists() and not (idx / "rag.sqlite-shm").exists()
        filler = fill(disk)
        question = "Which summit is Lee attending in Canada?"
        for mode in ("keyword", "hybrid"):
            asked = rag_cli("ask", question, "--index", str(idx), "--mode", mode, "--json")
            assert asked.returncode == 0 and "Traceback" not in asked.stderr, asked.stderr
            assert json.loads(asked.stdout)["passages"], mode
        info = rag_cli("info", "--index", str(idx))
        assert info.returncode == 0 and "documents: 7" in info.stdout, info.stderr
        index = Index(idx)
        assert index.search(question, k=3).passages and index.info().document_count == 7
        (corpus_copy / "new.txt").write_text("Busan port strike ends\n\nPort workers in Busan ended a strike.\n")
        refused = rag_cli("index", str(corpus_copy), "--index", str(idx), "--quiet")
        message = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(message) == 1, refused.stderr
        assert message[0].startswith(f"error: cannot write the index in {idx}: "), message
        filler.unlink()
        assert rag_cli("index", str(corpus_copy), "--index", str(idx), "--quiet").returncode == 0
        assert index.info().document_count == 8, "the open index reads the new commit once there is room"
        assert "Busan" in index.search("Which port workers ended a strike?", k=1, mode="keyword").passages[0].text
        del index
    finally:
        unmount(disk)


def test_an_upload_on_a_full_disk_is_a_line_in_the_report_not_a_fault(tmp_path: Path, corpus_copy: Path):
    """The chat's upload with no room for the file (it is not saved) and with no room for the index (it is
    saved, and indexed by the next write): each one line in the report; nothing raises, so the server logs
    no traceback."""
    from rag.serve.chat_service import ChatService

    disk = tmp_path / "disk"
    disk.mkdir()
    if not mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)):
        pytest.skip("this machine may not mount a tmpfs: a full disk cannot be made here")
    try:
        incoming = tmp_path / "incoming"
        incoming.mkdir()
        (incoming / "strike.txt").write_text("Busan port strike ends\n\nPort workers in Busan ended a strike.\n")
        full_corpus = disk / "corpus"
        full_corpus.mkdir()
        index = Index(tmp_path / "idx", model="hashing")
        fill(disk)
        report = ChatService(index, full_corpus).add_files([incoming / "strike.txt"])
        assert "**Rejected** strike&#46;txt: could not be saved" in report and "Added" not in report
        assert not list(full_corpus.iterdir())
        (disk / "filler").unlink()
        index_on_disk = Index(disk / "idx", model="hashing")
        index_on_disk.add([corpus_copy])
        fill(disk)
        report = ChatService(index_on_disk, corpus_copy).add_files([incoming / "strike.txt"])
        assert "Added 1 article" in report and "**Not indexed yet:** cannot write the index" in report
        assert (corpus_copy / "strike.txt").exists()
        del index_on_disk
    finally:
        unmount(disk)


def test_a_read_only_index_answers_and_refuses_writes_in_one_line(tmp_path: Path, corpus_copy: Path):
    idx = tmp_path / "idx"
    Index(idx, model="hashing").add([corpus_copy])
    before = state(idx)
    view = tmp_path / "read-only"
    view.mkdir()
    if not mount("--bind", str(idx), str(view)):
        if os.geteuid() == 0:
            pytest.skip("root without the right to mount: a read-only folder cannot be made here")
        view.rmdir()
        view = idx
        os.chmod(idx, 0o555)
    elif not mount("-o", "remount,bind,ro", str(view)):
        unmount(view)
        pytest.skip("this machine may not remount read-only")
    try:
        assert state(view) == before and finds_evidence(view)
        answer = Index(view).search(QUESTION, k=3)  # hybrid: the dense index reads the vector file too
        assert any(EVIDENCE in p.text for p in answer.passages)
        (corpus_copy / "new.txt").write_text("A new article.\n\nIt says one thing, plainly, in one sentence.\n")
        refused = rag_index(view, corpus_copy)
        assert refused.returncode == 2
        assert (
            refused.stderr.strip().splitlines()
            == [
                f"error: cannot write the index in {view}: it is on a read-only file system. Nothing was changed; "
                "free space or make the folder writable, then run `rag index` again"
            ]
            or "permission denied" in refused.stderr
        )
    finally:
        if view != idx:
            unmount(view)
        os.chmod(idx, 0o755)
    report = Index(idx).add([corpus_copy])
    assert report.added == 1 and state(idx)["documents"] == [*before["documents"], "new.txt"]


# --- more than one process ------------------------------------------------------------------------------
def test_two_writers_at_once_both_land(tmp_path: Path, corpus_copy: Path):
    idx = tmp_path / "idx"
    Index(idx, model="hashing").add([corpus_copy])
    first, second = tmp_path / "first", tmp_path / "second"
    synthetic_articles(first, articles=60, seed=11)
    synthetic_articles(second, articles=60, seed=12)
    writers = [index_in_child(idx, folder) for folder in (first, second)]
    for child in writers:
        child.wait(timeout=120)
        assert child.returncode == 0, child.stderr.read().decode()
    assert state(idx) == state_of_clean_build(tmp_path / "clean", corpus_copy, first, second)
    assert finds_evidence(idx)


def open_files_in(folder: Path) -> list[str]:
    """Files under `folder` this process holds open, once the throw-away `Index` objects are collected (SQLite
    keeps a closed connection's file open while another connection of the process holds a lock on it)."""
    for _ in range(2):
        gc.collect()
    held = []
    for fd in list(Path("/proc/self/fd").iterdir()):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(folder)):
            held.append(target)
    return held


def deleted_files_mapped_from(folder: Path) -> list[str]:
    """Deleted files under `folder` this process still maps into memory (tantivy reads its segments so)."""
    mapped = {line.split(None, 5)[-1].strip() for line in Path("/proc/self/maps").read_text().splitlines()}
    return sorted(m for m in mapped if m.startswith(str(folder)) and m.endswith("(deleted)"))


def test_a_reader_open_across_many_writes_stays_current_and_holds_no_old_files(
    tmp_path: Path, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    """Also through the views a wide filter reads the lexical index by (`rag.index.lexical_views`): they are let go
    at the next commit."""
    monkeypatch.setattr(lexical_index, "LISTED_BEFORE_FACETS", 0)  # a glob over every file makes a view
    idx = tmp_path / "idx"
    Index(idx, model="hashing").add([corpus_copy])
    reader = Index(idx)
    assert finds_evidence(idx) and reader.search(QUESTION, k=3, mode="hybrid").found is not None
    held = len(open_files_in(idx))
    for n in range(8):
        (corpus_copy / f"wire_{n}.txt").write_text(
            f"Port story {n}\n\nDock workers in harbour number {n} loaded {100 + n} containers of kimchi on Friday.\n"
        )
        if n >= 3:
            (corpus_copy / f"wire_{n - 3}.txt").unlink()
        Index(idx).add([corpus_copy])  # another writer
        answer = reader.search(f"How many containers did harbour number {n} load?", k=1, mode="hybrid")
        assert answer.passages[0].source == f"wire_{n}.txt"
        if n >= 3:  # a removed file is no longer a source the collection holds
            with pytest.raises(UnknownSourceError):
                reader.search(f"containers harbour number {n - 3}", k=5, mode="keyword", source=f"wire_{n - 3}.txt")
        wide = reader.search(f"containers harbour number {n}", k=1, mode="keyword", source="*.txt")
        assert wide.passages[0].source == f"wire_{n}.txt"
        assert state(idx)["chunks"] == reader.info().chunks
        files = open_files_in(idx)
        assert not [f for f in files if f.endswith("(deleted)")], "the reader holds deleted files open"
        assert not deleted_files_mapped_from(idx), "the reader keeps deleted files mapped"
        assert len(files) <= held + 3, files


# --- a large export ---------------------------------------------------------------------------------------
STREAMING = (
    "import rag.build.update as i; i.STREAM_BYTES = 100_000; i.EXPORT_BATCH = {batch}; "
    "from rag.serve.cli import main; main()"
)


def index_killed_after_first_batch(corpus: Path, idx: Path, batch: int) -> subprocess.CompletedProcess:
    """`rag index` of a streamed file (exports over 100 kB, any web archive), `batch` records a commit, killed
    just after its first commit."""
    child = subprocess.run(
        [sys.executable, "-c", STREAMING.format(batch=batch), "index", str(corpus), "--index", str(idx)]
        + ["--model", "hashing"],
        env={**os.environ, CRASH_ENV: "export-batch-committed"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL
    return child


def write_feed(path: Path, records: int) -> None:
    with path.open("w") as f:
        for i in range(records):
            text = f"Record {i}: the harbour at Busan loaded {i % 97} container ships on day {i % 31} of the month."
            f.write(json.dumps({"title": f"Harbour record {i}", "text": text, "date": "2024-01-02"}) + "\n")


def test_a_large_export_killed_halfway_resumes_where_it_stopped(tmp_path: Path, monkeypatch):
    corpus, idx = tmp_path / "feeds", tmp_path / "idx"
    corpus.mkdir()
    write_feed(corpus / "feed.jsonl", 3_000)
    child = index_killed_after_first_batch(corpus, idx, batch=1_000)
    assert "feed.jsonl" in child.stderr, "no progress shown while the export was read"
    assert state(idx)["chunks"] == 1_000, "the first batch was committed before the kill"
    monkeypatch.setattr(rag.build.update, "STREAM_BYTES", 100_000)
    monkeypatch.setattr(rag.build.update, "EXPORT_BATCH", 1_000)
    report = Index(idx).add([corpus])
    assert (report.added, report.unchanged, report.embedded) == (2_000, 1_000, 2_000), report
    assert state(idx) == state_of_clean_build(tmp_path / "clean", corpus)
    answer = Index(idx).search("How many container ships did record 2345 say Busan loaded?", k=1, mode="keyword")
    assert answer.passages[0].source == "feed.jsonl#2346"
    write_feed(corpus / "feed.jsonl", 2_000)  # the export shrank: its last 1,000 records are gone
    report = Index(idx).add([corpus])
    assert report.removed == 1_000 and state(idx)["chunks"] == 2_000


def test_a_web_archive_killed_halfway_resumes_at_its_last_committed_record(tmp_path: Path, monkeypatch):
    """A crawl is read a record at a time and committed ten pages at a time here; killed after the first
    commit, the next run starts at the last committed record (reading 21 pages, not 30) and ends where a
    clean build does."""
    from tests.warc_pages import write_crawl

    corpus, idx = tmp_path / "crawls", tmp_path / "idx"
    corpus.mkdir()
    write_crawl(corpus / "crawl.warc.gz", 30)
    child = index_killed_after_first_batch(corpus, idx, batch=10)
    assert "crawl.warc.gz" in child.stderr, "no progress shown while the archive was read"
    assert len(Index(idx).info().documents) == 10, "the first batch was committed before the kill"
    monkeypatch.setattr(rag.build.update, "EXPORT_BATCH", 10)
    notes: list[tuple[str, str]] = []
    report = Index(idx).add([corpus], on_note=lambda *n: notes.append(n))
    assert (report.added, report.unchanged) == (20, 1), report
    assert notes and notes[0][1].startswith("21 article pages read"), notes
    assert state(idx) == state_of_clean_build(tmp_path / "clean", corpus)
    answer = Index(idx).search("How many container ships did the harbour load on day 23?", k=1, mode="keyword")
    assert answer.passages[0].title == "Harbour report 23"
