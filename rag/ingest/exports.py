"""News exports as JSON Lines or JSON: one article per record, fields named however the exporter named them.

A record needs text (`text`, `body`, `content`… or the name given with `--field text=NAME`); title, URL,
date and author are taken when present. A bad record (not JSON, no text) is reported with its line or
position and the rest of the file is still read. Each record's source is `file#N`, N its line (JSON Lines)
or position (JSON array), so an answer points at the record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from rag.errors import IngestError
from rag.ingest.dates import parse_date
from rag.ingest.plaintext import body_segments
from rag.records import Document

LIST_KEYS = ("articles", "items", "data", "records", "results", "documents")


@dataclass(frozen=True)
class RecordFields:
    """Which record keys hold what; the first key present wins. Change with `--field text=body_html` etc."""

    text: tuple[str, ...] = ("text", "body", "content", "article", "maintext")
    title: tuple[str, ...] = ("title", "headline", "name")
    url: tuple[str, ...] = ("url", "link", "canonical_url", "source_url")
    date: tuple[str, ...] = ("date", "published", "published_at", "publish_date", "pubDate", "date_publish")
    author: tuple[str, ...] = ("author", "authors", "byline", "creator")
    site: tuple[str, ...] = ("site", "source", "publisher", "site_name", "source_domain")
    # A Word file's own title, author and creation date: often its template's, so taken only when asked for.
    word_properties: bool = False
    # Fetch the page each feed item or sitemap entry links (the command line's choice; never a browser upload's).
    fetch_links: bool = False

    def with_override(self, spec: str) -> RecordFields:
        """`role=key` puts `key` first for that role (text, title, url, date, author, site)."""
        role, sep, key = spec.partition("=")
        role, key = role.strip(), key.strip()
        if not sep or not key or role not in ROLES:
            raise IngestError(f"--field '{spec}': write ROLE=KEY with ROLE one of {', '.join(ROLES)}")
        return RecordFields(**{**self.__dict__, role: (key, *getattr(self, role))})


ROLES = ("text", "title", "url", "date", "author", "site")


@dataclass
class Records:
    documents: list[Document] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def parse_records(text: str, source: str, jsonl: bool, fields: RecordFields) -> Records:
    result = Records()
    items = _jsonl_items(text, source, result) if jsonl else _json_items(text, source)
    for number, item in items:
        name = f"{source}#{number}"
        try:
            result.documents.append(record_document(item, name, fields))
        except IngestError as exc:
            result.problems.append((name, str(exc).removeprefix(f"{name}: ")))
    if not result.documents and not result.problems:
        raise IngestError(f"{source}: no records")
    return result


def _jsonl_items(text: str, source: str, result: Records) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            result.problems.append((f"{source}#{number}", f"not JSON ({exc.msg} at column {exc.colno})"))
            continue
        except RecursionError:
            result.problems.append((f"{source}#{number}", "nested too deeply to read"))
            continue
        yield number, item


def _json_items(text: str, source: str) -> Iterator[tuple[int, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict):
        inner = next((data[k] for k in LIST_KEYS if isinstance(data.get(k), list)), None)
        data = inner if inner is not None else [data]
    if not isinstance(data, list):
        raise IngestError(f"{source}: expected an object or a list of objects, found {type(data).__name__}")
    yield from enumerate(data, start=1)


def record_document(item: Any, source: str, fields: RecordFields) -> Document:
    if not isinstance(item, dict):
        raise IngestError(f"{source}: a record must be an object, found {type(item).__name__}")
    text = _pick(item, fields.text)
    if not text or not text.strip():
        raise IngestError(f"{source}: no text (looked for {', '.join(fields.text)}; set one with --field text=KEY)")
    text = text.strip()
    segments = body_segments(text)
    if not segments:
        raise IngestError(f"{source}: nothing but page boilerplate")
    url = _pick(item, fields.url)
    date = _pick(item, fields.date)
    return Document(
        source=source,
        text=text,
        title=(_pick(item, fields.title) or text.split("\n", 1)[0])[:200].strip(),
        url=url if url and url.startswith(("http://", "https://")) else None,
        published=parse_date(date) if date else None,
        segments=segments,
        content_hash=hashlib.sha256(json.dumps(item, sort_keys=True, ensure_ascii=False).encode()).hexdigest(),
        author=_pick(item, fields.author),
        site=_pick(item, fields.site),
    )


def _pick(item: dict, keys: tuple[str, ...]) -> str | None:
    """The first present key's value as text: lists (several authors) joined, numbers as written."""
    for key in keys:
        value = item.get(key)
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list):
            return ", ".join(str(v.get("name", v)) if isinstance(v, dict) else str(v) for v in value)
        if isinstance(value, dict):
            return str(value.get("name") or value.get("text") or "") or None
        return str(value)
    return None


def stream_records(
    path: Path, source: str, jsonl: bool, fields: RecordFields, at: Callable[[int], None] | None = None
) -> Iterator[Document | tuple[str, str]]:
    """The records of a large export one at a time, never the whole file in memory: each a Document, or
    (name, reason) for a bad one. JSON Lines are read a line at a time, a JSON array (or an object holding
    one under LIST_KEYS) with ijson's incremental parser. Records are numbered as `parse_records` numbers
    them. `at` is told how many bytes have been read, for a progress bar."""
    with open(path, "rb") as f:
        items = _stream_jsonl(f, source) if jsonl else _stream_json(f, source)
        for number, item in items:
            name = f"{source}#{number}"
            if at is not None:
                at(f.tell())
            if isinstance(item, _Problem):
                yield name, item.reason
                continue
            try:
                yield record_document(item, name, fields)
            except IngestError as exc:
                yield name, str(exc).removeprefix(f"{name}: ")


@dataclass(frozen=True)
class _Problem:
    reason: str


def _stream_jsonl(f: BinaryIO, source: str) -> Iterator[tuple[int, Any]]:
    number = 0
    while line := f.readline():
        number += 1
        if not line.strip():
            continue
        try:
            yield number, json.loads(line.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError:
            yield number, _Problem("not UTF-8 text")
        except json.JSONDecodeError as exc:
            yield number, _Problem(f"not JSON ({exc.msg} at column {exc.colno})")
        except RecursionError:
            yield number, _Problem("nested too deeply to read")


def _stream_json(f: BinaryIO, source: str) -> Iterator[tuple[int, Any]]:
    prefix = _records_prefix(f, source)
    f.seek(0)
    try:
        yield from enumerate(ijson.items(f, prefix, use_float=True), start=1)
    except ijson.JSONError as exc:
        raise _invalid_json(source, exc) from exc


def _invalid_json(source: str, exc: Exception) -> IngestError:
    return IngestError(f"{source}: not valid JSON ({str(exc)[:120]})")


def _records_prefix(f: BinaryIO, source: str) -> str:
    """Where the records are: the top-level array (`item`), or the array under one of LIST_KEYS."""
    depth_one_key = None
    try:
        for prefix, event, value in ijson.parse(f):
            if prefix == "" and event == "start_array":
                return "item"
            if prefix == "" and event == "map_key":
                depth_one_key = value
            elif event == "start_array" and prefix == depth_one_key and depth_one_key in LIST_KEYS:
                return f"{depth_one_key}.item"
            elif prefix == "" and event == "end_map":
                break
    except ijson.JSONError as exc:
        raise _invalid_json(source, exc) from exc
    raise IngestError(f"{source}: expected a list of records, or an object holding one under {', '.join(LIST_KEYS)}")
