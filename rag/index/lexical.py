"""The lexical arms' index: tantivy (BM25, segments merged in the background).

SQLite FTS5 scores every row that matches any query word, so at a million passages a question costs hundreds
of milliseconds; tantivy answers the same query tens of times faster (bench/RESULTS.md) in a fraction of
the space. The scoring follows what FTS5 did: Porter stemming (PyStemmer), accents folded, neighbouring-word
pairs as terms of their own, title and passage as one text. It is derived data: the SQLite database stays the
truth, and this index records which commit of it it reflects (a marker document holding the commit number).

A write commits tantivy first, then SQLite. Before the tantivy commit the writer saves the ids of the
passages it deleted (`pending.json`); if it dies between the two commits, the next writer finds tantivy one
commit ahead, deletes the passages added by the lost commit (ids at or above the committed row count),
restores the deleted ones from SQLite, and goes on. Any other disagreement is repaired by rebuilding this
index from SQLite. Readers only switch to a tantivy commit whose marker matches the SQLite commit they read.

tantivy scores every passage that holds any query word (the Python binding collects through tantivy's
MultiCollector, which skips tantivy's block-max pruning), so a query costs the postings it reads and the
passages it collects. A narrow filter is a set of facet words (`rag.index.facet_terms`) the passages must hold,
scored 0, intersected with the question's words; and the index keeps its passages in site-then-day order
(`order_key`), so that what a site or date filter keeps lies in long runs and the intersection skips whole
blocks of the question's postings between them. A wide filter, or one strewn over that order (a glob over
files), is applied as deletions: the index is read through a view in which what the filter leaves out is
deleted (`rag.index.lexical_views`), so that tantivy scores the same passages as unfiltered but collects only
the kept ones (bench/filters.py).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import Stemmer
import tantivy

from rag.errors import IndexCorruptError
from rag.index.crash import crash_point
from rag.index.facet_terms import facet_text, in_order_runs, kept_depth, order_key
from rag.index.facets import Kept
from rag.index.lexical_views import FilteredViews
from rag.index.rows import PassageRow
from rag.text import bigram_text, fold

FOLDER = "lexical-7"  # the number changes with the analysis: a new number rebuilds it from SQLite
PENDING = "pending.json"
MARKER = "commit"
WRITER_HEAP = 64_000_000
CLEANER_HEAP = 15_000_000  # tantivy's least: a writer that only deletes unused files
# A filter keeping the passages of at most this many documents is handed to tantivy as their ids.
LISTED_BEFORE_FACETS = 300
# A filter said as facet words is applied as such while it keeps at most these shares of the index: beyond,
# a view with deletions (`rag.index.lexical_views`, x0.7-1.0 of the unfiltered query) costs less. One word is one
# posting list (a site: x0.73 against x0.80 at 20%); words whose passages lie in runs of the index's order
# cost more the more they keep (one year: x0.57 against x0.79 at 9%, two years x1.03 against x0.79 at 18%),
# and words strewn over it (file names) more still (5 files: x0.55 against x0.71 at 4%, 10 files x0.98
# against x0.78 at 8%). Measured at 1M with bench/filters.py (bench/RESULTS.md).
ONE_FACET_MAX_SHARE = 0.3
FACETED_MAX_SHARE = 0.12
STREWN_FACETED_MAX_SHARE = 0.06
# The arms' fields: stemmed words plus each pair of neighbouring words as one term, and plain lower-cased
# words with Hangul/CJK as overlapping two-character pieces. Each holds the title and the passage as one
# text, so that BM25 sees one length per passage and a title word counts like a passage word (the weighting
# chosen on SQuAD with FTS5: title weight 1.0, bench/RESULTS.md).
STEMMED = "stem"
PLAIN = "plain"
FACET = "facet"
ORDER = "order"
_PORTER = Stemmer.Stemmer("porter")
_WORD = re.compile(r"[^\W_]+")


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("cid", stored=True, indexed=True, fast=True)
    builder.add_integer_field("doc", indexed=True)  # the document holding the passage: what filters name
    builder.add_text_field(STEMMED, stored=False, tokenizer_name=STEMMED, index_option="freq")
    builder.add_text_field(PLAIN, stored=False, tokenizer_name=PLAIN, index_option="freq")
    builder.add_text_field(FACET, stored=False, tokenizer_name=FACET, index_option="basic")
    builder.add_integer_field(ORDER, fast=True)  # where the passage sits: `order_key`
    builder.add_text_field("marker", stored=False, tokenizer_name="raw")
    builder.add_integer_field("seq", stored=True)
    return builder.build()


SCHEMA = _schema()


def _plain_analyzer() -> tantivy.TextAnalyzer:
    """Words split at anything not a letter or digit, lower-cased, accents folded ("Málaga" finds
    "Malaga", as FTS5's remove_diacritics did)."""
    builder = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
    return builder.filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.ascii_fold()).build()


