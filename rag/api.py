"""The Python API: `Index` for explicit control and `query()` for one-line use over the default corpus."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.build.update import ScanResult, from_documents, index_exports, scan, update_index, wants_multilingual
from rag.errors import DocumentNotFoundError, IndexFormatError, IndexNotFoundError, PathNotFoundError
from rag.index import DocumentSummary, FileStat, IndexInfo, Store, check_model, has_index, is_legacy, read_manifest
from rag.ingest.exports import RecordFields
from rag.models.embed import get_embedder, resolve_model
from rag.records import Answer, Document, IndexReport
from rag.search.call import SearchCall
from rag.search.request import DEFAULT_K, Mode, SearchRequest
from rag.search.searcher import Searcher

if TYPE_CHECKING:
    from rag.build.cluster import RayCluster

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


def default_uploads_dir(index_dir: Path) -> Path:
    """$RAG_UPLOADS, else the folder `<index>-uploads` beside the index folder: files added in the chat live
    with the collection they were added to, outside the checkout's sample `corpus/` (which tests and `git
    status` read) and outside the index folder itself (which may be deleted to rebuild from scratch)."""
    if os.environ.get("RAG_UPLOADS"):
        return Path(os.environ["RAG_UPLOADS"])
    resolved = index_dir.resolve()
    return resolved.parent / f"{resolved.name}-uploads"


def default_folders(index_dir: Path) -> list[Path]:
    """What a collection is built from when no folder is named: the sample corpus, and the chat's uploads
    folder once a file was added there."""
    uploads = default_uploads_dir(index_dir)
    return [default_corpus_dir()] + ([uploads] if uploads.is_dir() else [])


class Index:
    """An index directory: add documents to it, search it.

    The model defaults to the one the index was built with (or the packaged default for a new index);
    naming a different one raises ModelMismatchError rather than mixing vector spaces.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        model: str | None = None,
        multilingual: bool | None = None,
        precision: str | None = None,
        device: str = "auto",
    ) -> None:
        """`multilingual`: keep the multilingual arm's vectors (True), drop them (False), or keep the index's
        choice (None: on for a new index with a real model). `precision`: compute passage vectors in "fp32" or
        "int8" from the next `add` on (the stored ones are embedded again when they differ), or keep the
        index's (None: fp32 for a new index, and for one written before precisions were recorded, whose
        vectors are float32). `device`: "cpu", "cuda" or "auto" (a GPU when one is usable) for embedding
        passages; questions are encoded on the CPU, in the precision of the index's vectors."""
        self.path = Path(path) if path is not None else default_index_dir()
        self.multilingual = multilingual
        try:
            manifest = read_manifest(self.path)
            built_with, recorded = manifest.model, manifest.precision
        except (IndexNotFoundError, IndexFormatError):
            built_with, recorded = None, None
        if built_with is not None and model is not None:
            check_model(built_with, resolve_model(model)[0], self.path)
        self.embedder = get_embedder(model or built_with, precision or recorded, device)
        self._searcher: Searcher | None = None
        self._opened = ""  # the folder the searcher reads: `path` itself, or where its link pointed then
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return has_index(self.path)

    def outdated(self) -> bool:
        """True when the index must be upgraded (`add` does that): an older format, vectors of another precision
        than the one asked, or a collection built before the multilingual arm, which gains its vectors."""
        if is_legacy(self.path):
            return True
        if not self.exists():
            return False
        with Store(self.path).read() as reader:
            meta = reader.meta()
        if meta.vector_precision != self.embedder.precision:
            return True
        return meta.multilingual_file is None and wants_multilingual(meta, self.embedder, self.multilingual)

    def add(
        self,
        paths: Sequence[str | os.PathLike[str]],
        progress: bool = False,
        on_skip: Callable[[str, str], None] | None = None,
        fields: RecordFields | None = None,
        cluster: RayCluster | None = None,
        on_note: Callable[[str, str], None] | None = None,
    ) -> IndexReport:
        """Index new and changed files under `paths`, drop files deleted from them; returns what it did.
        `fields` names the keys of JSON/JSONL records (see `rag.ingest.exports.RecordFields`). Exports over
        `rag.build.update.STREAM_BYTES` are read last, a batch of records per commit (`index_exports`). With a
        `cluster` (`rag.build.cluster.RayCluster`), files are read and documents chunked and embedded on its workers;
        this process stays the one writer. `on_skip` hears of each file or record that could not be read,
        `on_note` of each file read as a legacy encoding or with bytes that were not UTF-8. A path that does not
        exist is a `PathNotFoundError`, raised before anything is read or written."""
        missing = [str(p) for p in paths if not Path(p).expanduser().exists()]
        if missing:
            raise PathNotFoundError(
                f"no such file or folder: {', '.join(missing)}; nothing was indexed (check the path, or create the "
                "folder and put articles in it)"
            )
        started = time.perf_counter()
        known = self._file_stats()
        found = scan([Path(p) for p in paths], on_skip, fields, known, cluster, on_note)
        arm = self.multilingual
        report = update_index(self.path, found, self.embedder, progress=progress, cluster=cluster, multilingual=arm)
        if found.streamed:
            self.reload()  # searches see the rest while the large exports are read a batch at a time
            index_exports(self.path, found, self.embedder, fields, on_skip, progress, report, cluster, arm, on_note)
            report.seconds = time.perf_counter() - started
        self.reload()
        return report

    def _file_stats(self) -> dict[tuple[str, str], FileStat]:
        if not self.exists() or is_legacy(self.path):
            return {}
        with self.searcher.store.read() as reader:
            return reader.file_stats()

    def add_documents(self, documents: Iterable[Document], progress: bool = False) -> IndexReport:
        """Index documents made in memory. A document whose `source` is already indexed is replaced when its
        `content_hash` differs; build one with `rag.ingest.plaintext.parse_document(text, source)` or directly."""
        return self._update(from_documents(documents), progress)

    def _update(self, found: ScanResult, progress: bool) -> IndexReport:
        report = update_index(self.path, found, self.embedder, progress=progress, multilingual=self.multilingual)
        self.reload()
        return report

    def reload(self) -> None:
        """Pick up commits made since this object opened the index (by us or another process): the dense
        index follows them incrementally; searches running meanwhile each read one committed state."""
        with self._lock:
            searcher = self._searcher
        if searcher is not None:
            searcher.refresh()

    @property
    def searcher(self) -> Searcher:
        """The searcher of the folder `path` names now. When `path` is a link that has moved (a replica on
        `rag snapshot`'s `current`), the next question opens the new snapshot whole; searches already running
        finish on the old one, which closes when they let go of it."""
        target = os.path.realpath(self.path)
        with self._lock:
            if self._searcher is None or target != self._opened:
                self._searcher = Searcher(Store(Path(target)), self.embedder)
                self._opened = target
            return self._searcher

    def search(
        self,
        question: str,
        k: int = DEFAULT_K,
        mode: Mode = "hybrid",
        source: str | None = None,
        since: str | None = None,
        until: str | None = None,
        rerank: bool | None = None,
    ) -> Answer:
        """The best passages for `question`: `source` is a file, glob or site; `since`/`until` (YYYY, YYYY-MM or
        YYYY-MM-DD, inclusive) bound the publication date; `rerank=True` has the reader rescore the first
        passages and mark the answer words, `False` leaves it out, None does what the calibration makes the
        default (docs/evaluation.md). See `rag.search.call.SearchCall`."""
        return self.ask(SearchRequest.build(question, k, mode, source, since, until, rerank=rerank))

    def ask(self, request: SearchRequest) -> Answer:
        """Answer a request built by its caller (`SearchRequest.build`), which names its fields its own way."""
        return SearchCall(self.searcher, request).answer()

    def roots(self) -> set[str]:
        """The folders (and parents of single files) this index was built from."""
        if not self.exists() or is_legacy(self.path):
            return set()
        with self.searcher.store.read() as reader:
            return reader.roots()

    def document(self, doc_id: int) -> Document:
        """The stored article a passage came from (`Passage.doc_id`), whole, for reading a passage in context."""
        with self.searcher.store.read() as reader:
            document = reader.document(doc_id)
        if document is None:
            raise DocumentNotFoundError(f"no document {doc_id} in {self.path}: the index may have changed since")
        return document

    def documents(self, offset: int = 0, limit: int = 50, search: str = "") -> tuple[list[DocumentSummary], int]:
        """One page of the table of contents (file order) and how many documents match `search` in all."""
        with self.searcher.store.read() as reader:
            return reader.documents_page(offset, limit, search), reader.count_documents(search)

    def sites(self) -> list[str]:
        """The publications and web hosts the index holds articles of (the most common first 200)."""
        with self.searcher.store.read() as reader:
            return reader.sites()

    def info(self, limit: int | None = None) -> IndexInfo:
        """The manifest, the documents (all of them, or the first `limit`), and those lacking a date or a
        publication (counted, the first `limit` named), so that they can be fixed before they are quoted."""
        self.reload()
        store = self.searcher.store
        with store.read() as reader:
            total = reader.count_documents()
            shown = total if limit is None else limit
            docs = reader.documents_page(0, shown)
            undated, unsourced = reader.lacking("published", shown), reader.lacking("site", shown)
        return IndexInfo(
            store.manifest,
            str(self.path),
            total,
            tuple(docs),
            (undated[0], tuple(undated[1])),
            (unsourced[0], tuple(unsourced[1])),
        )


_DEFAULT: Index | None = None
_DEFAULT_LOCK = threading.Lock()


def default_index(progress: bool = False) -> Index:
    """The index over the default corpus, built on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            index = Index(default_index_dir())
            if not index.exists() or index.outdated():
                index.add(default_folders(index.path), progress=progress)
            _DEFAULT = index
        return _DEFAULT


def query(
    question: str,
    k: int = DEFAULT_K,
    mode: Mode = "hybrid",
    source: str | None = None,
    since: str | None = None,
    until: str | None = None,
    rerank: bool | None = None,
) -> Answer:
    """Search the default index (built from the default corpus if missing or outdated) for `question`."""
    return default_index().search(question, k=k, mode=mode, source=source, since=since, until=until, rerank=rerank)
