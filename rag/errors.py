"""Errors of our own, so callers can catch one family and users read a message they can act on."""


def in_one_line(exc: BaseException | None, limit: int = 160) -> str:
    """What an exception of a library says, on one line and cut at `limit` characters (its class when it says
    nothing), to go inside a message of ours."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


class RagError(Exception):
    """Base class for every error Verbatim raises on purpose."""


class IngestError(RagError):
    """A file could not be turned into a document; the message names the file and the reason."""


class IndexNotFoundError(RagError):
    """No index exists where one was expected."""


class IndexCorruptError(RagError):
    """The index on disk is unreadable or inconsistent."""


class IndexFormatError(IndexCorruptError):
    """The index was written by an older version; `rag index` rebuilds it."""


class IndexWriteError(RagError):
    """The index folder could not be written (no space left, read-only, no permission); nothing was changed."""


class ModelMismatchError(RagError):
    """The index was built with a different embedding model than the one asked for."""


class InvalidQueryError(RagError):
    """The question is empty, too long, or otherwise cannot be searched."""


class UnknownSourceError(InvalidQueryError):
    """The source filter names no article, site or web address of the collection."""


class PathNotFoundError(RagError):
    """A file or folder named to be indexed does not exist; nothing was indexed."""


class ModelLoadError(RagError):
    """The embedding model could not be loaded (missing package, bad path, no network for a hub name)."""


class DocumentNotFoundError(RagError):
    """A document id that the index does not hold (often: the index was rebuilt since the id was read)."""
