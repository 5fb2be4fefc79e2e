"""Shared fixtures: the real packaged model (loaded once) and an index of the real seed corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag import Index
from rag.embed import Embedder, get_embedder

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
DATA = Path(__file__).resolve().parent / "data"


def load_questions(*names: str) -> list[dict]:
    rows = []
    for name in names:
        rows += [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]
    return rows


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return get_embedder()


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Index:
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
