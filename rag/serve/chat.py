"""The browser chat: questions in, verbatim passages with their sources out, over one shared index.

`layout` builds the Gradio page, `wire` connects its events to `rag.serve.chat_handlers.ChatHandlers` (plain
methods over a `rag.serve.chat_service.ChatService`, tested without Gradio), and `build_app` does both. The
conversation lives in each browser's chat component, so users never see each other's questions. Only the
server (`rag.serve.server`, started by `app.py`) imports this module: the CLI and the Python API never pay for
Gradio.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import gradio as gr

from rag.errors import RagError
from rag.ingest.files import SUPPORTED_SUFFIXES
from rag.search.request import DEFAULT_K, MODES
from rag.serve.chat_handlers import ChatHandlers, text_of
from rag.serve.chat_service import ALL_SOURCES, CHAT_NAMES, ChatService

LISTS_REFRESH_SECONDS = 5.0  # how soon an open tab's Sources list shows another writer's articles
MAX_CHAT_K = 20
# Every search (the chat box, its examples, /chat and /ask) waits in one queue for the same workers: with a
# queue per event, one endpoint's backlog took the CPU from the other's and their tails parted (bench/load.py).
SEARCH = "search"
ENDPOINTS = ("chat", "ask")  # the HTTP API: `gr.api` functions whose parameters are the values a call sends
# Gradio keeps every session's copy of the page (about 100 KB) until 10,000 sessions exist, so memory grew with
# each new API client or tab for good (bench/load.py). An open tab asks every LISTS_REFRESH_SECONDS, so a
# session idle this long belongs to a closed tab or a finished client; if it comes back, Gradio starts it
# afresh, and the next refresh brings its lists up to date.
SESSION_IDLE_SECONDS = 120.0


PAGE = Path(__file__).with_name("page")
CSS = (PAGE / "chat.css").read_text(encoding="utf-8")
HEAD = f"<script>{(PAGE / 'chat.js').read_text(encoding='utf-8')}</script>"
SHOW_ANSWER_START = "() => window.verbatim?.showAnswerStart()"
SHOW_QUOTE = "() => window.verbatim?.showQuote()"
READ_TARGET_JS = "() => window.verbatim?.readTarget() ?? ''"
# The hidden "as written" button's inputs: the question the page's script took from the reply, then the rest.
AS_WRITTEN_JS = "(question, ...rest) => [window.verbatim?.asWrittenQuestion() ?? '', ...rest]"
NO_ARTICLE = (
    '<p class="verbatim-meta">Click <strong>Read in its article</strong> under a passage, or an article in '
    "<em>Sources</em>, to read it here.</p>"
)


class VerbatimBlocks(gr.Blocks):
    """The page's Blocks, whose HTTP endpoints (`/chat`, `/ask`) answer a call with the wrong number of values
    in our words rather than Gradio's handler text: values left off the end take their defaults (the question
    is the one value a call must send), and more values than the endpoint takes are refused, naming them."""

    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        fn = getattr(block_fn, "fn", None)
        if block_fn.api_name in ENDPOINTS and fn is not None:
            parameters = list(inspect.signature(fn).parameters.values())
            names = ", ".join(p.name for p in parameters)
            if not inputs or len(inputs) > len(parameters):
                raise gr.Error(
                    f"/{block_fn.api_name} takes {names}: the first, then any of the others in that order "
                    f"({len(inputs)} values were sent)",
                    print_exception=False,
                )
            inputs.extend(p.default for p in parameters[len(inputs) :])
        super().validate_inputs(block_fn, inputs)


@dataclass
class Page:
    """The page's components, as `layout` builds them."""

    demo: gr.Blocks
    chatbot: gr.Chatbot
    message: gr.Textbox
    k: gr.Slider
    mode: gr.Radio
    rerank: gr.Checkbox
    read_question: gr.Checkbox
    source: gr.Dropdown
    since: gr.Textbox
    until: gr.Textbox
    side: gr.Tabs
    context: gr.HTML
    source_search: gr.Textbox
    source_page: gr.Number
    sources_caption: gr.Markdown
    sources: gr.Dataframe
    files: gr.File
    upload_status: gr.Markdown
    reading: gr.Textbox
    open_reading: gr.Button
    ask_as_written: gr.Button
    shown_commit: gr.State  # the lists_version the tab shows
    downloads: tuple[gr.DownloadButton, ...] = ()  # the last answer as Markdown, JSON, CSL-JSON


