"""The lexical index seen through a filter: the same segment files, with every passage the filter leaves out
marked deleted.

tantivy's Python binding takes no filter into a search but the deletions of the index it reads: its
collector skips a deleted passage before anything else is done with it. A filter said as facet words or
document ids is a second posting list to intersect with the question's, and costs more the more it keeps and
the more its passages are strewn over the index's order (a glob over every fifth file: 1.5 times the
unfiltered query at a million passages). Said as deletions, any filter costs at most what the unfiltered
query costs, and less the less it keeps (bench/filters.py, bench/RESULTS.md).

A view is a private folder of links to one commit's segment files, beside deletion files and a `meta.json`
written here in tantivy's own formats (index format 7: a little-endian bitset of live passages, tantivy's
footer). One is made per filter and commit, in about 8 ms at a million passages, and the last VIEWS_KEPT are
kept. A view whose passage count or commit is not the one expected is not used: the caller filters another
way.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tantivy

VIEW_PREFIX = "verbatim-filtered-"
VIEWS_KEPT = 8  # each holds one bit per passage on disk and a tantivy reader (one thread) while kept
_FOOTER_MAGIC = 1337
_FOOTER_READ = 4096  # a footer is a short JSON text: its file's tail holds it
# The tantivy index format whose deletion files this module writes; an index in another gets no views (the
# lexical arms filter another way) until the format is checked and added here.
INDEX_FORMATS = (7,)


class FilteredViews:
    """The views of one lexical index folder, made on demand, the newest VIEWS_KEPT kept. Thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parent: Path | None = None  # where views are made; None: the system's temporary folder
        self._chunk_ids: dict[str, np.ndarray] = {}  # segment id -> chunk id of each passage (-1: the marker)
        self._views: OrderedDict[int, _View] = OrderedDict()
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._views)  # at the latest when the process ends

    def searcher(
        self, keep: np.ndarray, seq: int, marker_seq: Callable[[tantivy.Searcher], int]
    ) -> tantivy.Searcher | None:
        """A searcher over the index's newest commit in which only the chunks `keep` marks (a bool per chunk
        id) are live; None when that commit is not SQLite commit `seq` (`marker_seq` reads a searcher's)
        or tantivy does not read the view as written."""
        with self._lock:
            view = self._views.get(id(keep))
            if view is not None and view.keep is keep and view.seq == seq:
                self._views.move_to_end(id(keep))
                return view.searcher
            view = self._make(keep, seq, marker_seq)
            if view is None:
                return None
            self._keep(id(keep), view)
            return view.searcher

    def clear(self) -> None:
        """Drop every view (the index moved to another commit); searches using one finish first, as the
        files stay readable until they close."""
        with self._lock:
            _close_all(self._views)

    def _keep(self, key: int, view: _View) -> None:
        if key in self._views:
            self._views.pop(key).close()
        while len(self._views) >= VIEWS_KEPT:
            self._views.popitem(last=False)[1].close()
        self._views[key] = view

    def _make(self, keep: np.ndarray, seq: int, marker_seq: Callable[[tantivy.Searcher], int]) -> _View | None:
        source = self.folder.resolve()  # a replica's `current` may move to a newer snapshot meanwhile
        try:
            meta = json.loads((source / "meta.json").read_bytes())
            view = _View(Path(tempfile.mkdtemp(prefix=VIEW_PREFIX, dir=self.parent)), keep, seq)
        except (OSError, ValueError):  # no commit yet; no room for a view
            return None
        folder = view.folder
        try:
            _link_segments(source, folder, meta)
            self._read_chunk_ids(folder, meta)
            live = self._write_deletions(source, folder, meta, keep)
            view.searcher = _fixed_searcher(folder)
        except (OSError, ValueError, KeyError):  # a segment merged away meanwhile; files tantivy does not read
            view.close()
            return None
        if view.searcher.num_docs != live or marker_seq(view.searcher) != seq:
            view.close()
            return None
        return view

    def _read_chunk_ids(self, folder: Path, meta: dict) -> None:
        """Read the chunk id of every passage of the segments not read before (a segment never changes but
        for its deletions), through the view folder holding the same commit, so that segment ordinals are
        those of `meta`."""
        missing = [i for i, s in enumerate(meta["segments"]) if s["segment_id"] not in self._chunk_ids]
        if not missing:
            return
        whole = [{**s, "deletes": None} for s in meta["segments"]]  # the view links no deletion file
        (folder / "meta.json").write_text(json.dumps({**meta, "segments": whole}))
        searcher = _fixed_searcher(folder)
        for ordinal in missing:
            segment = meta["segments"][ordinal]
            addresses = [tantivy.DocAddress(ordinal, doc) for doc in range(segment["max_doc"])]
            values = searcher.fast_field_values("cid", addresses)
            self._chunk_ids[segment["segment_id"]] = np.array([-1 if v is None else v for v in values], np.int64)
        known = {s["segment_id"] for s in meta["segments"]}
        for gone in set(self._chunk_ids) - known:  # merged away: never asked for again
            del self._chunk_ids[gone]

    def _write_deletions(self, source: Path, folder: Path, meta: dict, keep: np.ndarray) -> int:
        """Write each segment's live passages (live in the commit, and kept or the commit marker) and a
        `meta.json` naming them; the number of live passages."""
        stamp = int(meta["opstamp"]) + 1
        segments, total = [], 0
        for segment in meta["segments"]:
            ids = self._chunk_ids[segment["segment_id"]]
            live = ids < 0  # the commit marker: what tells which commit the view is
            known = (ids >= 0) & (ids < len(keep))
            live[known] = keep[ids[known]]
            name = segment["segment_id"].replace("-", "")
            if segment["deletes"]:
                live &= _read_live(source / f"{name}.{segment['deletes']['opstamp']}.del", len(ids))
            footer = _footer_version(source / f"{name}.fieldnorm")
            (folder / f"{name}.{stamp}.del").write_bytes(_live_file(live, footer))
            count = int(np.count_nonzero(live))
            segments.append({**segment, "deletes": {"num_deleted_docs": len(ids) - count, "opstamp": stamp}})
            total += count
        written = folder / "meta.json.tmp"
        written.write_text(json.dumps({**meta, "segments": segments}))
        os.replace(written, folder / "meta.json")
        return total


