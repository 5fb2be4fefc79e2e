"""The browser chat: questions in, verbatim passages with their sources out, over one shared index.

`build_app` lays the Gradio page over a `rag.serve.chat_service.ChatService`. The conversation lives in each
browser's chat component, so users never see each other's questions. Only `app.py` imports this module: the
CLI and the Python API never pay for Gradio.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import gradio as gr

from rag.errors import RagError
from rag.ingest.files import SUPPORTED_SUFFIXES
from rag.search.request import DEFAULT_K, MODES, SearchRequest
from rag.serve.chat_service import ALL_SOURCES, CHAT_NAMES, ChatService

LISTS_REFRESH_SECONDS = 5.0  # how soon an open tab's Sources list shows another writer's articles
MAX_CHAT_K = 20
# Every search (the chat box, its examples, /chat and /ask) waits in one queue for the same workers: with a
# queue per event, one endpoint's backlog took the CPU from the other's and their tails parted (bench/load.py).
SEARCH = "search"
# Gradio keeps every session's copy of the page (about 100 KB) until 10,000 sessions exist, so memory grew with
# each new API client or tab for good (bench/load.py). An open tab asks every LISTS_REFRESH_SECONDS, so a
# session idle this long belongs to a closed tab or a finished client; if it comes back, Gradio starts it
# afresh, and the next refresh brings its lists up to date.
SESSION_IDLE_SECONDS = 120.0


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


PAGE = Path(__file__).with_name("page")
CSS = (PAGE / "chat.css").read_text(encoding="utf-8")
HEAD = f"<script>{(PAGE / 'chat.js').read_text(encoding='utf-8')}</script>"
SHOW_ANSWER_START = "() => window.verbatim?.showAnswerStart()"
SHOW_QUOTE = "() => window.verbatim?.showQuote()"
READ_TARGET_JS = "() => window.verbatim?.readTarget() ?? ''"
READ_TARGET = re.compile(r"(\d+)-(\d+)-(\d+)")
NO_ARTICLE = (
    '<p class="verbatim-meta">Click <strong>Read in its article</strong> under a passage, or an article in '
    "<em>Sources</em>, to read it here.</p>"
)


def build_app(service: ChatService) -> gr.Blocks:
    """The Gradio page over one shared service; each browser tab keeps its own conversation. The chat takes
    the window's height; beside it (over it, on a narrow screen) the article being read and the Sources."""

    def respond(message: str, history: list, k: float, mode: str, source: str, since: str, until: str):
        history = list(history or [])
        if not message or not message.strip():
            return history, ""
        reply = service.answer(message, user_questions(history), k, mode, source, since, until, CHAT_NAMES)
        history += [{"role": "user", "content": message}, {"role": "assistant", "content": reply.markdown}]
        return history, ""

    def respond_example(history: list, k: float, mode: str, source: str, since: str, until: str, evt: gr.SelectData):
        return respond(_text_of(evt.value), history, k, mode, source, since, until)

    def read_passage(target: str):
        """A "Read in its article" link: the page's script hands over its "doc-start-end"."""
        found = READ_TARGET.fullmatch(target or "")
        if not found:
            return gr.skip(), gr.skip()
        doc_id, start, end = (int(x) for x in found.groups())
        return service.article(doc_id, start, end), gr.Tabs(selected="article")

    def open_source(search: str, page: float, evt: gr.SelectData):
        clicked = evt.row_value[1] if evt.row_value and len(evt.row_value) > 1 else None
        if clicked:
            return service.article_by_source(str(clicked), search, int(page or 1)), gr.Tabs(selected="article")
        articles, _ = service.articles(search, int(page or 1))
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        shown = service.article(articles[row].doc_id) if 0 <= row < len(articles) else gr.skip()
        return shown, gr.Tabs(selected="article")

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
            return gr.update(), gr.update(), gr.update(), None, gr.update(), gr.update()
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
            return service.index.ask(SearchRequest.build(question, k, mode, source, since, until)).to_dict()
        except RagError as exc:  # the caller's value, not a fault of the server: no traceback in its log
            raise gr.Error(str(exc), print_exception=False) from exc

    with gr.Blocks(title="Verbatim") as demo:
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
                with gr.Accordion("Search options: passages, mode, article or site, dates", open=False):
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
                        since = gr.Textbox(
                            label="Published from", placeholder="YYYY, YYYY-MM or YYYY-MM-DD", max_lines=1
                        )
                        until = gr.Textbox(
                            label="Published until", placeholder="YYYY, YYYY-MM or YYYY-MM-DD", max_lines=1
                        )
            with gr.Column(scale=4, min_width=340, elem_id="verbatim-side"), gr.Tabs(selected="sources") as side:
                with gr.Tab("Article", id="article"):
                    context = gr.HTML(NO_ARTICLE, elem_id="verbatim-context")
                with gr.Tab("Sources", id="sources"):
                    with gr.Row():
                        source_search = gr.Textbox(
                            placeholder="Find an article by title or file", show_label=False, scale=3, max_lines=1
                        )
                        source_page = gr.Number(value=1, minimum=1, precision=0, label="Page", scale=1)
                    sources_caption = gr.Markdown(service.sources_caption(), elem_id="verbatim-sources-caption")
                    sources = gr.Dataframe(
                        value=service.source_rows(),
                        headers=["Title", "File", "Date", "Passages"],
                        datatype="str",
                        interactive=False,
                        latex_delimiters=[],
                        wrap=True,
                        column_widths=["44%", "22%", "15%", "19%"],
                        max_height=520,
                        elem_id="verbatim-sources",
                    )
                with gr.Tab("Add articles", id="add", visible=not service.read_only):
                    files = gr.File(
                        file_count="multiple",
                        file_types=sorted(SUPPORTED_SUFFIXES),
                        label="Text, Markdown, saved web pages, PDF, JSON or JSONL exports",
                        elem_id="verbatim-upload",
                    )
                    upload_status = gr.Markdown(elem_id="verbatim-upload-status")
        reading = gr.Textbox(visible="hidden")  # not a State: a State's value never comes from the page
        open_reading = gr.Button(visible="hidden", elem_id="verbatim-open")

        ask = [message, chatbot, k, mode, source, since, until]
        message.submit(
            respond, ask, [chatbot, message], api_visibility="private", show_progress="minimal", concurrency_id=SEARCH
        ).then(None, js=SHOW_ANSWER_START)
        chatbot.example_select(
            respond_example,
            [chatbot, k, mode, source, since, until],
            [chatbot, message],
            api_visibility="private",
            concurrency_id=SEARCH,
        ).then(None, js=SHOW_ANSWER_START)
        open_reading.click(read_passage, reading, [context, side], js=READ_TARGET_JS, api_visibility="private").then(
            None, js=SHOW_QUOTE
        )
        sources.select(open_source, [source_search, source_page], [context, side], api_visibility="private")
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
        follow: dict[str, Any] = dict(
            fn=follow_index,
            inputs=[source_search, source_page, shown_commit],
            outputs=[sources, sources_caption, source, shown_commit],
            api_visibility="private",
            show_progress="hidden",
        )
        gr.Timer(LISTS_REFRESH_SECONDS).tick(**follow)
        demo.load(**follow)
        gr.api(chat_api, api_name="chat", concurrency_id=SEARCH)
        gr.api(ask_api, api_name="ask", concurrency_id=SEARCH)
    return demo


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
