"""The typed rows the index hands out: what an index is (`Manifest`, `IndexMeta`), what a search reads of a
chunk (`ChunkHit`), a line of the table of contents, what filters keep. No caller of the index sees a bare
tuple or a string-keyed dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple


@dataclass(frozen=True)
class IndexMeta:
    """The index's metadata table, typed: what the index is and which files hold its vectors, as of one commit.
    A folder no writer has committed to yet reads as the defaults (seq 0, no model)."""

    format_version: int = 0
    model: str | None = None
    dimension: int = 0
    documents: int = 0
    chunks: int = 0
    updated: str = ""
    seq: int = 0
    vector_file: str = "vectors-000001.f16"
    vector_rows: int = 0
    centroid_file: str | None = None  # with an IVF index: its centroids and each row's list
    list_file: str | None = None
    ann_trained_rows: int = 0
    tombstones_from: int | None = None  # deleted chunks are remembered from this commit on
    package_version: str | None = None  # the version of Verbatim that wrote the commit
    # The multilingual arm (`rag.models.multilingual`): its own append-only vector file, row i the vector of
    # chunk i like the first one, committed up to `multilingual_rows`. "" when the arm was turned off, None in
    # an index written before the arm existed (it gains the arm on its next `rag index`).
    multilingual_file: str | None = None
    multilingual_rows: int = 0
    wide_chunks: int = 0  # live chunks in Korean, Chinese or Japanese: English questions need the arm then
    # How the model computed the vectors: "int8" (its ONNX graph with 8-bit matrix products) or "fp32"; None in
    # an index written before precisions were recorded, whose vectors are float32 (torch's).
    precision: str | None = None

    @classmethod
    def of(cls, table: dict[str, str]) -> IndexMeta:
        """From the table's rows; keys this version does not know are left out."""
        values: dict[str, Any] = {k: v if _META_TEXT[k] else int(v) for k, v in table.items() if k in _META_TEXT}
        return cls(**values)

    def rows(self) -> dict[str, str]:
        """The table's rows: every field that has a value."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}

    @property
    def committed(self) -> bool:
        return self.model is not None

    @property
    def vector_precision(self) -> str:
        """The precision the vectors were computed in: questions must be encoded in the same."""
        return self.precision or "fp32"

    @property
    def multilingual(self) -> bool:
        """Whether the index holds the multilingual arm's vectors."""
        return bool(self.multilingual_file)

    @property
    def ivf_files(self) -> tuple[str, str] | None:
        """(centroid file, list file) when the dense index is an IVF one."""
        if self.centroid_file is None or self.list_file is None:
            return None
        return self.centroid_file, self.list_file


# Each field of IndexMeta, and whether its value is text (else a whole number), worked out once.
_META_TEXT = {f.name: "str" in str(f.type) for f in fields(IndexMeta)}


@dataclass(frozen=True)
class Manifest:
    """What an index is: its format, model and size, as committed with its rows."""

    format_version: int
    model: str
    dimension: int
    documents: int
    chunks: int
    updated: str
    seq: int  # commits so far: a reader compares it to know whether it is current

    package_version: str | None = None
    multilingual: bool = False  # whether it keeps the multilingual arm's vectors
    wide_passages: int = 0  # passages in Korean, Chinese or Japanese (counted with the arm on)
    precision: str | None = None  # how the model computed the vectors (`IndexMeta.precision`)

    @property
    def vector_precision(self) -> str:
        """The precision of the vectors, which questions are encoded in too."""
        return self.precision or "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model": self.model,
            "dimension": self.dimension,
            "documents": self.documents,
            "chunks": self.chunks,
            "updated": self.updated,
            "package_version": self.package_version,
            "multilingual": self.multilingual,
            "wide_passages": self.wide_passages,
            "precision": self.vector_precision,
        }