def build_app(service: ChatService) -> gr.Blocks:
    """The Gradio page over one shared service; each browser tab keeps its own conversation."""
    handlers = ChatHandlers(service)
    page = layout(service)
    with page.demo:
        wire(page, handlers)
    return page.demo


def layout(service: ChatService) -> Page:
    """Every component of the page, in one place. The chat takes the window's height; beside it (over it, on a
    narrow screen) the article being read and the Sources."""
    with VerbatimBlocks(title="Verbatim") as demo:
        gr.Markdown(
            "**Verbatim** · answers quoted word for word from your articles, each with its source.",
            elem_id="verbatim-header",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=7, min_width=340):
                chatbot = gr.Chatbot(
                    show_label=False,
                    height="calc(100dvh - 150px)",
                    min_height=380,
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
                with gr.Row(elem_id="verbatim-downloads"):
                    downloads = tuple(
                        gr.DownloadButton(label, visible=False, size="sm", scale=0, min_width=120)
                        for label in ("Answer as Markdown", "JSON", "CSL-JSON (reference managers)")
                    )
                with gr.Accordion("Search options: passages, mode, article or site, dates", open=False):
                    with gr.Row():
                        k = gr.Slider(1, MAX_CHAT_K, value=DEFAULT_K, step=1, label=CHAT_NAMES.k)
                        mode = gr.Radio(list(MODES), value="hybrid", label=CHAT_NAMES.mode)
                    rerank = gr.Checkbox(
                        value=service.reads_by_default(),
                        label="Read the best passages closely",
                        info="the reader model rescores them and marks the answer words (hybrid and semantic)",
                    )
                    read_question = gr.Checkbox(
                        value=True,
                        label="Read dates and sources in the question",
                        info="“last week”, “in March 2025”, “latest”, “according to the Herald” set where to look",
                        elem_id="verbatim-read-dates",
                    )
                    source = gr.Dropdown(
                        service.source_choices(),
                        value=ALL_SOURCES,
                        label=CHAT_NAMES.source,
                        allow_custom_value=True,
                        info="pick one, or type a file name, a glob such as 2025/*.html, or a site",
                    )
                    with gr.Row():
                        since = gr.Textbox(
                            label=CHAT_NAMES.since, placeholder="YYYY, YYYY-MM or YYYY-MM-DD", max_lines=1
                        )
                        until = gr.Textbox(
                            label=CHAT_NAMES.until, placeholder="YYYY, YYYY-MM or YYYY-MM-DD", max_lines=1
                        )
            with gr.Column(scale=4, min_width=340, elem_id="verbatim-side"), gr.Tabs(selected="sources") as side:
                with gr.Tab("Article", id="article"):
                    context = gr.HTML(NO_ARTICLE, elem_id="verbatim-context")
                with gr.Tab("Sources", id="sources"):
                    with gr.Row():
                        source_search = gr.Textbox(
                            placeholder="Find by title or file", show_label=False, scale=3, min_width=160, max_lines=1
                        )
                        source_page = gr.Number(value=1, minimum=1, precision=0, label="Page", scale=1, min_width=80)
                    sources_caption = gr.Markdown(service.sources_caption(), elem_id="verbatim-sources-caption")
                    sources = gr.Dataframe(
                        value=service.source_rows(),
                        headers=["Title", "File", "Date", "Passages"],
                        datatype="str",
                        interactive=False,
                        latex_delimiters=[],
                        wrap=True,
                        column_widths=["40%", "21%", "15%", "24%"],
                        max_height=520,
                        elem_id="verbatim-sources",
                    )
                with gr.Tab("Add articles", id="add", visible=not service.read_only):
                    files = gr.File(
                        file_count="multiple",
                        file_types=sorted(SUPPORTED_SUFFIXES),
                        label="Text, Markdown, saved pages, PDF, JSON(L) exports, Word, mail, RSS/Atom feeds",
                        elem_id="verbatim-upload",
                    )
                    upload_status = gr.Markdown(elem_id="verbatim-upload-status")
        reading = gr.Textbox(visible="hidden")  # not a State: a State's value never comes from the page
        open_reading = gr.Button(visible="hidden", elem_id="verbatim-open")
        ask_as_written = gr.Button(visible="hidden", elem_id="verbatim-ask-as-written")
        shown_commit = gr.State(service.lists_version())
    return Page(
        demo,
        chatbot,
        message,
        k,
        mode,
        rerank,
        read_question,
        source,
        since,
        until,
        side,
        context,
        source_search,
        source_page,
        sources_caption,
        sources,
        files,
        upload_status,
        reading,
        open_reading,
        ask_as_written,
        shown_commit,
        downloads,
    )


def wire(page: Page, handlers: ChatHandlers) -> None:
    """Each event of the page to its handler, inside the page's Blocks. A handler's `None` leaves the page as
    it is (`gr.skip()`)."""
    p = page
    options = [p.k, p.mode, p.source, p.since, p.until, p.rerank, p.read_question]

    def respond(
        message: str, history: list, k: float, mode: str, source: str, since: str, until: str, rerank: bool, dates: bool
    ):
        conversation, files = handlers.turn(message, history, k, mode, source, since, until, rerank, dates)
        downloads = [gr.update(value=f, visible=True) for f in files] or [gr.skip()] * len(p.downloads)
        return conversation, "", *downloads

    def respond_example(
        history: list,
        k: float,
        mode: str,
        source: str,
        since: str,
        until: str,
        rerank: bool,
        dates: bool,
        evt: gr.SelectData,
    ):
        return respond(text_of(evt.value), history, k, mode, source, since, until, rerank, dates)

    def respond_as_written(
        question: str, history: list, k: float, mode: str, source: str, since: str, until: str, rerank: bool, _: bool
    ):
        return respond(question, history, k, mode, source, since, until, rerank, False)

    def read_passage(target: str) -> tuple[Any, Any]:
        article = handlers.read_passage(target)
        return (gr.skip(), gr.skip()) if article is None else (article, gr.Tabs(selected="article"))

    def open_source(search: str, page_number: float, evt: gr.SelectData) -> tuple[Any, Any]:
        clicked = evt.row_value[1] if evt.row_value and len(evt.row_value) > 1 else None
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        article = handlers.open_source(search, page_number, str(clicked) if clicked else None, int(row))
        return gr.skip() if article is None else article, gr.Tabs(selected="article")

    def follow_index(search: str, page_number: float, shown: str) -> tuple[Any, Any, Any, Any]:
        lists = handlers.follow_index(search, page_number, shown)
        if lists is None:
            return gr.skip(), gr.skip(), gr.skip(), shown
        return lists.rows, lists.caption, gr.update(choices=lists.choices), lists.commit

    def upload(files: list | None, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's injection idiom
        if not files:
            return gr.update(), gr.update(), gr.update(), None, gr.update(), gr.update()
        progress(0, desc="Reading the files")
        done = handlers.upload(files)
        assert done is not None
        return done.report, done.rows, gr.update(choices=done.choices), None, 1, ""

    def chat_api(
        message: str,
        k: int = DEFAULT_K,
        mode: str = "hybrid",
        source: str = "",
        since: str = "",
        until: str = "",
        rerank: bool | None = None,
    ) -> str:
        """Ask a question; returns the chat's reply as plain text: the verdict, then each passage quoted
        exactly with its source. `/ask` gives the same answer as JSON. `rerank=True` has the reader rescore the
        first passages and mark the answer words."""
        return handlers.chat_api(message, k, mode, source, since, until, rerank)

    def ask_api(
        question: str,
        k: int = DEFAULT_K,
        mode: str = "hybrid",
        source: str = "",
        since: str = "",
        until: str = "",
        rerank: bool | None = None,
    ) -> dict:
        """Ask a question; returns the same JSON as `rag ask --json` (passage text raw, not escaped)."""
        try:
            return handlers.ask_api(question, k, mode, source, since, until, rerank)
        except RagError as exc:  # the caller's value, not a fault of the server: no traceback in its log
            raise gr.Error(str(exc), print_exception=False) from exc

    p.message.submit(
        respond,
        [p.message, p.chatbot, *options],
        [p.chatbot, p.message, *p.downloads],
        api_visibility="private",
        show_progress="minimal",
        concurrency_id=SEARCH,
    ).then(None, js=SHOW_ANSWER_START)
    p.chatbot.example_select(
        respond_example,
        [p.chatbot, *options],
        [p.chatbot, p.message, *p.downloads],
        api_visibility="private",
        concurrency_id=SEARCH,
    ).then(None, js=SHOW_ANSWER_START)
    p.ask_as_written.click(
        respond_as_written,
        [p.reading, p.chatbot, *options],
        [p.chatbot, p.message, *p.downloads],
        js=AS_WRITTEN_JS,
        api_visibility="private",
        concurrency_id=SEARCH,
    ).then(None, js=SHOW_ANSWER_START)
    p.open_reading.click(
        read_passage, p.reading, [p.context, p.side], js=READ_TARGET_JS, api_visibility="private"
    ).then(None, js=SHOW_QUOTE)
    p.sources.select(open_source, [p.source_search, p.source_page], [p.context, p.side], api_visibility="private")
    gr.on(  # filters as the reader types; the newest text wins when typing outruns the search
        [p.source_search.input, p.source_search.submit],
        handlers.find_sources,
        p.source_search,
        [p.sources, p.sources_caption, p.source_page],
        trigger_mode="always_last",
        show_progress="hidden",
        api_visibility="private",
    )
    for changed in (p.source_page.submit, p.source_page.change):
        changed(
            handlers.browse, [p.source_search, p.source_page], [p.sources, p.sources_caption], api_visibility="private"
        )
    p.files.upload(
        upload,
        p.files,
        [p.upload_status, p.sources, p.source, p.files, p.source_page, p.source_search],
        api_visibility="private",
        concurrency_limit=1,
    )
    follow: dict[str, Any] = dict(
        fn=follow_index,
        inputs=[p.source_search, p.source_page, p.shown_commit],
        outputs=[p.sources, p.sources_caption, p.source, p.shown_commit],
        api_visibility="private",
        show_progress="hidden",
    )
    gr.Timer(LISTS_REFRESH_SECONDS).tick(**follow)
    p.demo.load(**follow)
    gr.api(chat_api, api_name="chat", concurrency_id=SEARCH)
    gr.api(ask_api, api_name="ask", concurrency_id=SEARCH)


def forget_idle_sessions(demo: gr.Blocks, idle_seconds: float = SESSION_IDLE_SECONDS) -> int:
    """Drop the sessions of `demo` unused for `idle_seconds` or closed by their tab; returns how many."""
    holder = getattr(demo, "state_holder", None)
    if holder is None:  # not launched
        return 0
    cutoff = datetime.now() - timedelta(seconds=idle_seconds)
    with holder.lock:
        sessions = dict(holder.session_data)
        last_used = dict(holder.time_last_used)
        idle = [sid for sid, state in sessions.items() if state.is_closed or last_used.get(sid, datetime.min) <= cutoff]
        for sid in idle:
            holder.session_data.pop(sid, None)
            holder.time_last_used.pop(sid, None)
    return len(idle)