def stemmed_words(text: str) -> list[str]:
    """Words as the stemmed field holds them: folded and Porter-stemmed, the stemmer FTS5 used."""
    return _PORTER.stemWords(_WORD.findall(fold(text)))


def stemmed_terms(text: str) -> str:
    """The stemmed field's text: the stemmed words, then each neighbouring pair as one term `a_b`. A pair
    scores as a term of its own (its own document frequency), as an FTS5 phrase did; tantivy's phrase
    queries weigh a phrase by the sum of its words' weights, which measured worse (bench/RESULTS.md)."""
    words = stemmed_words(text)
    return " ".join(words + [f"{a}_{b}" for a, b in zip(words, words[1:])])


def fts5_idf(total: int, frequency: int) -> float:
    """FTS5's idf: ln((N - n + 0.5) / (n + 0.5)), floored at 1e-6, so a word in most passages counts for
    nothing."""
    return max(1e-6, math.log((total - frequency + 0.5) / (frequency + 0.5)))


def fts5_idf_ratio(total: int, frequency: int) -> float:
    """The boost that turns tantivy's idf into FTS5's. tantivy (as Lucene) uses ln(1 + (N - n + 0.5) /
    (n + 0.5)), which stays positive for a word in most passages; FTS5 used ln((N - n + 0.5) / (n + 0.5)),
    floored at 1e-6, so such a word counted for nothing. In a collection about one person, their name is
    such a word: with tantivy's idf the passages that repeat it most outranked the one that answers."""
    return max(1e-6, fts5_idf(total, frequency) / math.log(1 + (total - frequency + 0.5) / (frequency + 0.5)))


def stemmed_query(terms: Sequence[str]) -> list[str]:
    """Query terms (words, and pairs written "a b") as stemmed-field terms."""
    out = []
    for term in terms:
        words = stemmed_words(term)
        if words:
            out.append("_".join(words) if " " in term and len(words) == 2 else words[0])
    return list(dict.fromkeys(out))


_TERM = re.compile(r"[^\W_]+(_[^\W_]+)?")  # what `stemmed_query` and the plain split make: safe inside quotes
_SEPARATORS = re.compile(r"[\W_]+")


def passage_document(row: PassageRow) -> tantivy.Document:
    whole = f"{row.title}\n{row.text}"
    facets = facet_text(row.source, row.file, row.site, row.url, row.published)
    return tantivy.Document(
        cid=row.id,
        doc=row.doc_id,
        stem=stemmed_terms(whole),
        plain=bigram_text(whole),
        facet=facets,
        order=order_key(row.site, row.url, row.published),
    )


