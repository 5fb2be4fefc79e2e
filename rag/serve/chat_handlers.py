"""What each event of the browser page does, as plain methods over the `ChatService`: a question asked, an
example clicked, a passage or a Sources row opened, the lists redrawn after another writer's commit, an
upload, the `/chat` and `/ask` endpoints.

No Gradio here: a handler takes the page's values and returns plain values, `None` where the page is to be
left as it is. `rag.serve.chat` lays out the page and turns those into Gradio's updates, so every handler
is tested by calling it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.search.request import DEFAULT_K, SearchRequest
from rag.serve.chat_service import CHAT_NAMES, ChatService

READ_TARGET = re.compile(r"(\d+)-(\d+)-(\d+)")  # what the page's script hands over: "doc-start-end"
Message = dict[str, Any]


def text_of(content: Any) -> str:
    """A chat message's text, whether Gradio hands it over as a string or as content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, list):
        return " ".join(text_of(part) for part in content)
    return ""


def user_questions(history: Sequence[Message]) -> list[str]:
    return [text_of(m.get("content")) for m in history if m.get("role") == "user"]


@dataclass(frozen=True)
class Lists:
    """The Sources table, its caption, the filter's choices, and the commit they show."""

    rows: list[list[Any]]
    caption: str
    choices: list[tuple[str, str]]
    commit: str  # ChatService.lists_version


@dataclass(frozen=True)
class Uploaded:
    """After an upload: its report, the Sources table's first page, and the filter's choices."""

    report: str
    rows: list[list[Any]]
    choices: list[tuple[str, str]]


class ChatHandlers:
    """The page's events over one shared service; each browser tab's conversation is the history it sends."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    def respond(
        self,
        message: str,
        history: Sequence[Message],
        k: object,
        mode: object,
        source: object,
        since: object,
        until: object,
        rerank: bool | None = None,
        read_question: bool = True,
    ) -> list[Message]:
        """The conversation with the question and its reply appended (a blank question changes nothing). The
        search options are named in errors as the page labels them."""
        return self.turn(message, history, k, mode, source, since, until, rerank, read_question)[0]

    def turn(
        self,
        message: str,
        history: Sequence[Message],
        k: object,
        mode: object,
        source: object,
        since: object,
        until: object,
        rerank: bool | None = None,
        read_question: bool = True,
    ) -> tuple[list[Message], list[Path]]:
        """`respond`, with the answer's download files (none for a blank question or one that could not be
        searched)."""
        history = list(history or [])
        if not message or not message.strip():
            return history, []
        earlier = user_questions(history)
        reply = self.service.answer(message, earlier, k, mode, source, since, until, CHAT_NAMES, rerank, read_question)
        files = self.service.export_files(reply.answer) if reply.answer is not None else []
        return [*history, {"role": "user", "content": message}, {"role": "assistant", "content": reply.markdown}], files

    def read_passage(self, target: str) -> str | None:
        """The article of a "Read in its article" link, its passage marked; None for a target that is not one."""
        found = READ_TARGET.fullmatch(target or "")
        if not found:
            return None
        doc_id, start, end = (int(x) for x in found.groups())
        return self.service.article(doc_id, start, end)

    def open_source(self, search: str, page: float, clicked: str | None, row: int) -> str | None:
        """The article of a clicked Sources row: found by its source, which another tab's upload cannot move;
        by its row number when the click carried no value. None for a row that is not there."""
        if clicked:
            return self.service.article_by_source(clicked, search, int(page or 1))
        articles, _ = self.service.articles(search, int(page or 1))
        return self.service.article(articles[row].doc_id) if 0 <= row < len(articles) else None

    def browse(self, search: str, page: float) -> tuple[list[list[Any]], str]:
        """One page of the Sources table and its caption."""
        number = max(1, int(page or 1))
        return self.service.source_rows(search, number), self.service.sources_caption(search, number)

    def find_sources(self, search: str) -> tuple[list[list[Any]], str, int]:
        """The Sources table for a search being typed: its first page, and the page box back at 1."""
        rows, caption = self.browse(search, 1)
        return rows, caption, 1

    def follow_index(self, search: str, page: float, shown: str) -> Lists | None:
        """The lists again when the index has a newer commit than the tab shows (another tab's upload, a `rag
        index` beside the app, the folder watch); None when they are current."""
        newest = self.service.lists_version()
        if newest == shown:
            return None
        rows, caption = self.browse(search, page)
        return Lists(rows, caption, self.service.source_choices(), newest)

    def upload(self, files: Sequence[str | Path] | None) -> Uploaded | None:
        """Save and index uploaded files; None when nothing was uploaded."""
        if not files:
            return None
        report = self.service.add_files(files)
        return Uploaded(report, self.service.source_rows(), self.service.source_choices())

    def chat_api(
        self,
        message: str,
        k: object = DEFAULT_K,
        mode: object = "hybrid",
        source: object = "",
        since: object = "",
        until: object = "",
        rerank: bool | None = None,
    ) -> str:
        """`/chat`: the chat's reply as plain text; a value the caller got wrong is named as the API names it."""
        return self.service.answer(message, (), k, mode, source, since, until, rerank=rerank).text()

    def ask_api(
        self,
        question: str,
        k: object = DEFAULT_K,
        mode: object = "hybrid",
        source: object = "",
        since: object = "",
        until: object = "",
        rerank: bool | None = None,
    ) -> dict[str, Any]:
        """`/ask`: the JSON of `rag ask --json`. Raises `RagError` for a value the caller got wrong."""
        request = SearchRequest.build(question, k, mode, source, since, until, rerank=rerank)
        return self.service.index.ask(request).to_dict()
