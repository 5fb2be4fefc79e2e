"""The Python API: `Index` for explicit control and `query()` for one-line use over the default corpus."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rag.embed import get_embedder, resolve_model
from rag.errors import DocumentNotFoundError, IndexNotFoundError
from rag.exports import RecordFields
from rag.indexer import ScanResult, from_documents, scan, update_index
from rag.records import Answer, Document, IndexReport
from rag.search import Mode, Searcher
from rag.store import FORMAT_VERSION, Generation, check_model, read_manifest, stored_document

_PROJECT = Path(__file__).resolve().parent.parent


def default_corpus_dir() -> Path:
    """$RAG_CORPUS, else the `corpus/` of the checkout this package runs from, else ./corpus."""
    if os.environ.get("RAG_CORPUS"):
        return Path(os.environ["RAG_CORPUS"])
    return _PROJECT / "corpus" if (_PROJECT / "corpus").is_dir() else Path("corpus")


def default_index_dir() -> Path:
    """$RAG_INDEX, else the `index/` beside the default corpus."""
    if os.environ.get("RAG_INDEX"):
        return Path(os.environ["RAG_INDEX"])
    return default_corpus_dir().resolve().parent / "index"


class Index:
    """An index directory: add documents to it, search it.

    The model defaults to the one the index was built with (or the packaged default for a new index);
    naming a different one raises ModelMismatchError rather than mixing vector spaces.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, model: str | None = None) -> None:
        self.path = Path(path) if path is not None else default_index_dir()
        try:
            built_with = read_manifest(self.path)["model"]
        except IndexNotFoundError:
            built_with = None
        if built_with is not None and model is not None:
            check_model({"model": built_with}, resolve_model(model)[0], self.path)
        self.embedder = get_embedder(model or built_with)
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return (self.path / "CURRENT").exists()

    def outdated(self) -> bool:
        """True when the index was written by an older version and must be rebuilt (`add` does that)."""
        try:
            return read_manifest(self.path).get("format_version") != FORMAT_VERSION
        except IndexNotFoundError:
            return False

    def add(
        self,
        paths: Sequence[str | os.PathLike[str]],
        progress: bool = False,
        on_skip: Callable[[str, str], None] | None = None,
        fields: RecordFields | None = None,
    ) -> IndexReport:
        """Index new and changed files under `paths`, drop files deleted from them; returns what it did.
        `fields` names the keys of JSON/JSONL records (see `rag.exports.RecordFields`)."""
        return self._update(scan([Path(p) for p in paths], on_skip, fields), progress)

    def add_documents(self, documents: Iterable[Document], progress: bool = False) -> IndexReport:
        """Index documents made in memory. A document whose `source` is already indexed is replaced when its
        `content_hash` differs; build one with `rag.plaintext.parse_document(text, source)` or directly."""
        return self._update(from_documents(documents), progress)

    def _update(self, found: ScanResult, progress: bool) -> IndexReport:
        report = update_index(self.path, found, self.embedder, progress=progress)
        self.reload()
        return report

    def reload(self) -> None:
        """Pick up a generation written since this object opened the index (by us or another process).

        The old searcher is dropped, not closed: a search running in another thread finishes on the snapshot
        it started with, and its connection closes when the last user lets go of it."""
        with self._lock:
            self._searcher = None

    @property
    def searcher(self) -> Searcher:
        with self._lock:
            if self._searcher is None:
                self._searcher = Searcher(Generation(self.path), self.embedder)
            return self._searcher

    def search(
        self,
        question: str,
        k: int = 5,
        mode: Mode = "hybrid",
        source: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Answer:
        """See `Searcher.search`: `source` is a file, glob or site; `since`/`until` bound the publication date."""
        return self.searcher.search(question, k=k, mode=mode, source=source, since=since, until=until)

    def roots(self) -> set[str]:
        """The folders (and parents of single files) this index was built from."""
        if not self.exists():
            return set()
        return {r[0] for r in self.searcher.gen.db.execute("SELECT DISTINCT root FROM documents")}

    def document(self, doc_id: int) -> Document:
        """The stored article a passage came from (`Passage.doc_id`), whole, for reading a passage in context."""
        document = stored_document(self.searcher.gen.db, doc_id)
        if document is None:
            raise DocumentNotFoundError(f"no document {doc_id} in {self.path}: the index may have changed since")
        return document

    def info(self) -> dict[str, Any]:
        gen = self.searcher.gen
        docs = gen.db.execute(
            "SELECT d.id, d.title, d.source, d.url, d.published, d.author, d.site, "
            "(SELECT source FROM documents p WHERE p.id = d.dup_of), count(c.id) FROM documents d "
            "LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.id ORDER BY d.file, d.id"
        ).fetchall()
        names = ("doc_id", "title", "source", "url", "published", "author", "site", "copy_of", "chunks")
        return {**gen.manifest, "path": str(self.path), "documents": [dict(zip(names, r)) for r in docs]}


_DEFAULT: Index | None = None
_DEFAULT_LOCK = threading.Lock()


def default_index(progress: bool = False) -> Index:
    """The index over the default corpus, built on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            index = Index(default_index_dir())
            if not index.exists() or index.outdated():
                index.add([default_corpus_dir()], progress=progress)
            _DEFAULT = index
        return _DEFAULT


def query(
    question: str,
    k: int = 5,
    mode: Mode = "hybrid",
    source: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Answer:
    """Search the default index (built from the default corpus if missing or outdated) for `question`."""
    return default_index().search(question, k=k, mode=mode, source=source, since=since, until=until)
