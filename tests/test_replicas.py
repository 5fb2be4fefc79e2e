"""Serving from replicas: two `python app.py` processes answer while a third process publishes new commits,
into the folder one reads (a shared disk) and as snapshots the other follows (`rag snapshot`, for replicas
on other machines). Each replica follows without a restart, and no answer ever comes from half a commit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CORPUS, start_chat
from gradio_client import Client

from rag import Index
from rag.serve.chat_service import ChatService

pytestmark = pytest.mark.slow
ARTICLES = {  # two commits, one article each
    "ferry.txt": "Jeju ferry timetable changes\nThe Mokpo to Jeju ferry will leave at seven in the morning from "
    "June, the operator said, an hour earlier than now.\n",
    "tea.txt": "Boseong green tea festival opens\nGrowers in Boseong expect 80,000 visitors at the green tea "
    "festival, which opens on Friday among the terraced fields.\n",
}
QUESTION = "How many visitors do Boseong growers expect at the green tea festival?"  # the last article written


def rag(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "rag", *args], check=True, capture_output=True)


def serve_while_writing(urls: list[str], publish: Callable[[], None], later: Path) -> list[dict]:
    """Ask every replica QUESTION over and over while two articles are written and published one by one;
    returns every reply, once each replica has answered with the last article (or 30 s have passed)."""
    replies: list[tuple[int, dict]] = []
    failures: list[str] = []
    stop = threading.Event()

    def keep_asking(n: int) -> None:
        client = Client(urls[n], verbose=False)
        while not stop.is_set():
            try:
                replies.append((n, client.predict(QUESTION, 3, api_name="/ask")))
            except Exception as exc:  # noqa: BLE001 - any failure while the writer publishes is the finding
                failures.append(f"replica {n + 1}: {type(exc).__name__}: {exc}")

    askers = [threading.Thread(target=keep_asking, args=(n,)) for n in range(len(urls))]
    for asker in askers:
        asker.start()
    try:
        time.sleep(1)
        for name, text in ARTICLES.items():
            (later / name).write_text(text)
            publish()
        deadline = time.monotonic() + 30
        caught_up: set[int] = set()
        while time.monotonic() < deadline and len(caught_up) < len(urls):
            caught_up = {n for n, r in list(replies) if any(p["source"] == "tea.txt" for p in r["passages"])}
            time.sleep(0.2)
    finally:
        stop.set()
        for asker in askers:
            asker.join(timeout=60)
    assert failures == []
    assert len(caught_up) == len(urls), "a replica did not follow the writer within 30 s"
    seen = 0
    for _, reply in replies:  # every answer is whole: each new passage an exact slice of its article
        assert reply["passages"], reply
        for p in reply["passages"]:
            if p["source"] in ARTICLES:
                seen += 1
                assert ARTICLES[p["source"]][p["start"] : p["end"]] == p["text"]
    assert seen > 0 and len(replies) > 20
    return [r for _, r in replies]


def test_two_replicas_follow_one_writer_on_its_folder_and_on_published_snapshots(tmp_path: Path):
    """One replica reads the writer's own folder (a shared disk); the other, read-only, reads the snapshots
    `rag snapshot` publishes after each commit (a replica on another machine), through `current`, which moves.
    Both follow without a restart."""
    corpus, later, live, snapshots = tmp_path / "corpus", tmp_path / "later", tmp_path / "live", tmp_path / "snaps"
    shutil.copytree(CORPUS, corpus)
    later.mkdir()
    Index(live, model="hashing").add([corpus])  # the stand-in encoder: what is tested is the serving
    rag("snapshot", str(snapshots), "--index", str(live))
    current = snapshots / "current"
    replicas = [
        start_chat(corpus, live, tmp_path / "shared.log"),
        start_chat(corpus, current, tmp_path / "snapshot.log", "--read-only"),
    ]

    def publish() -> None:
        rag("index", str(later), "--index", str(live))
        rag("snapshot", str(snapshots), "--index", str(live))

    try:
        serve_while_writing([r.url for r in replicas], publish, later)
    finally:
        for replica in replicas:
            replica.stop()
    assert len([p for p in snapshots.iterdir() if not p.is_symlink()]) == 2  # the newest two are kept
    assert sorted(p.name for p in corpus.iterdir()) == sorted(p.name for p in CORPUS.iterdir())  # nothing added

    upload = tmp_path / "upload.txt"
    upload.write_text("Gangneung coffee festival moves\nThe festival will move to Anmok beach next year.\n")
    said = ChatService(Index(current), corpus, read_only=True).add_files([upload])
    assert "adds nothing" in said and not (corpus / "upload.txt").exists()