class _View:
    def __init__(self, folder: Path, keep: np.ndarray, seq: int) -> None:
        self.folder, self.keep, self.seq = folder, keep, seq
        self.searcher: tantivy.Searcher | None = None

    def close(self) -> None:
        """Remove the view's folder, renamed first: a file that tantivy writes by its path after this (a reader's
        lock file) then finds no folder, instead of keeping the folder from being removed."""
        self.searcher = None
        closing = self.folder.with_name(f".closing-{self.folder.name}")
        try:
            os.rename(self.folder, closing)
        except OSError:
            closing = self.folder
        shutil.rmtree(closing, ignore_errors=True)


def _fixed_searcher(folder: Path) -> tantivy.Searcher:
    """A searcher of the one commit in `folder`, with no reader watching it for commits: a view never changes,
    and tantivy's watcher, seeing meta.json go as the view is removed, writes its lock file back into the
    folder, which then stays behind (one full test run in seven, under load)."""
    index = tantivy.Index.open(str(folder))
    index.config_reader(reload_policy="Manual")
    return index.searcher()


def _close_all(views: OrderedDict[int, _View]) -> None:
    while views:
        views.popitem()[1].close()


def _link_segments(source: Path, folder: Path, meta: dict) -> None:
    """Link the files of the commit's segments (not their deletion files: the view writes its own)."""
    names = {s["segment_id"].replace("-", "") for s in meta["segments"]}
    for entry in source.iterdir():
        stem = entry.name.split(".", 1)[0]
        if stem in names and not entry.name.endswith(".del"):
            (folder / entry.name).symlink_to(entry)


def _live_file(live: np.ndarray, footer: dict) -> bytes:
    """tantivy's deletion file: the passage count, then one bit per passage (set: live) in little-endian
    64-bit words, then its footer (JSON naming the format and a CRC32 of the body, its length, a magic
    number)."""
    bits = np.packbits(live, bitorder="little")
    body = struct.pack("<I", len(live)) + bits.tobytes() + bytes(-len(bits) % 8)
    tail = json.dumps({"version": footer, "crc": zlib.crc32(body)}, separators=(",", ":")).encode()
    return body + tail + struct.pack("<II", len(tail), _FOOTER_MAGIC)


def _read_live(path: Path, count: int) -> np.ndarray:
    """The live passages a deletion file of the index marks."""
    body, _ = _split_footer(path.read_bytes(), path)
    return np.unpackbits(np.frombuffer(body[4:], dtype=np.uint8), bitorder="little")[:count].astype(bool)


def _footer_version(path: Path) -> dict:
    """The format version in the footer of one of the segment's own files: the view's files claim the
    version that wrote the index, which must be one whose deletion files are written here."""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - _FOOTER_READ))
        _, footer = _split_footer(f.read(), path)
    version = footer["version"]
    if version.get("index_format_version") not in INDEX_FORMATS:
        raise ValueError(f"{path}: tantivy index format {version.get('index_format_version')} is not written here")
    return version


def _split_footer(data: bytes, path: Path) -> tuple[bytes, dict]:
    """A tantivy file's body and its footer (`_live_file`); `data` may be the file's tail only."""
    length, magic = struct.unpack("<II", data[-8:])
    if magic != _FOOTER_MAGIC or length + 8 > len(data):
        raise ValueError(f"{path} has no tantivy footer")
    return data[: len(data) - 8 - length], json.loads(data[len(data) - 8 - length : -8])
