"""What a conversation with the collection does, for the browser chat and `rag chat` alike: answer a question
(with the conversation's context when it is a follow-up), list and open articles, take uploads.

`ChatService` knows nothing of Gradio and is shared by every browser session of a server (one model, one
index, loaded once); `rag chat` uses it in the terminal without importing Gradio at all.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.api import Index
from rag.citations import SUFFIXES, export
from rag.errors import IndexWriteError, RagError
from rag.index import DocumentSummary
from rag.records import Answer, IndexReport
from rag.search.relevance import load_calibration
from rag.search.request import API_NAMES, DEFAULT_K, FieldNames, SearchRequest
from rag.serve.conversation import search_text
from rag.serve.highlight import answer_marks
from rag.serve.render import ShownPassage, answer_markdown, answer_text, article_html, error_markdown, literal
from rag.serve.uploads import DEFAULT_UPLOAD_MB, save_uploads
from rag.text import visible

# Questions the seed articles answer, each with the article that answers it.
SEED_EXAMPLES = {
    "Who was Kim Kyoung-soo's political mentor?": "002_4545c625dd368776.txt",
    "Which summit is Lee attending in Canada?": "002_4545c625dd368776.txt",
    "What is the China-North Korea mutual defense pledge?": "003_a37b0dba77dbb840.txt",
    "Who is Lee Jae-myung's main rival according to the poll?": "000_594d65cdc1b20141.txt",
}
MAX_EXAMPLES = 4
ALL_SOURCES = ""  # the article list's "All articles": a blank filter, which a request reads as none
# The search options as the browser page labels them, for its error messages.
CHAT_NAMES = FieldNames(
    k="Passages", mode="Search", source="Only in article or site", since="Published from", until="Published until"
)
EXPORT_KINDS = ("markdown", "json", "csl-json")
EXPORTS_KEPT_SECONDS = 3600  # an answer's download files are removed an hour after it was given
SOURCES_PAGE = 50  # rows of the Sources table at a time: the page never carries the whole collection
ARTICLE_CHOICES = 100  # articles offered in the filter list; any other can be typed (file, glob or site)


@dataclass(frozen=True)
class Reply:
    """One bot turn: the Markdown shown in the chat, and what it was made from."""

    markdown: str
    answer: Answer | None
    searched_for: str
    shown: tuple[ShownPassage, ...] = ()
    context: str | None = None  # the search text, when it differs from what the user typed
    error: str | None = None

    def text(self, marked: tuple[str, str] = ("", ""), terminal: bool = False) -> str:
        """The reply as plain text (`/chat`, `rag chat`): article text as it is, no markup to undo; for a
        `terminal`, with what a terminal would act on shown as escapes (`rag.text.visible`)."""
        if self.answer is None:
            return f"Cannot search: {visible(str(self.error)) if terminal else self.error}"
        return answer_text(self.answer, self.shown, self.context, marked, terminal)


class ChatService:
    """What the chat does, for every session of one server."""

    def __init__(
        self, index: Index, uploads_dir: Path, max_upload: int = DEFAULT_UPLOAD_MB * 1_000_000, read_only: bool = False
    ) -> None:
        self.index = index
        self.uploads_dir = uploads_dir  # where files added in the chat are kept: never the checkout's sample folder
        self.max_upload = max_upload  # bytes
        self.read_only = read_only  # a replica: it answers from the index as published, and adds nothing
        self._writing = threading.Lock()
        self._exports: Path | None = None  # a temporary folder of answers' download files, made when first used
        self.watched: str | None = None  # what the folder watch last indexed, for the Sources caption
        self.watch_batches = 0

    def watch(
        self, folder: Path, ready: threading.Event | None = None, stop: threading.Event | None = None
    ) -> threading.Thread:
        """Index what is added, changed or removed in `folder` from now on (until `stop`), in a background thread,
        one writer with the chat's uploads; each batch is printed and named under the Sources list."""
        from rag.build.watch import batch_line, watch_folders

        def heard(line: str) -> None:  # for the Sources caption, which open tabs then redraw
            self.watched = f"{time.strftime('%H:%M')}, from {folder.name}/: {line}"
            self.watch_batches += 1

        def said(report: IndexReport) -> None:
            line = batch_line(report) + "".join(f"; skipped {name}: {why}" for name, why in report.skipped)
            heard(line)
            print(f"watch: {visible(line)}", flush=True)

        def failed(reason: str) -> None:
            heard(f"not indexed yet ({reason})")
            print(f"watch: error: {visible(reason)}", file=sys.stderr, flush=True)

        thread = threading.Thread(
            target=watch_folders,
            args=(lambda: self.index.add([folder]), [folder], said, failed, stop),
            kwargs={"lock": self._writing, "ready": ready},
            daemon=True,
            name="watch",
        )
        thread.start()
        return thread

    def answer(
        self,
        message: str,
        earlier: Sequence[str] = (),
        k: object = DEFAULT_K,
        mode: object = "hybrid",
        source: object = None,
        since: object = None,
        until: object = None,
        names: FieldNames = API_NAMES,
        rerank: bool | None = None,
        read_question: bool = True,
    ) -> Reply:
        """Search for `message` (with the conversation's context when it is a follow-up) and render the reply.
        A question that cannot be searched gets its reason as the reply, its fields named as in `names`, rather
        than an exception."""
        query = search_text(message, earlier) if isinstance(message, str) and message.strip() else message
        try:
            request = SearchRequest.build(
                query, k, mode, source, since, until, names=names, rerank=rerank, read_question=read_question
            )
            answer = self.index.ask(request)
        except RagError as exc:
            return Reply(error_markdown(str(exc)), None, query, error=str(exc))
        bar = answer.bar
        marks = answer_marks(answer)
        shown = tuple(
            ShownPassage(p, mark, p.score / bar, p.article_length, p.site) for p, mark in zip(answer.passages, marks)
        )
        context = query if query != message.strip() else None
        return Reply(answer_markdown(answer, shown, searched_for=context), answer, query, shown, context)

    def export_files(self, answer: Answer) -> list[Path]:
        """The answer as download files, one per kind of `EXPORT_KINDS` (Markdown with each passage as a
        quote and its source, JSON, CSL-JSON), in a folder of their own; folders older than an hour go."""
        if self._exports is None:
            self._exports = Path(tempfile.mkdtemp(prefix="verbatim-answers-"))
        cutoff = time.time() - EXPORTS_KEPT_SECONDS
        for old in self._exports.iterdir():
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(dir=self._exports))
        stem = "-".join(re.findall(r"\w+", answer.query.lower())[:6])[:60] or "answer"
        files = []
        for kind in EXPORT_KINDS:
            path = folder / f"verbatim-{stem}{SUFFIXES[kind]}"
            path.write_text(export(answer, kind), encoding="utf-8")
            files.append(path)
        return files

    def reads_by_default(self) -> bool:
        """Whether a search uses the reader unless told otherwise (the chat's box starts so)."""
        calibration = self.index.searcher.calibration if self.index.exists() else load_calibration("")
        return calibration.reader is not None and calibration.reader.default

    def articles(self, search: str = "", page: int = 1, limit: int = SOURCES_PAGE) -> tuple[list[DocumentSummary], int]:
        """One page of the collection's articles matching `search`, and how many match in all."""
        if not self.index.exists():
            return [], 0
        return self.index.documents((max(1, page) - 1) * limit, limit, search)

    def source_choices(self) -> list[tuple[str, str]]:
        """All articles, then each site (a publication name or web host), then the first articles."""
        if not self.index.exists():
            return [("All articles", ALL_SOURCES)]
        articles, _ = self.articles(limit=ARTICLE_CHOICES)
        return (
            [("All articles", ALL_SOURCES)]
            + [(f"Site: {site}", site) for site in self.index.sites()]
            + [(f"{d.title or d.source} ({d.source})", d.source) for d in articles]
        )

    def lists_version(self) -> str:
        """What the Sources list and its caption show, as a version: the index's newest commit (any writer's)
        and the folder watch's batches. A tab whose lists are of another version redraws them."""
        searcher = self.index.searcher
        searcher.catch_up()
        return f"{searcher.store.manifest.seq}/{self.watch_batches}"

    def article_by_source(self, source: str, search: str = "", page: int = 1) -> str:
        """The article a Sources row names, found by its source rather than its row number, which another
        tab's upload may have moved."""
        for found in (self.articles(search, page)[0], self.articles(source)[0]):
            match = next((a for a in found if a.source == source), None)
            if match is not None:
                return self.article(match.doc_id)
        return ""

    def source_rows(self, search: str = "", page: int = 1) -> list[list[Any]]:
        return [[d.title, d.source, d.published or "", d.chunks] for d in self.articles(search, page)[0]]

    def sources_caption(self, search: str = "", page: int = 1) -> str:
        _, total = self.articles(search, page, limit=1)
        first = (max(1, page) - 1) * SOURCES_PAGE
        shown = max(0, min(SOURCES_PAGE, total - first))
        caption = f"{first + 1 if shown else 0}–{first + shown} of {total:,} articles" + (
            f" matching “{literal(search)}”" if search.strip() else ""
        )
        return caption + (f"  \nLast indexed {literal(self.watched)}" if self.watched else "")

    def examples(self) -> list[str]:
        """Seed questions whose article is indexed, then other articles' headlines, up to MAX_EXAMPLES."""
        articles, _ = self.articles(limit=ARTICLE_CHOICES)
        sources = {d.source for d in articles}
        chosen = [q for q, source in SEED_EXAMPLES.items() if source in sources]
        chosen += [d.title for d in articles if d.title and d.source not in SEED_EXAMPLES.values()]
        return chosen[:MAX_EXAMPLES]

    def article(self, doc_id: int, start: int | None = None, end: int | None = None) -> str:
        try:
            return article_html(self.index.document(doc_id), start, end)
        except RagError as exc:
            return f"<p>{literal(str(exc))}</p>"

    def add_files(self, files: Sequence[str | Path]) -> str:
        """Save uploads into the uploads folder and index them incrementally; a Markdown report of what
        happened to each file. One upload is indexed at a time; searches go on meanwhile."""
        if self.read_only:
            return (
                "This server answers from a published copy of the index and adds nothing to it: add articles "
                "where the index is written (`rag index`), then publish them (`rag snapshot`)."
            )
        with self._writing:
            result = save_uploads([Path(f) for f in files], self.uploads_dir, self.max_upload)
            skipped: list[tuple[str, str]] = []
            report = None
            unindexed = None
            if result.saved:
                try:
                    report = self.index.add([self.uploads_dir], progress=True, on_skip=lambda *s: skipped.append(s))
                except IndexWriteError as exc:  # saved, and indexed by the next write once there is room
                    unindexed = str(exc)
        lines = []
        if result.saved:
            lines.append(
                f"**Added {len(result.saved)} article{'s' * (len(result.saved) != 1)}:** "
                + ", ".join(literal(n) for n in result.saved)
            )
        if report is not None:
            lines.append(f"Indexed in {report.seconds:.1f} s: {report.embedded} passages embedded.")
        if unindexed is not None:
            lines.append(f"**Not indexed yet:** {literal(unindexed)}")
        for name in result.already_there:
            lines.append(f"- {literal(name)}: already in the collection, not added again")
        saved = set(result.saved)  # a record of a saved export is named "file.jsonl#N"
        for name, why in result.rejected + [s for s in skipped if s[0].split("#")[0] in saved]:
            lines.append(f"- **Rejected** {literal(name)}: {literal(why)}")
        for name, note in report.notes if report is not None else []:
            if name in saved:
                lines.append(f"- {literal(name)}: {literal(note)}")
        return "\n".join(lines) or "No files."
