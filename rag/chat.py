"""The browser chat: questions in, verbatim passages with their sources out, over one shared index.

`ChatService` holds everything the chat does and knows nothing of Gradio, so it is tested directly and shared
by every browser session (one model, one index, loaded once). `build_app` lays the Gradio page over it. The
conversation lives in each browser's chat component, so users never see each other's questions. Only
`app.py` imports this module: the CLI and the Python API never pay for Gradio.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag.api import Index
from rag.conversation import search_text
from rag.errors import RagError
from rag.highlight import best_sentences
from rag.ingest import SUPPORTED_SUFFIXES
from rag.records import Answer
from rag.render import ShownPassage, answer_markdown, answer_text, article_html, error_markdown, literal
from rag.search import MODES, Mode
from rag.store import DocumentSummary
from rag.uploads import DEFAULT_UPLOAD_MB, save_uploads

DEFAULT_K = 5
LISTS_REFRESH_SECONDS = 5.0  # how soon an open tab's Sources list shows another writer's articles
MAX_CHAT_K = 20
# Questions the seed articles answer, each with the article that answers it.
SEED_EXAMPLES = {
    "Who was Kim Kyoung-soo's political mentor?": "002_4545c625dd368776.txt",
    "Which summit is Lee attending in Canada?": "002_4545c625dd368776.txt",
    "What is the China-North Korea mutual defense pledge?": "003_a37b0dba77dbb840.txt",
    "Who is Lee Jae-myung's main rival according to the poll?": "000_594d65cdc1b20141.txt",
}
MAX_EXAMPLES = 4
ALL_SOURCES = ""
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

    def text(self, marked: tuple[str, str] = ("", "")) -> str:
        """The reply as plain text (`/chat`, `rag chat`): article text as it is, no markup to undo."""
        if self.answer is None:
            return f"Cannot search: {self.error}"
        return answer_text(self.answer, self.shown, self.context, marked)


class ChatService:
    """What the chat does, for every session of one server."""

    def __init__(self, index: Index, corpus_dir: Path, max_upload: int = DEFAULT_UPLOAD_MB * 1_000_000) -> None:
        self.index = index
        self.corpus_dir = corpus_dir
        self.max_upload = max_upload  # bytes
        self._writing = threading.Lock()

    def answer(
        self,
        message: str,
        earlier: Sequence[str] = (),
        k: int = DEFAULT_K,
        mode: Mode = "hybrid",
        source: str = ALL_SOURCES,
        since: str = "",
        until: str = "",
    ) -> Reply:
        """Search for `message` (with the conversation's context when it is a follow-up) and render the reply.
        A question that cannot be searched gets its reason as the reply rather than an exception."""
        query = search_text(message, earlier) if isinstance(message, str) and message.strip() else message
        try:
            answer = self.index.search(
                query, k=k, mode=mode, source=source or None, since=since or None, until=until or None
            )
        except RagError as exc:
            return Reply(error_markdown(str(exc)), None, query, error=str(exc))
        bar = self.index.searcher.bar(mode)
        marks = best_sentences(answer.query, answer.passages)
        facts = {p.doc_id: self.index.article_facts(p.doc_id) for p in answer.passages}
        shown = tuple(ShownPassage(p, mark, p.score / bar, *facts[p.doc_id]) for p, mark in zip(answer.passages, marks))
        context = query if query != message.strip() else None
        return Reply(answer_markdown(answer, shown, searched_for=context), answer, query, shown, context)

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

    def commit(self) -> int:
        """The number of the index's newest commit (any writer's): a tab whose lists are older redraws them."""
        searcher = self.index.searcher
        searcher.catch_up()
        return searcher.store.manifest.seq

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
        return f"{first + 1 if shown else 0}–{first + shown} of {total:,} articles" + (
            f" matching “{literal(search)}”" if search.strip() else ""
        )

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
        """Save uploads into the corpus folder and index them incrementally; a Markdown report of what
        happened to each file. One upload is indexed at a time; searches go on meanwhile."""
        with self._writing:
            result = save_uploads([Path(f) for f in files], self.corpus_dir, self.max_upload)
            skipped: list[tuple[str, str]] = []
            report = None
            if result.saved:
                report = self.index.add([self.corpus_dir], progress=True, on_skip=lambda *s: skipped.append(s))
        lines = []
        if result.saved:
            lines.append(
                f"**Added {len(result.saved)} article{'s' * (len(result.saved) != 1)}:** "
                + ", ".join(literal(n) for n in result.saved)
            )
        if report is not None:
            lines.append(f"Indexed in {report.seconds:.1f} s: {report.embedded} passages embedded.")
        for name in result.already_there:
            lines.append(f"- {literal(name)}: already in the collection, not added again")
        saved = set(result.saved)  # a record of a saved export is named "file.jsonl#N"
        for name, why in result.rejected + [s for s in skipped if s[0].split("#")[0] in saved]:
            lines.append(f"- **Rejected** {literal(name)}: {literal(why)}")
        return "\n".join(lines) or "No files."


def _text_of(content: Any) -> str:
    """A chat message's text, whether Gradio hands it over as a string or as content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", ""))
    if isinstance(content, list):
        return " ".join(_text_of(part) for part in content)
    return ""


