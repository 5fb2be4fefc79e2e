"""A folder that indexes itself: files added, changed or removed under the watched folders reach the index
within seconds of the last write.

The file system's own change events come through watchfiles (inotify, FSEvents, ReadDirectoryChangesW in Rust;
a poller on file systems that give no events), rather than a polling loop of ours. A burst of changes (a
folder copied in, an editor's save-rename) is one batch: it ends when nothing has changed for QUIET_MS. Each
batch is one `Index.add` of the watched folders, which reads only the files whose size or time changed and
removes the articles of deleted files; the index's own writer lock keeps it to one writer at a time, across
processes too, and `lock` orders it with this process's other writers (the chat's uploads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import watchfiles

from rag.errors import RagError
from rag.ingest.files import SUPPORTED_SUFFIXES, file_suffix
from rag.records import IndexReport

QUIET_MS = 800  # a batch ends once nothing has changed for this long
LONGEST_BATCH_MS = 10_000  # and is indexed after this long even while changes keep coming
_EDITORS_AND_TOOLS = watchfiles.DefaultFilter()  # swap files, .git, __pycache__ ...


def watched_change(change: watchfiles.Change, path: str) -> bool:
    """Whether a change can alter the index: a file of a format we read, or anything removed (a folder
    taken away removes its articles); hidden files and editors' temporary files never."""
    if not _EDITORS_AND_TOOLS(change, path):
        return False
    name = Path(path).name
    if name.startswith("."):
        return False
    return change == watchfiles.Change.deleted or file_suffix(path) in SUPPORTED_SUFFIXES


def watch_folders(
    add: Callable[[], IndexReport],
    folders: Sequence[Path],
    on_batch: Callable[[IndexReport], None],
    on_error: Callable[[str], None],
    stop: threading.Event | None = None,
    lock: threading.Lock | None = None,
    ready: threading.Event | None = None,
) -> None:
    """Index each batch of changes under `folders` with `add` (an `Index.add` of those folders) until `stop` is
    set (or Ctrl-C): `on_batch` hears what each batch did (its `skipped`: the files and records of this batch
    that could not be read), `on_error` of a batch that could not be written (the index is then as it was; the
    next change tries again). Once the watch is on, one catch-up batch indexes whatever changed before it (after
    the caller's own run); then `ready` is set."""
    changes = watchfiles.watch(
        *folders,
        watch_filter=watched_change,
        debounce=LONGEST_BATCH_MS,
        step=QUIET_MS,
        stop_event=stop,
        rust_timeout=500,
        yield_on_timeout=True,
        raise_interrupt=False,
    )
    caught_up = False
    for batch in changes:  # the first wait starts the watch; it then yields every batch, or nothing each 500 ms
        if caught_up and not batch:
            continue
        touched = changed_names(batch, folders)
        try:
            with lock or nullcontext():
                report = add()
            report.skipped = [(name, why) for name, why in report.skipped if is_touched(name, touched)]
        except RagError as exc:
            on_error(str(exc))
            continue
        finally:
            if not caught_up and ready is not None:
                ready.set()
            caught_up = True
        if report.added_sources or report.updated_sources or report.removed_sources or report.skipped:
            on_batch(report)


def changed_names(batch: set[tuple[watchfiles.Change, str]], folders: Sequence[Path]) -> set[str]:
    """The batch's paths as the index names their files: relative to the watched folder holding them."""
    roots = [folder.resolve() for folder in folders]
    names = set()
    for _, path in batch:
        resolved = Path(path).resolve()
        for root in roots:
            if resolved.is_relative_to(root):
                names.add(resolved.relative_to(root).as_posix())
    return names


def is_touched(name: str, touched: set[str]) -> bool:
    """Whether a skipped file or record (`file`, `file#3`, `mail.eml/attachment.pdf`) is one this batch
    changed: a file that was already unreadable is named when it changes, not at every batch."""
    return any(name == t or name.startswith((f"{t}#", f"{t}/")) for t in touched)


def batch_line(report: IndexReport) -> str:
    """One line for what a batch did: "added a.txt, b.txt; updated c.txt; removed d.txt"."""
    parts = [
        f"{verb} {', '.join(names)}"
        for verb, names in (
            ("added", report.added_sources),
            ("updated", report.updated_sources),
            ("removed", report.removed_sources),
        )
        if names
    ]
    return "; ".join(parts) or "nothing indexed"