class LexicalIndex:
    """One index folder's tantivy index, for searching (any number of threads) or for the one writer."""

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / FOLDER
        if os.access(index_dir, os.W_OK):
            self.path.mkdir(parents=True, exist_ok=True)
            self.index = tantivy.Index(SCHEMA, path=str(self.path), reuse=True, sort_by_field=ORDER)
        else:
            self.index = tantivy.Index.open(str(_lockable_view(self.path)))
        self.index.register_tokenizer(STEMMED, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())
        self.index.register_tokenizer(PLAIN, _plain_analyzer())
        self.index.register_tokenizer(FACET, tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build())
        self._searcher = self.index.searcher()
        self.seq = self.committed_seq()  # the SQLite commit the searcher shows
        self.current = False  # whether that is the SQLite commit last asked for
        self.views = FilteredViews(self.path)

    # --- reading -----------------------------------------------------------------------------------------
    def committed_seq(self, searcher: tantivy.Searcher | None = None) -> int:
        searcher = searcher or self._searcher
        hits = searcher.search(tantivy.Query.term_query(SCHEMA, "marker", MARKER), 1).hits
        if not hits:
            return 0
        return int(searcher.doc(hits[0][1])["seq"][0])

    def follow(self, seq: int) -> None:
        """Use the newest tantivy commit if it is the one SQLite commit `seq` made; otherwise keep the one in
        use (a writer is between its two commits)."""
        self.index.reload()
        searcher = self.index.searcher()
        self.current = self.committed_seq(searcher) == seq
        if self.current:
            self._searcher = searcher
            if seq != self.seq:
                self.views.clear()
            self.seq = seq

    def passages(self) -> int:
        return max(0, self._searcher.num_docs - (1 if self.committed_seq() else 0))

    def _terms(self, terms: Sequence[str], field: str) -> list[str]:
        if field == STEMMED:
            terms = stemmed_query(terms)
        else:  # the plain field holds words only: a pair is its two words
            terms = list(dict.fromkeys(fold(p) for t in terms for p in _SEPARATORS.split(t) if p))
        return [t for t in terms if _TERM.fullmatch(t)]

    def holds_any(self, terms: Sequence[str], field: str) -> bool:
        """Whether any passage holds any of `terms`."""
        return any(self._searcher.doc_freq(field, t) for t in self._terms(terms, field))

    def search(self, terms: Sequence[str], field: str, n: int, keep: Kept | None = None) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the best `n` passages matching any of `terms` (words, or phrases of
        words) in `field` (STEMMED or PLAIN), best first; only chunks `keep` marks, when given."""
        return self.search_with_ceiling(terms, field, n, keep)[0]

    def search_with_ceiling(
        self, terms: Sequence[str], field: str, n: int, keep: Kept | None = None
    ) -> tuple[list[tuple[int, float]], float]:
        """`search`, and the query's ceiling: what a passage scores that holds each term once at average
        length, the sum of their (FTS5) idfs. Scores divided by it mean the same for every question; a word
        that no passage holds raises the ceiling, so a question about something the collection never
        mentions scores low. Each term's frequency is looked up once for both."""
        searcher = self._searcher
        total = searcher.num_docs
        frequencies = [(t, searcher.doc_freq(field, t)) for t in self._terms(terms, field)]
        ceiling = math.fsum(fts5_idf(max(1, total), f) for _, f in frequencies)
        clauses = [f'{field}:"{t}"^{fts5_idf_ratio(total, f):.6f}' for t, f in frequencies]
        if not clauses:
            return [], ceiling
        query = self.index.parse_query(" ".join(clauses))
        if keep is None:
            return self._hits(query, n), ceiling
        return self._filtered_hits(query, keep, n, keep.count / max(total, 1)), ceiling

    def _filtered_hits(self, query: tantivy.Query, keep: Kept, n: int, share: float) -> list[tuple[int, float]]:
        """The best `n` passages matching `query` that `keep` keeps, the filter applied the way that costs
        least (bench/filters.py at 1M): the documents' ids when they are few; its facet words when they are
        one posting list, or a few whose passages lie in runs of the index's order (a site, a period);
        otherwise the index seen with what the filter leaves out deleted (`rag.index.lexical_views`), or, where no
        such view can be made, a deep enough prefix of the whole ranking."""
        if len(keep.documents) <= LISTED_BEFORE_FACETS:
            # Scored 0, so that a filtered passage keeps its BM25 score (a bare term set adds 1 to each).
            listed = tantivy.Query.const_score_query(
                tantivy.Query.term_set_query(SCHEMA, "doc", keep.documents.tolist()), 0.0
            )
            return self._hits(
                tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, listed)]), n
            )
        if keep.facets is not None and share <= _faceted_max_share(keep.facets):
            facets = tantivy.Query.const_score_query(
                self.index.parse_query(" ".join(f'{FACET}:"{w}"' for w in keep.facets)), 0.0
            )
            return self._hits(
                tantivy.Query.boolean_query([(tantivy.Occur.Must, facets), (tantivy.Occur.Must, query)]), n
            )
        view = self.view(keep.chunks)
        if view is not None:
            return self._hits(query, n, view)
        return self._kept_hits(query, n, keep.chunks, keep.count)

    def view(self, keep: np.ndarray) -> tantivy.Searcher | None:
        """A searcher over the commit in use with only the chunks `keep` marks live (`rag.index.lexical_views`);
        None where none can be made."""
        return self.views.searcher(keep, self.seq, self.committed_seq)

    def _kept_hits(self, query: tantivy.Query, n: int, keep: np.ndarray, kept: int) -> list[tuple[int, float]]:
        """The best `n` kept hits of `query`: the kept members of a deep enough prefix of its whole ranking
        (`kept_depth`), which is exactly the filtered ranking; a filter that keeps few of the best hits
        deepens it."""
        depth = kept_depth(n, max(kept, 1) / len(keep))
        while True:
            hits = self._hits(query, depth)
            inside = [(cid, score) for cid, score in hits if cid < len(keep) and keep[cid]]
            if len(inside) >= n or len(hits) < depth:
                return inside[:n]
            depth *= 4

    def _hits(self, query: tantivy.Query, n: int, searcher: tantivy.Searcher | None = None) -> list[tuple[int, float]]:
        searcher = searcher or self._searcher
        hits = searcher.search(query, n, count=False).hits
        if not hits:
            return []
        ids = searcher.fast_field_values("cid", [address for _, address in hits])
        return [(int(cid), float(score)) for (score, _), cid in zip(hits, ids) if cid is not None]

    # --- writing -----------------------------------------------------------------------------------------
    def writer(self) -> LexicalWriter:
        return LexicalWriter(self)


