"""Articles added from the browser become files in the uploads folder (`default_uploads_dir`: beside the index
folder, never the checkout's sample `corpus/`), so the index can always be rebuilt from files on disk and a
later `rag index` of that folder sees exactly what the chat saw."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import IngestError
from rag.ingest.files import SUPPORTED_SUFFIXES, file_suffix, read_documents

DEFAULT_UPLOAD_MB = 50


@dataclass
class UploadResult:
    saved: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def save_uploads(files: list[Path], folder: Path, max_bytes: int = DEFAULT_UPLOAD_MB * 1_000_000) -> UploadResult:
    """Copy each readable article into `folder` under its own name (the last part of the name it came
    with, so no name can reach outside the folder; a new name when a different file has it already); name
    each rejected one with the reason. Nothing already in the folder is overwritten."""
    result = UploadResult()
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        name = Path(file).name
        if name.startswith("."):
            result.rejected.append((name, "a hidden file's name (it starts with '.'): rename it to add it"))
            continue
        if file_suffix(name) not in SUPPORTED_SUFFIXES:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            result.rejected.append((name, f"not an article file: only {kinds} files can be added"))
            continue
        size = Path(file).stat().st_size
        if size > max_bytes:
            result.rejected.append(
                (name, f"{size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB upload limit: add it with `rag index`")
            )
            continue
        try:
            read_documents(Path(file), name)
        except IngestError as exc:
            result.rejected.append((name, str(exc).removeprefix(f"{name}: ")))
            continue
        data = Path(file).read_bytes()
        target = _free_name(folder, name, data)
        if target is None:
            result.already_there.append(name)
            continue
        try:
            _write_atomically(target, data)
        except OSError as exc:  # a full disk, a folder turned read-only: this file is not saved, the others go on
            result.rejected.append((name, f"could not be saved in the uploads folder ({exc.strerror or exc})"))
            continue
        result.saved.append(target.name)
    return result


def _free_name(folder: Path, name: str, data: bytes) -> Path | None:
    """`name`, or `stem (2).suffix`… for a different file; None when the same bytes are there already."""
    stem, suffix = Path(name).stem, Path(name).suffix
    for n in range(1, 10_000):
        candidate = folder / (name if n == 1 else f"{stem} ({n}){suffix}")
        if not candidate.exists():
            return candidate
        if candidate.read_bytes() == data:
            return None
    raise IngestError(f"{name}: too many files of that name in {folder}")


def _write_atomically(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
