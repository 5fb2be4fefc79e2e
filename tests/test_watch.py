"""A folder that indexes itself: `watch_folders` (what `rag watch` and `python app.py --watch` run), the command
and the app, on real files written while they watch."""

from __future__ import annotations

import html
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag import Index
from rag.build.watch import batch_line, watch_folders
from rag.records import IndexReport
from tests.conftest import ROOT, start_chat

pytestmark = pytest.mark.slow  # the real model, watcher threads and processes
ARRIVES_WITHIN = 30  # seconds: a batch is indexed about a second after its last change; the model may load first
KELP = "Wando kelp harvest hits record\nFishers on Wando island landed 31,000 tonnes of kelp this spring.\n"
TRAM = "Daegu tram budget set\nThe Daegu city council set the tram line's budget at 412 million won on Monday.\n"
FERRY = "Jeju ferry fares rise\nFerry operators serving Jeju will raise fares by 8 percent from April.\n"


def next_batch(batches: queue.Queue) -> IndexReport:
    return batches.get(timeout=ARRIVES_WITHIN)


@pytest.fixture
def watching(tmp_path: Path):
    """A folder with one article, indexed, and watched in a thread until the test ends."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "tram.txt").write_text(TRAM)
    (folder / "old_photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)  # unreadable from the start
    index = Index(tmp_path / "index")
    index.add([folder])
    batches: queue.Queue = queue.Queue()
    errors: list[str] = []
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=watch_folders,
        args=(lambda: index.add([folder]), [folder], batches.put, errors.append, stop),
        kwargs={"ready": ready},
    )
    thread.start()
    assert ready.wait(ARRIVES_WITHIN)
    yield folder, index, batches, errors
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_added_changed_and_removed_files_reach_the_index_in_batches(watching):
    folder, index, batches, errors = watching
    (folder / "kelp.txt").write_text(KELP)
    added = next_batch(batches)
    assert (added.added_sources, added.updated_sources, added.removed_sources) == (["kelp.txt"], [], [])
    assert added.skipped == []  # the photo that was already unreadable is not named again
    assert "31,000 tonnes" in index.search("How much kelp did Wando fishers land?", k=1).passages[0].text
    (folder / "kelp.txt").write_text(KELP.replace("31,000", "33,500"))
    assert next_batch(batches).updated_sources == ["kelp.txt"]
    assert "33,500 tonnes" in index.search("How much kelp did Wando fishers land?", k=1).passages[0].text
    (folder / "tram.txt").unlink()
    assert next_batch(batches).removed_sources == ["tram.txt"]
    assert all(p.source != "tram.txt" for p in index.search("Daegu tram budget", k=5).passages)
    assert errors == []


def test_a_burst_of_files_is_one_batch_and_a_bad_file_is_named_once(watching):
    folder, index, batches, _ = watching
    for n in range(5):  # a folder copied in
        (folder / f"ferry_{n}.txt").write_text(FERRY.replace("8 percent", f"{n + 8} percent"))
    (folder / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    (folder / ".draft.txt").write_text(KELP)  # hidden: never indexed
    report = next_batch(batches)
    assert sorted(report.added_sources) == [f"ferry_{n}.txt" for n in range(5)]
    assert report.skipped == [("photo.txt", "the file is a PNG image, not a .txt article")]
    assert batch_line(report).startswith("added ferry_")
    assert all(d["source"] != ".draft.txt" for d in index.info().to_dict()["documents"])


def test_rag_watch_prints_a_line_per_batch_and_stops_on_ctrl_c(tmp_path: Path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "tram.txt").write_text(TRAM)
    process = subprocess.Popen(
        [sys.executable, "-m", "rag", "watch", str(folder), "--index", str(tmp_path / "index"), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while "watching" not in seen and time.monotonic() < deadline:
            seen += lines.get(timeout=120)
        assert "1 added" in seen
        (folder / "kelp.txt").write_text(KELP)
        while "added kelp.txt" not in seen and time.monotonic() < deadline:
            seen += lines.get(timeout=ARRIVES_WITHIN)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, seen


def test_the_app_with_watch_indexes_a_dropped_file_and_names_it_under_sources(tmp_path: Path):
    from gradio_client import Client

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tram.txt").write_text(TRAM)
    server = start_chat(corpus, tmp_path / "index", tmp_path / "app.log", "--watch")
    try:
        assert "Watching" in server.log.read_text()
        time.sleep(2)  # the watch is on (it catches up with anything dropped before, too)
        (corpus / "kelp.txt").write_text(KELP)
        client = Client(server.url, verbose=False)
        deadline = time.monotonic() + ARRIVES_WITHIN
        while time.monotonic() < deadline:
            answer = client.predict("How much kelp did Wando fishers land?", 1, "hybrid", "", api_name="/ask")
            if answer["passages"] and answer["passages"][0]["source"] == "kelp.txt":
                break
            time.sleep(1)
        assert answer["passages"][0]["source"] == "kelp.txt" and "31,000" in answer["passages"][0]["text"]
        assert "watch: added kelp.txt" in server.log.read_text()
    finally:
        server.stop()


def test_the_chat_names_what_the_watch_indexed_under_its_sources_and_redraws_them(tmp_path: Path):
    from rag.serve.chat_service import ChatService

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tram.txt").write_text(TRAM)
    index = Index(tmp_path / "index")
    index.add([corpus])
    service = ChatService(index, tmp_path / "uploads")
    shown = service.lists_version()
    ready, stop = threading.Event(), threading.Event()
    watcher = service.watch(corpus, ready, stop)
    assert ready.wait(ARRIVES_WITHIN)
    (corpus / "kelp.txt").write_text(KELP)
    deadline = time.monotonic() + ARRIVES_WITHIN
    while service.watched is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert service.lists_version() != shown  # an open tab redraws its Sources list
    caption = html.unescape(service.sources_caption())
    assert caption.startswith("1–2 of 2 articles") and "from corpus/: added kelp.txt" in caption
    stop.set()
    watcher.join(10)