class LexicalWriter:
    """Adds and deletes passages; `commit(seq)` publishes them with the SQLite commit number they belong to."""

    def __init__(self, lexical: LexicalIndex) -> None:
        self.lexical = lexical
        self.writer = lexical.index.writer(heap_size=WRITER_HEAP, num_threads=1)
        # A writer killed inside tantivy's commit leaves files the published commit does not name, and a
        # later commit making the same deletions at the same operation stamp would create one of them again
        # ("FileAlreadyExists"): tantivy lists its files before it writes them, so it can delete them here.
        self.writer.garbage_collect_files()
        self.deleted: list[int] = []

    def add(self, rows: Iterable[PassageRow]) -> None:
        for row in rows:
            self.writer.add_document(passage_document(row))

    def delete(self, ids: Iterable[int]) -> None:
        for cid in ids:
            self.writer.delete_documents_by_term("cid", int(cid))
            self.deleted.append(int(cid))

    def delete_from(self, first_id: int) -> None:
        """Delete every passage with an id at or above `first_id` (what a lost commit added)."""
        query = tantivy.Query.range_query(SCHEMA, "cid", tantivy.FieldType.Integer, first_id, None)
        self.writer.delete_documents_by_query(query)

    def clear(self) -> None:
        self.writer.delete_all_documents()

    def commit(self, seq: int) -> None:
        """Record what a crash before the SQLite commit would need undone, then publish with the marker."""
        pending = self.lexical.path / PENDING
        tmp = pending.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": seq, "deleted": self.deleted}))
        with open(tmp) as f:
            os.fsync(f.fileno())
        os.replace(tmp, pending)
        crash_point("lexical-pending-written")
        self.writer.delete_documents_by_term("marker", MARKER)
        self.writer.add_document(tantivy.Document(seq=seq, marker=MARKER, order=-1))
        self.writer.commit()
        self.deleted = []

    def close(self) -> None:
        """Wait for tantivy's background merges, then delete the files no commit names: what a merge that failed
        (on a full disk) wrote, which would otherwise hold that space until the next write (4 ms)."""
        try:
            self.writer.wait_merging_threads()
        finally:
            with contextlib.suppress(ValueError):  # no room even for the writer's lock: the next write cleans up
                cleaner = self.lexical.index.writer(heap_size=CLEANER_HEAP, num_threads=1)
                cleaner.garbage_collect_files()
                cleaner.wait_merging_threads()

    def rollback(self) -> None:
        self.writer.rollback()
        self.deleted.clear()


def _faceted_max_share(words: Sequence[str]) -> float:
    """The widest filter, as a share of the index, that its facet words apply for less than a view with
    deletions (bench/filters.py at 1M)."""
    if len(words) == 1:
        return ONE_FACET_MAX_SHARE
    return FACETED_MAX_SHARE if all(in_order_runs(w) for w in words) else STREWN_FACETED_MAX_SHARE


def _lockable_view(folder: Path) -> Path:
    """A private folder of links to a read-only lexical index's files, where tantivy can make the lock
    files it takes even to read (a read-only mount, a snapshot on read-only media)."""
    if not folder.is_dir():
        raise IndexCorruptError(f"{folder} is missing: run `rag index` where the index can be written")
    view = Path(tempfile.mkdtemp(prefix="verbatim-lexical-"))
    atexit.register(shutil.rmtree, view, True)
    for entry in folder.iterdir():
        if not entry.name.startswith(".tantivy"):
            (view / entry.name).symlink_to(entry)
    return view


def pending_deletions(lexical: LexicalIndex, seq: int) -> list[int] | None:
    """The passages a lost commit `seq` deleted from tantivy, if it recorded them."""
    path = lexical.path / PENDING
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record["deleted"] if record.get("seq") == seq else None


def clear_pending(lexical: LexicalIndex) -> None:
    (lexical.path / PENDING).unlink(missing_ok=True)
