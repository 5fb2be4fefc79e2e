"""`rag index --ray`: the same index as a run without Ray, read, chunked and embedded on a local Ray cluster
that the test starts itself."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag import Index
from rag.index.vectors import VectorFile
from tests.conftest import CORPUS

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

from rag.build.cluster import RayCluster  # noqa: E402


class CountingCluster(RayCluster):
    """The real cluster, counting what the driver sends it."""

    sent_files: list[str]
    sent_documents: int

    def read(self, files, fields):
        self.sent_files += [source for _, source in files]
        return super().read(files, fields)

    def plan_and_embed(self, documents, known, model, multilingual=False, precision="fp32"):
        documents = list(documents)
        self.sent_documents += len(documents)
        self.multilingual, self.precision = multilingual, precision
        yield from super().plan_and_embed(documents, known, model, multilingual, precision)


@pytest.fixture(scope="module")
def cluster():
    started = CountingCluster(None, workers=1)
    yield started
    started.close()


def contents(index: Index) -> tuple[list, list, np.ndarray, np.ndarray | None]:
    """Documents, chunks (with offsets and cache keys), every chunk's vector and its multilingual one (None
    without the arm), in id order."""
    with sqlite3.connect(index.path / "rag.sqlite") as db:
        docs = db.execute("SELECT id, root, source, file, title, url, published, text FROM documents ORDER BY id")
        chunks = db.execute("SELECT id, doc_id, start, end, input_hash FROM chunks ORDER BY id").fetchall()
        docs = docs.fetchall()
    vector_file = next(index.path.glob("vectors-*.f16"))
    vectors = VectorFile(vector_file, index.info().dimension).read([c[0] for c in chunks])
    multilingual_file = next(index.path.glob("multilingual-*.f16"), None)
    multilingual = VectorFile(multilingual_file, 512).read([c[0] for c in chunks]) if multilingual_file else None
    return docs, chunks, vectors, multilingual


def test_an_index_built_on_ray_equals_one_built_here(tmp_path: Path, cluster: CountingCluster):
    """The packaged model on the cluster's workers: the same documents, chunks, offsets and vectors, in the index's
    precision."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "scan.txt").write_bytes(b"\x00\x01binary\x00")
    # int8, not the default: the workers must take the index's precision, not their own default.
    here, there = Index(tmp_path / "here", precision="int8"), Index(tmp_path / "there", precision="int8")
    skipped_here: list[tuple[str, str]] = []
    skipped_there: list[tuple[str, str]] = []
    cluster.sent_files, cluster.sent_documents = [], 0

    built = here.add([corpus], on_skip=lambda *s: skipped_here.append(s))
    built_there = there.add([corpus], on_skip=lambda *s: skipped_there.append(s), cluster=cluster)
    assert skipped_there == skipped_here and [name for name, _ in skipped_there] == ["scan.txt"]
    assert (built_there.added, built_there.chunks, built_there.embedded) == (7, built.chunks, built.embedded)
    assert sorted(cluster.sent_files) == sorted(p.name for p in corpus.iterdir())
    assert cluster.sent_documents == 7
    assert cluster.multilingual  # the workers computed the multilingual arm's vectors too
    assert cluster.precision == "int8" == there.info().manifest.precision  # in the index's precision
    assert_same_index(here, there)


def test_the_next_run_sends_the_cluster_only_what_changed(tmp_path: Path, cluster: CountingCluster):
    """Unchanged files are not sent; passages the index holds are not embedded again (the stand-in encoder:
    what is measured here is what travels, not the model)."""
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    here, there = Index(tmp_path / "here", model="hashing"), Index(tmp_path / "there", model="hashing")
    here.add([corpus])
    there.add([corpus], cluster=cluster)
    seed = sorted(corpus.glob("00*.txt"))[0]
    seed.write_text(seed.read_text() + "\nA last line added to the article for the second run.\n")
    (corpus / "kelp.txt").write_text(
        "Wando kelp harvest hits record\nFishers on Wando island landed 31,000 tonnes of kelp this spring.\n"
    )
    cluster.sent_files, cluster.sent_documents = [], 0
    again = here.add([corpus])
    again_there = there.add([corpus], cluster=cluster)
    assert sorted(cluster.sent_files) == sorted([seed.name, "kelp.txt"])
    assert (again_there.added, again_there.updated, again_there.unchanged) == (again.added, again.updated, 6)
    assert (again.added, again.updated) == (1, 1)
    assert again_there.embedded == again.embedded < 10  # the changed article's other passages are reused
    assert_same_index(here, there)
    answer = there.search("How much kelp did Wando fishers land?", k=1)
    assert answer.passages[0].source == "kelp.txt"


def assert_same_index(here: Index, there: Index) -> None:
    docs, chunks, vectors, multilingual = contents(here)
    docs_there, chunks_there, vectors_there, multilingual_there = contents(there)
    assert docs_there == docs and chunks_there == chunks
    assert vectors_there.shape == vectors.shape and float(np.abs(vectors_there - vectors).max()) <= 1e-5
    assert (multilingual is None) == (multilingual_there is None)
    if multilingual is not None and multilingual_there is not None:  # computed on the workers, the same rows
        assert float(np.abs(multilingual_there - multilingual).max()) <= 2e-3


def test_a_wrong_cluster_address_is_one_line_at_once(tmp_path: Path):
    """Ray waits minutes on an address where nothing listens; the command says so in a second."""
    import subprocess
    import sys

    for address, reason in (("127.0.0.1:1", "Connection refused"), ("nonsense", "expected host:port")):
        run = subprocess.run(
            [sys.executable, "-m", "rag", "index", str(CORPUS), "--index", str(tmp_path / "i"), "--ray", address],
            capture_output=True,
            text=True,
            timeout=60,
        )
        (line,) = run.stderr.strip().splitlines()
        assert run.returncode == 2 and line.startswith(f"error: cannot reach the Ray head at {address}: ")
        assert reason in line and not (tmp_path / "i").exists()
