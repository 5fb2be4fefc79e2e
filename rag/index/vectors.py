"""Passage vectors on disk, stored once, and the FAISS index that searches them in memory.

A vector file is an append-only array of float16 rows: row `i` is the vector of chunk id `i`. A write appends
its new rows and fsyncs them *before* the SQLite transaction that makes them part of the index commits, and
the committed row count lives in that transaction, so a killed writer leaves only an unreferenced tail that
the next writer cuts off. Rows below the committed count never change, so readers can read them while a
writer appends. Deleted chunks leave dead rows behind; they cost disk, never correctness.

Search runs over an in-memory FAISS index built from the file. Small collections use exact inner-product
search. From `ANN_MIN_ROWS` on, an IVF index: the coarse centroids are trained once and saved, every row's
list is stored beside it (a parallel int32 file), so opening a large index only copies rows into their lists
and never assigns them again. Both thresholds were chosen with `bench/scale.py` (bench/RESULTS.md).

Each IVF list keeps its vectors in the lexical index's order (site, then day: `rag.index.facet_terms.order_key`),
so that a site or date filter keeps a few runs of each list instead of vectors strewn over it: a filtered
search reads only the runs it keeps, and it streams them (`DenseIndex._search_kept`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from rag.errors import IndexCorruptError
from rag.index.facet_terms import kept_depth

VECTOR_DTYPE = np.float16
ANN_MIN_ROWS = 200_000  # below this, exact search is fast enough (bench/RESULTS.md)
ANN_RETRAIN_GROWTH = 4  # retrain the centroids once the collection has grown this many times over
NPROBE_SHARE = 0.2  # share of the lists a query visits: recall@10 0.989 on real vectors (bench/RESULTS.md)
MIN_NPROBE = 16
# A filtered IVF search spends what an unfiltered one does. Visiting a list costs less the fewer of its vectors
# a filter keeps, so a narrower filter visits more lists for the same time: sqrt(NPROBE_SHARE / share) times
# as many (fitted at 1M with bench/filters.py), which finds the kept neighbours as well as the unfiltered
# search finds any (recall@10 0.92-1.00 against 0.92 unfiltered on the stand-in vectors).
# What a bitmap-filtered search costs, as a share of the plain search visiting the same lists (fitted at 1M
# with bench/filters.py over ordered, scattered and random masks): every visited vector is tested, every kept
# one read and scored, and every switch between a kept and a left-out neighbour in a list costs a restart of
# the memory reads the processor was streaming, worth almost three vectors read. A filter keeping at least
# PLAIN_MIN_SHARE whose bitmap search would cost more than a plain one is applied to a deeper plain search.
# The exact index (chunk-id order, float32) is given the same choice with the same figures.
TEST_COST, KEPT_COST, SWITCH_COST = 0.17, 0.85, 2.7
PLAIN_MIN_SHARE = 0.05
SWITCH_SAMPLE = 4096  # neighbouring pairs sampled to count how often a filter switches along the lists
TRAIN_POINTS_PER_LIST = 40
READ_ROWS = 65_536
MAPPED_READ_ROWS = 256  # reading more rows than this at once maps the file instead of reading row by row


def lists_for(rows: int) -> int:
    """IVF list count for a collection: about 4 * sqrt(n), the FAISS guideline for 1e5-1e7 vectors."""
    return int(min(65_536, max(256, 2 ** round(math.log2(4 * math.sqrt(max(rows, 1)))))))


class VectorFile:
    """Fixed-width float16 rows addressed by chunk id."""

    def __init__(self, path: Path, dimension: int) -> None:
        self.path = path
        self.dimension = dimension
        self.row_bytes = dimension * np.dtype(VECTOR_DTYPE).itemsize

    def rows_on_disk(self) -> int:
        try:
            return self.path.stat().st_size // self.row_bytes
        except FileNotFoundError:
            return 0

    def read(self, ids: Iterable[int]) -> np.ndarray:
        """float32 rows for `ids`, in order; a missing row is an index fault, not a zero vector."""
        ids = list(ids)
        out = np.zeros((len(ids), self.dimension), dtype=np.float32)
        if not ids:
            return out
        if len(ids) > MAPPED_READ_ROWS:  # many rows (a training sample, a salvaged document): one mapped gather
            rows = self.rows_on_disk()
            if max(ids) >= rows:
                raise IndexCorruptError(f"{self.path}: no vector for chunk {max(ids)}; rebuild with `rag index`")
            mapped = np.memmap(self.path, dtype=VECTOR_DTYPE, mode="r", shape=(rows, self.dimension))
            return mapped[np.asarray(ids, dtype=np.int64)].astype(np.float32)
        with open(self.path, "rb") as f:
            for n, i in enumerate(ids):
                raw = os.pread(f.fileno(), self.row_bytes, int(i) * self.row_bytes)
                if len(raw) != self.row_bytes:
                    raise IndexCorruptError(f"{self.path}: no vector for chunk {i}; rebuild with `rag index`")
                out[n] = np.frombuffer(raw, dtype=VECTOR_DTYPE)
        return out

    def read_range(self, start: int, stop: int) -> np.ndarray:
        count = max(0, stop - start)
        with open(self.path, "rb") as f:
            f.seek(start * self.row_bytes)
            data = np.fromfile(f, dtype=VECTOR_DTYPE, count=count * self.dimension)
        if data.size != count * self.dimension:
            raise IndexCorruptError(f"{self.path}: shorter than the index says; rebuild with `rag index`")
        return data.reshape(count, self.dimension)

    def append(self, committed_rows: int, vectors: np.ndarray) -> None:
        """Write `vectors` as rows committed_rows.. (anything after the committed rows is a dead writer's tail)
        and make them durable before the caller commits the rows that point at them."""
        with open(self.path, "ab") as f:
            f.truncate(committed_rows * self.row_bytes)
            f.write(np.ascontiguousarray(vectors, dtype=VECTOR_DTYPE).tobytes())
            f.flush()
            os.fsync(f.fileno())


class ListFile:
    """The IVF list of each row, parallel to the vector file (int32; -1 where no list was assigned)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_all(self, rows: int) -> np.ndarray:
        data = np.fromfile(self.path, dtype=np.int32, count=rows) if self.path.exists() else np.zeros(0, np.int32)
        if data.size != rows:
            raise IndexCorruptError(f"{self.path}: shorter than the index says; rebuild with `rag index`")
        return data

    def append(self, committed_rows: int, lists: np.ndarray) -> None:
        with open(self.path, "ab") as f:
            f.truncate(committed_rows * 4)
            f.write(np.ascontiguousarray(lists, dtype=np.int32).tobytes())
            f.flush()
            os.fsync(f.fileno())

    def write(self, lists: np.ndarray) -> None:
        """A whole new file (after training); the caller names it in the committing transaction."""
        with open(self.path, "wb") as f:
            f.write(np.ascontiguousarray(lists, dtype=np.int32).tobytes())
            f.flush()
            os.fsync(f.fileno())


def train_centroids(sample: np.ndarray, n_lists: int, path: Path) -> faiss.Index:
    """k-means over a sample, saved to `path` (fsynced) as a flat inner-product quantizer."""
    kmeans = faiss.Kmeans(sample.shape[1], n_lists, niter=12, spherical=True, seed=1234, max_points_per_centroid=256)
    kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
    quantizer = faiss.IndexFlatIP(sample.shape[1])
    quantizer.add(np.asarray(kmeans.centroids))
    faiss.write_index(quantizer, str(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return quantizer


def assign(quantizer: faiss.Index, vectors: np.ndarray) -> np.ndarray:
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int32)
    _, lists = quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
    return lists[:, 0].astype(np.int32)


@dataclass(frozen=True)
class DenseLayout:
    """Where a snapshot's vectors are and how they are searched (the `meta` rows of the store)."""

    vector_file: Path
    rows: int
    dimension: int
    centroid_file: Path | None = None
    list_file: Path | None = None


class DenseIndex:
    """FAISS over the live rows of a vector file: exact below ANN_MIN_ROWS, IVF (float16 codes) above. `order`
    (a sort key per chunk id, `rag.index.facets.ChunkFilter.order_keys`) is the order each IVF list keeps."""

    def __init__(self, layout: DenseLayout, live_ids: np.ndarray, order: np.ndarray | None = None) -> None:
        self.layout = layout
        self.vectors = VectorFile(layout.vector_file, layout.dimension)
        self.approximate = layout.centroid_file is not None
        self.order = order
        live_ids = np.sort(np.asarray(live_ids, dtype=np.int64))
        self.index: Any  # faiss's own: an IVF index over the quantizer, or an id map over a flat one
        self._lists = np.zeros(0, np.int32)
        if self.approximate:
            assert layout.list_file is not None
            self._quantizer = faiss.read_index(str(layout.centroid_file))  # the IVF index does not own it
            self.index = faiss.IndexIVFScalarQuantizer(
                self._quantizer,
                layout.dimension,
                self._quantizer.ntotal,
                faiss.ScalarQuantizer.QT_fp16,
                faiss.METRIC_INNER_PRODUCT,
            )
            self.index.is_trained = True
            self.index.nprobe = max(MIN_NPROBE, int(self._quantizer.ntotal * NPROBE_SHARE))
            self._lists = ListFile(layout.list_file).read_all(layout.rows)
            self._add_rows(live_ids, self._lists)
        else:
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(layout.dimension))
            self._add_rows(live_ids, None)
        self._arrange(None)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def _add_rows(self, live_ids: np.ndarray, lists: np.ndarray | None) -> None:
        """Copy the live rows into the FAISS index, one read block at a time (the file is read, not mapped,
        so the serving process holds each vector once)."""
        for start in range(0, self.layout.rows, READ_ROWS):
            stop = min(start + READ_ROWS, self.layout.rows)
            lo, hi = np.searchsorted(live_ids, [start, stop])
            ids = live_ids[lo:hi]
            if not len(ids):
                continue
            block = self.vectors.read_range(start, stop)[ids - start].astype(np.float32)
            self.add(ids, block, None if lists is None else lists[ids])

    def add(self, ids: np.ndarray, vectors: np.ndarray, lists: np.ndarray | None = None) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not self.approximate:
            self.index.add_with_ids(vectors, ids)
            return
        if lists is None:
            lists = assign(self._quantizer, vectors)
        lists = np.ascontiguousarray(lists, dtype=np.int64)
        self.index.add_core(len(ids), faiss.swig_ptr(vectors), faiss.swig_ptr(ids), faiss.swig_ptr(lists))

    def extend(self, layout: DenseLayout, ids: np.ndarray, order: np.ndarray | None = None) -> None:
        """Add rows committed since this index was built (`ids`, all at or after its old row count); `order`
        is the sort key of every chunk as of that commit."""
        ids = np.sort(np.asarray(ids, dtype=np.int64))
        self.layout, self.order = layout, order if order is not None else self.order
        if self.approximate:
            assert layout.list_file is not None
            self._lists = ListFile(layout.list_file).read_all(layout.rows)
        if len(ids):
            self.add(ids, self.vectors.read(ids), self._lists[ids] if self.approximate else None)
            self._arrange(np.unique(self._lists[ids]) if self.approximate else None)

    def remove(self, ids: Iterable[int]) -> None:
        ids = np.fromiter(ids, dtype=np.int64)
        if len(ids):
            self.index.remove_ids(faiss.IDSelectorBatch(ids))  # moves each list's last vector into the gap
            self._arrange(np.unique(self._lists[ids[ids < len(self._lists)]]) if self.approximate else None)

    def _arrange(self, touched: np.ndarray | None) -> None:
        """Sort the `touched` IVF lists (every one when None) by `order`, then sample neighbouring pairs along
        the lists (or the flat index's rows) for `_switches`. A list's order never changes what a search
        finds, only what a filtered one costs."""
        runs: list[np.ndarray] = []
        if not self.approximate:
            runs.append(faiss.vector_to_array(self.index.id_map))
        else:
            lists, size = self.index.invlists, self.index.code_size
            order = self.order
            sort = set(range(lists.nlist) if touched is None else touched.tolist()) if order is not None else ()
            for number in range(lists.nlist):
                count = lists.list_size(number)
                ids = faiss.rev_swig_ptr(lists.get_ids(number), count) if count else np.zeros(0, np.int64)
                if count > 1 and order is not None and number in sort:
                    codes = faiss.rev_swig_ptr(lists.get_codes(number), count * size).reshape(count, size)
                    place = np.lexsort((ids, _take(order, ids, 0)))
                    ids, codes = np.ascontiguousarray(ids[place]), np.ascontiguousarray(codes[place])
                    lists.update_entries(number, 0, count, faiss.swig_ptr(ids), faiss.swig_ptr(codes))
                runs.append(ids)
        along = np.concatenate(runs) if runs else np.zeros(0, np.int64)
        at = np.random.default_rng(0).integers(0, max(len(along) - 1, 1), SWITCH_SAMPLE)
        self._pairs = (along[at], along[at + 1]) if len(along) > 1 else (along[:0], along[:0])

    def search(self, query: np.ndarray, n: int, keep: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Best `n` (chunk id, inner product), among the chunks `keep` marks when given."""
        if self.ntotal == 0:
            return []
        if keep is not None:
            return self._search_kept(query, n, keep, int(np.count_nonzero(keep)))
        scores, ids = self._faiss_search(query, min(n, self.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def _search_kept(self, query: np.ndarray, n: int, keep: np.ndarray, kept: int) -> list[tuple[int, float]]:
        """The filter as a bitmap tested inside FAISS's search, which visits more lists the narrower the
        filter (so that it finds the kept neighbours as well as the plain search finds any); or, where that
        would cost more than the plain search (a wide filter strewn over the lists), a deeper plain search
        with the left-out vectors dropped from it."""
        if kept == 0:
            return []
        share = kept / self.ntotal
        widening = self._visits(share) / self.index.nprobe if self.approximate else 1.0
        cost = widening * (TEST_COST + KEPT_COST * share + SWITCH_COST * self._switches(keep))
        if share >= PLAIN_MIN_SHARE and cost > 1:
            scores, ids = self._faiss_search(query, min(kept_depth(n, share), self.ntotal))
            inside = _take(keep, ids[0])
            if np.count_nonzero(inside) >= min(n, kept):
                return list(zip(ids[0][inside][:n].tolist(), scores[0][inside][:n].tolist()))
        bits = np.packbits(keep, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # its size is in bytes
        params: Any
        if self.approximate:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=self._visits(share))  # type: ignore[call-arg]
        else:
            params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]  # SWIG: fields as keywords
        params.keep = (bits, selector)  # the bitmap must outlive the search
        scores, ids = self._faiss_search(query, min(n, self.ntotal), params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def _faiss_search(
        self, query: np.ndarray, k: int, params: faiss.SearchParameters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's search of one question on one OpenMP thread. On two cores its split of an exact search over
        two threads cost three times the wall time and five times the CPU of one thread (50k vectors: 9.3 ms
        and 18.5 ms of CPU against 3.4 ms), and a server's other core has other questions to answer; an IVF
        search of one question runs on one thread either way. The thread count is the calling thread's own
        (OpenMP), so a writer's k-means elsewhere keeps its threads."""
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if len(query) == 1 else before)
        try:
            return self.index.search(query, k, params=params)
        finally:
            faiss.omp_set_num_threads(before)

    def _visits(self, share: float) -> int:
        """Lists a bitmap search keeping `share` visits: sqrt(NPROBE_SHARE / share) times the plain search's."""
        grown = math.ceil(self.index.nprobe * math.sqrt(NPROBE_SHARE / share))
        return max(self.index.nprobe, min(self._quantizer.ntotal, grown))

    def _switches(self, keep: np.ndarray) -> float:
        """How often the filter's verdict changes from one vector to the next along the lists (sampled)."""
        first, second = self._pairs
        return float(np.mean(_take(keep, first) != _take(keep, second))) if len(first) else 0.0


def _take(values: np.ndarray, ids: np.ndarray, missing: bool | int = False) -> np.ndarray:
    """values[ids], `missing` for ids past its end or negative (FAISS's "no result")."""
    inside = (ids >= 0) & (ids < len(values))
    marked = np.full(len(ids), missing, dtype=values.dtype)
    marked[inside] = values[ids[inside]]
    return marked
