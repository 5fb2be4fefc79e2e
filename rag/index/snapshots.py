"""Published snapshots of an index, for replicas that do not share the writer's disk.

SQLite's WAL mode needs shared memory beside the database, which a network file system across machines does
not give; so replicas on other machines read copies. `publish` copies the index as of one commit (holding
the writer's lock, so no commit lands halfway through the copy) into `DEST/<seq>-<time>`, then points
`DEST/current` at it with one atomic rename. A replica started on `DEST/current` (`python app.py --index
DEST/current --read-only`) sees the link move before its next search and opens the new copy whole; the old
one stays readable until it is pruned (the newest `keep` are kept), and files a replica still has open stay
readable after that on POSIX systems. Copy `DEST` to other machines with rsync and the same rename.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.errors import RagError
from rag.index.schema import DB_NAME, LOCK_NAME
from rag.index.store import has_index, read_manifest, write_errors

CURRENT = "current"
KEEP = 2


def publish(index_dir: Path, dest: Path, keep: int = KEEP) -> Path:
    """Copy the index in `index_dir` as of its newest commit into a new folder under `dest`, point
    `dest/current` at it, prune all but the newest `keep` snapshots; returns the new snapshot's folder."""
    if not has_index(index_dir):
        raise RagError(f"no index in {index_dir} to publish: build one with `rag index --index {index_dir}`")
    if keep < 1:
        raise RagError(f"--keep must be at least 1 (the snapshot being published), not {keep}")
    dest.mkdir(parents=True, exist_ok=True)
    with write_errors(dest), _no_commits(index_dir):
        seq = read_manifest(index_dir).seq
        name = f"{seq:08d}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
        staging = dest / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(index_dir, staging, ignore=shutil.ignore_patterns(f"{DB_NAME}*", LOCK_NAME, ".staging*"))
        with sqlite3.connect(index_dir / DB_NAME) as source, sqlite3.connect(staging / DB_NAME) as copy:
            source.backup(copy)  # one consistent state of the database, whatever its WAL holds
        _fsync_tree(staging)
    snapshot = dest / name
    staging.rename(snapshot)
    link = dest / f".{CURRENT}.new"
    link.unlink(missing_ok=True)
    link.symlink_to(name)
    os.replace(link, dest / CURRENT)  # readers see the old snapshot or the new one, never neither
    _prune(dest, keep)
    return snapshot


@contextmanager
def _no_commits(index_dir: Path) -> Iterator[None]:
    """The writers' lock, held: no commit lands while the index is copied. A folder nobody can write (a
    read-only mount) needs none."""
    if not os.access(index_dir, os.W_OK):
        yield
        return
    with open(index_dir / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def _prune(dest: Path, keep: int) -> None:
    current = (dest / CURRENT).resolve()
    snapshots = sorted(
        p for p in dest.iterdir() if p.is_dir() and not p.name.startswith(".") and p.resolve() != current
    )
    for old in snapshots[: max(0, len(snapshots) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
