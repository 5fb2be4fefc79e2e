"""Serving from replicas: two `python app.py` processes answer from one index folder while a third process
(`rag index`) publishes new commits into it. Each replica follows without a restart, and no answer ever comes
from a half-written commit."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import CORPUS, start_chat
from gradio_client import Client

from rag import Index

pytestmark = pytest.mark.slow
ARTICLES = {  # three commits, one article each
    "kelp.txt": "Wando kelp harvest hits record\nFishers on Wando island landed 31,000 tonnes of kelp this spring, "
    "the county office said.\n",
    "ferry.txt": "Jeju ferry timetable changes\nThe Mokpo to Jeju ferry will leave at seven in the morning from "
    "June, the operator said, an hour earlier than now.\n",
    "tea.txt": "Boseong green tea festival opens\nGrowers in Boseong expect 80,000 visitors at the green tea "
    "festival, which opens on Friday among the terraced fields.\n",
}


def test_two_replicas_follow_one_writer_and_never_answer_from_half_a_commit(tmp_path: Path):
    corpus, later = tmp_path / "corpus", tmp_path / "later"
    shutil.copytree(CORPUS, corpus)
    later.mkdir()
    index = tmp_path / "index"
    Index(index, model="hashing").add([corpus])  # the stand-in encoder: what is tested is the serving
    replicas = [start_chat(corpus, index, tmp_path / f"replica-{n}.log") for n in (1, 2)]
    question = "How many visitors do Boseong growers expect at the green tea festival?"  # the last one written
    replies: list[tuple[int, dict]] = []
    failures: list[str] = []
    stop = threading.Event()

    def keep_asking(n: int) -> None:
        client = Client(replicas[n].url, verbose=False)
        while not stop.is_set():
            try:
                replies.append((n, client.predict(question, 3, api_name="/ask")))
            except Exception as exc:  # noqa: BLE001 - any failure while the writer publishes is the finding
                failures.append(f"replica {n + 1}: {type(exc).__name__}: {exc}")

    askers = [threading.Thread(target=keep_asking, args=(n,)) for n in (0, 1)]
    try:
        for asker in askers:
            asker.start()
        time.sleep(1)
        for name, text in ARTICLES.items():
            (later / name).write_text(text)
            subprocess.run(
                [sys.executable, "-m", "rag", "index", str(later), "--index", str(index), "--quiet"],
                check=True,
                capture_output=True,
            )
        deadline = time.monotonic() + 30
        newest = {n: None for n in (0, 1)}
        while time.monotonic() < deadline and None in newest.values():
            for n, reply in list(replies):
                if any(p["source"] == "tea.txt" for p in reply["passages"]):
                    newest[n] = reply
            time.sleep(0.2)
    finally:
        stop.set()
        for asker in askers:
            asker.join(timeout=60)
        for replica in replicas:
            replica.stop()
    assert failures == []
    assert None not in newest.values(), "a replica did not pick up the writer's commits within 30 s"
    seen = 0
    for _, reply in replies:  # every answer is whole: each new passage an exact slice of its file
        assert reply["passages"], reply
        for p in reply["passages"]:
            if p["source"] in ARTICLES:
                seen += 1
                assert ARTICLES[p["source"]][p["start"] : p["end"]] == p["text"]
    assert seen > 0 and len(replies) > 20