def user_questions(history: Sequence[dict[str, Any]]) -> list[str]:
    return [_text_of(m.get("content")) for m in history if m.get("role") == "user"]


CSS = """
.verbatim-article { max-height: 480px; overflow-y: auto; }
.verbatim-text { white-space: pre-wrap; line-height: 1.55; }
.verbatim-meta { opacity: .75; font-size: .9em; }
mark { background: #ffe58a; color: inherit; padding: 0 .1em; }
"""

SHOW_ANSWER_START = (
    "() => { setTimeout(() => [...document.querySelectorAll('#verbatim-chat .user-row')].pop()"
    "?.scrollIntoView({block: 'start', behavior: 'smooth'}), 100); }"
)
SCROLL_TO_PASSAGE = (
    "() => { setTimeout(() => document.getElementById('verbatim-passage')"
    "?.scrollIntoView({block: 'center', behavior: 'smooth'}), 50); }"
)


def build_app(service: ChatService) -> gr.Blocks:
    """The Gradio page over one shared service; each browser tab keeps its own conversation."""

    def respond(message: str, history: list, k: float, mode: str, source: str, since: str, until: str):
        history = list(history or [])
        if not message or not message.strip():
            return history, "", gr.update(), []
        reply = service.answer(message, user_questions(history), int(k), mode, source, since, until)
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": reply.markdown}]
        located = [(s.passage.doc_id, s.passage.start, s.passage.end) for s in reply.shown]
        choices = [(f"{i}. {s.passage.title or s.passage.source}", i - 1) for i, s in enumerate(reply.shown, 1)]
        return history, "", gr.update(choices=choices, value=None), located

    def respond_example(history: list, k: float, mode: str, source: str, since: str, until: str, evt: gr.SelectData):
        return respond(_text_of(evt.value), history, k, mode, source, since, until)

    def open_passage(choice: int | None, located: list) -> str:
        if choice is None or not located or choice >= len(located):
            return ""
        doc_id, start, end = located[choice]
        return service.article(doc_id, start, end)

    def open_source(search: str, page: float, evt: gr.SelectData) -> str:
        clicked = evt.row_value[1] if evt.row_value and len(evt.row_value) > 1 else None
        if clicked:
            return service.article_by_source(str(clicked), search, int(page or 1))
        articles, _ = service.articles(search, int(page or 1))
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return service.article(articles[row].doc_id) if 0 <= row < len(articles) else ""

    def follow_index(search: str, page: float, shown: int):
        """Redraw the Sources list and the filter choices when the index has a newer commit than they show
        (another tab's upload, a `rag index` beside the app); otherwise leave the page alone."""
        newest = service.commit()
        if newest == shown:
            return gr.skip(), gr.skip(), gr.skip(), shown
        rows, caption = browse(search, page)
        return rows, caption, gr.update(choices=service.source_choices()), newest

    def browse(search: str, page: float):
        page = max(1, int(page or 1))
        return service.source_rows(search, page), service.sources_caption(search, page)

    def upload(files: list | None, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's injection idiom
        if not files:
            return gr.update(), gr.update(), gr.update(), None
        progress(0, desc="Reading the files")
        status = service.add_files(files)
        return status, service.source_rows(), gr.update(choices=service.source_choices()), None, 1, ""

    def chat_api(
        message: str, k: int = DEFAULT_K, mode: str = "hybrid", source: str = "", since: str = "", until: str = ""
    ) -> str:
        """Ask a question; returns the chat's reply as plain text: the verdict, then each passage quoted
        exactly with its source. `/ask` gives the same answer as JSON."""
        return service.answer(message, (), k, mode, source, since, until).text()

    def ask_api(
        question: str, k: int = DEFAULT_K, mode: str = "hybrid", source: str = "", since: str = "", until: str = ""
    ) -> dict:
        """Ask a question; returns the same JSON as `rag ask --json` (passage text raw, not escaped)."""
        try:
            answer = service.index.search(
                question, k=k, mode=mode, source=source or None, since=since or None, until=until or None
            )
            return answer.to_dict()
        except RagError as exc:
            raise gr.Error(str(exc)) from exc

    with gr.Blocks(title="Verbatim") as demo:
        gr.Markdown("## Verbatim\nAnswers quoted word for word from your articles, each with its source.")
        located = gr.State([])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Verbatim",
                    height=600,
                    examples=[{"text": q} for q in service.examples()],
                    placeholder="Ask about the articles. Every answer is quoted from them, with its source.",
                    latex_delimiters=[],
                    sanitize_html=True,
                    allow_tags=False,
                    feedback_options=None,
                    buttons=["copy"],
                    elem_id="verbatim-chat",
                    autoscroll=False,  # SHOW_ANSWER_START brings the question and passage 1 into view instead
                )
                message = gr.Textbox(
                    placeholder="Ask a question about the articles…",
                    show_label=False,
                    submit_btn="Ask",
                    elem_id="verbatim-question",
                    max_length=2000,
                )
                with gr.Row():
                    k = gr.Slider(1, MAX_CHAT_K, value=DEFAULT_K, step=1, label="Passages")
                    mode = gr.Radio(list(MODES), value="hybrid", label="Search")
                    source = gr.Dropdown(
                        service.source_choices(),
                        value=ALL_SOURCES,
                        label="Only in article or site",
                        allow_custom_value=True,
                        info="pick one, or type a file name, a glob such as 2025/*.html, or a site",
                    )
                with gr.Row():
                    since = gr.Textbox(label="Published from", placeholder="YYYY, YYYY-MM or YYYY-MM-DD", max_lines=1)
                    until = gr.Textbox(label="Published until", placeholder="YYYY, YYYY-MM or YYYY-MM-DD", max_lines=1)
                with gr.Accordion("Read a passage in its article", open=True):
                    passage_pick = gr.Dropdown([], value=None, label="Passage from the last answer")
                    context = gr.HTML(elem_id="verbatim-context")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                with gr.Row():
                    source_search = gr.Textbox(
                        placeholder="Find an article by title or file", show_label=False, scale=3, max_lines=1
                    )
                    source_page = gr.Number(value=1, minimum=1, precision=0, label="Page", scale=1)
                sources_caption = gr.Markdown(service.sources_caption(), elem_id="verbatim-sources-caption")
                sources = gr.Dataframe(
                    value=service.source_rows(),
                    headers=["Title", "Source", "Date", "Passages"],
                    datatype="str",
                    interactive=False,
                    latex_delimiters=[],
                    wrap=True,
                    column_widths=["46%", "30%", "14%", "10%"],
                    elem_id="verbatim-sources",
                )
                gr.Markdown("Click an article to read it. Add articles (text, Markdown, saved web pages, PDF, JSONL):")
                files = gr.File(
                    file_count="multiple",
                    file_types=sorted(SUPPORTED_SUFFIXES),
                    label="Add articles",
                    elem_id="verbatim-upload",
                )
                upload_status = gr.Markdown(elem_id="verbatim-upload-status")

        ask = [message, chatbot, k, mode, source, since, until]
        answered = [chatbot, message, passage_pick, located]
        message.submit(respond, ask, answered, api_visibility="private", show_progress="minimal").then(
            None, js=SHOW_ANSWER_START
        )
        chatbot.example_select(
            respond_example, [chatbot, k, mode, source, since, until], answered, api_visibility="private"
        ).then(None, js=SHOW_ANSWER_START)
        passage_pick.input(open_passage, [passage_pick, located], context, api_visibility="private").then(
            None, js=SCROLL_TO_PASSAGE
        )
        sources.select(open_source, [source_search, source_page], context, api_visibility="private")
        for changed in (source_search.submit, source_page.submit, source_page.change):
            changed(browse, [source_search, source_page], [sources, sources_caption], api_visibility="private")
        files.upload(
            upload,
            files,
            [upload_status, sources, source, files, source_page, source_search],
            api_visibility="private",
            concurrency_limit=1,
        )
        shown_commit = gr.State(service.commit())
        follow = dict(
            fn=follow_index,
            inputs=[source_search, source_page, shown_commit],
            outputs=[sources, sources_caption, source, shown_commit],
            api_visibility="private",
            show_progress="hidden",
        )
        gr.Timer(LISTS_REFRESH_SECONDS).tick(**follow)
        demo.load(**follow)
        gr.api(chat_api, api_name="chat")
        gr.api(ask_api, api_name="ask")
    return demo