class DocumentKeys(NamedTuple):
    """What finds a document's copies: the fingerprint of its text, its MinHash signature, and its
    near-duplicate cluster (`rag.ingest.dedup`)."""

    text_hash: str
    minhash: bytes
    cluster: int


@dataclass(frozen=True)
class ChunkHit:
    """A chunk with the attribution of its document, as search needs it to build a passage."""

    id: int
    doc_id: int
    title: str
    source: str
    url: str | None
    start: int
    end: int
    published: str | None
    author: str | None
    pages: tuple[int, ...]
    cluster: int
    crawled: str | None = None  # the day a web archive saved the page


@dataclass(frozen=True)
class DocumentSummary:
    """One line of the index's table of contents."""

    doc_id: int
    title: str
    source: str
    url: str | None
    published: str | None
    author: str | None
    site: str | None
    copy_of: str | None
    chunks: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class KnownDocument:
    id: int
    root: str
    source: str
    file: str
    content_hash: str


@dataclass(frozen=True)
class PassageRow:
    """A chunk as the lexical index holds it: its text and title, and what filters match of its document."""

    id: int
    text: str
    title: str
    doc_id: int
    source: str
    file: str
    site: str | None = None
    url: str | None = None
    published: str | None = None

    @classmethod
    def of(cls, row: tuple) -> PassageRow:
        """From a row of `rag.index.read`'s passage query, which holds the whole document text and the chunk's
        offsets."""
        cid, text, start, end, *rest = row
        return cls(cid, text[start:end], *rest)


@dataclass(frozen=True)
class DocFilter:
    """Which documents a search may use: a file, glob or site, and an inclusive ISO date range."""

    source: str | None = None
    since: str | None = None
    until: str | None = None

    def active(self) -> bool:
        return bool(self.source or self.since or self.until)


class ArticleFacts(NamedTuple):
    """An article's length in characters and its site (publication name or web host), for attribution."""

    length: int
    site: str | None


class FileStat(NamedTuple):
    """What a file was when it was last read: unchanged size and modification time mean it is not read again."""

    size: int
    mtime_ns: int


class DocumentFields(NamedTuple):
    """What filters match of a document."""

    id: int
    dup_of: int | None
    source: str
    file: str
    site: str | None
    url: str | None
    published: str | None


class TextTwin(NamedTuple):
    """A document with a given text fingerprint: whether it is a copy, and whether it holds the chunks."""

    id: int
    dup_of: int | None
    has_chunks: bool


class Neighbour(NamedTuple):
    """A document sharing an LSH bucket: its signature and its cluster."""

    id: int
    minhash: bytes
    cluster: int


class ClusterMember(NamedTuple):
    id: int
    minhash: bytes


class StoredVector(NamedTuple):
    """A chunk holding the vector of a model input (its cache key)."""

    digest: bytes
    chunk_id: int


class Counts(NamedTuple):
    documents: int
    chunks: int


@dataclass(frozen=True)
class IndexInfo:
    """What `Index.info()` reports: the manifest, where the index is, and the first documents it holds."""

    manifest: Manifest
    path: str
    document_count: int
    documents: tuple[DocumentSummary, ...]
    undated: tuple[int, tuple[str, ...]] = (0, ())  # documents with no publication date: how many, the first ones
    unsourced: tuple[int, tuple[str, ...]] = (0, ())  # documents with no publication (site) name or web address

    @property
    def model(self) -> str:
        return self.manifest.model

    @property
    def dimension(self) -> int:
        return self.manifest.dimension

    @property
    def chunks(self) -> int:
        return self.manifest.chunks

    @property
    def updated(self) -> str:
        return self.manifest.updated

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `rag info --json`."""
        return {
            **self.manifest.to_dict(),
            "path": self.path,
            "document_count": self.document_count,
            "documents": [d.to_dict() for d in self.documents],
            "undated": {"count": self.undated[0], "first": list(self.undated[1])},
            "unsourced": {"count": self.unsourced[0], "first": list(self.unsourced[1])},
        }
