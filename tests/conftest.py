"""Shared fixtures: the real packaged model (loaded once) and an index of the real seed corpus."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag import Index
from rag.models.embed import Encoder, get_embedder
from rag.serve.cli import main

ROOT = Path(__file__).resolve().parent.parent
# The tests' own copy of the four seed articles: the checkout's `corpus/` is the user's sample folder, and what a
# user adds there (an upload of an older version, a file of their own) must not change what a test sees.
CORPUS = Path(__file__).resolve().parent / "data" / "seed"
DATA = Path(__file__).resolve().parent / "data"


# The slow tier: tests that load the real model (these fixtures do) or start processes (marked in their module).
REAL_MODEL_FIXTURES = frozenset({"embedder", "seed_index", "service", "chat_server", "rag_eval"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def load_questions(*names: str) -> list[dict]:
    rows = []
    for name in names:
        rows += [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    return rows


def synthetic_articles(folder: Path, articles: int, seed: int = 0, per_file: int = 100) -> None:
    """JSONL exports of made-up articles in the seed corpus's vocabulary (word frequencies kept), for tests
    that need size rather than meaning: about 16 passages an article."""
    import random
    import re

    words = re.findall(r"[A-Za-z][a-z]+", " ".join(p.read_text() for p in CORPUS.glob("*.txt")))
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, articles, per_file):
        lines = []
        for n in range(start, min(start + per_file, articles)):
            sentences = [" ".join(rng.choices(words, k=rng.randint(12, 24))).capitalize() + "." for _ in range(110)]
            paragraphs = ["\n\n".join(" ".join(sentences[i : i + 5]) for i in range(0, 110, 5))]
            title = " ".join(rng.choices(words, k=6)).capitalize()
            lines.append(json.dumps({"title": f"{title} {n}", "text": paragraphs[0], "date": "2024-05-01"}))
        (folder / f"archive-{start // per_file:04d}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def embedder() -> Encoder:
    return get_embedder()


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, embedder: Encoder) -> Index:
    """An index of a copy of the seed corpus; read-only for the tests that share it."""
    corpus = tmp_path_factory.mktemp("seed") / "corpus"
    shutil.copytree(CORPUS, corpus)
    index = Index(tmp_path_factory.mktemp("seed-index"))
    index.add([corpus])
    return index


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ChatServer:
    url: str
    corpus: Path
    index: Path
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_chat(corpus: Path, index: Path, log: Path, *extra: str, env: dict | None = None) -> ChatServer:
    """`python app.py` on a free port, as a user starts it; returns once the page answers."""
    port = free_port()
    out = log.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--port",
            str(port),
            "--corpus",
            str(corpus),
            "--index",
            str(index),
            *extra,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**{k: v for k, v in os.environ.items() if k != "RAG_UPLOADS"}, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                return ChatServer(url, corpus, index, process, log)
        except (OSError, urllib.error.HTTPError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 401:
                return ChatServer(url, corpus, index, process, log)
            time.sleep(0.5)
    process.kill()
    raise AssertionError(f"app.py did not answer within 180 s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def chat_server(tmp_path_factory: pytest.TempPathFactory):
    """The chat over the seed articles plus one article full of markup, started once for the app tests."""
    base = tmp_path_factory.mktemp("chat")
    corpus = base / "corpus"
    shutil.copytree(CORPUS, corpus)
    shutil.copy(DATA / "defaced_museum.txt", corpus / "defaced_museum.txt")
    server = start_chat(corpus, base / "index", base / "app.log", "--max-upload-mb", "1")
    yield server
    server.stop()


@pytest.fixture
def rag_eval(capsys: pytest.CaptureFixture) -> Callable[..., subprocess.CompletedProcess]:
    """`rag eval` through the command line's entry point, in this process: the packaged model's libraries
    are imported once for the suite instead of once per run (`python -m rag` itself: tests/test_cli.py)."""

    def run(*args: str, cache: Path) -> subprocess.CompletedProcess:
        argv = ["eval", *args, "--cache", str(cache), "--quiet"]
        code = main(argv)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out.out, out.err)

    return run
