"""Start the Verbatim chat: `python app.py [--host H] [--port P] [--share] [--auth user:password]
[--index DIR] [--corpus DIR] [--model M]`.

The first run on a fresh clone builds the index from the corpus folder (progress in the terminal); later runs
open the saved index and pick up files added to or removed from that folder since. Everything runs on this
machine: no model, font or page asset is fetched from the network. `--share` is the one exception users ask
for, and where the machine is offline it says so in one line and the chat keeps serving locally.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from rag.api import Index, default_corpus_dir, default_index_dir  # noqa: E402
from rag.chat import CSS, ChatService, build_app  # noqa: E402
from rag.errors import RagError  # noqa: E402

AUTH_ENV = "RAG_AUTH"
SHARE_CHECK_SECONDS = 5.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python app.py", description="Verbatim: a chat that answers with quoted passages.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the whole network)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    p.add_argument("--share", action="store_true", help="also create a public Gradio share link (needs internet)")
    p.add_argument("--auth", help=f"user:password required to use the chat (or set ${AUTH_ENV})")
    p.add_argument("--index", type=Path, default=None, help="index directory (default: index/ beside the corpus)")
    p.add_argument("--corpus", type=Path, default=None, help="article folder to index and to save uploads in")
    p.add_argument("--model", default=None, help="sentence-transformers model for a new index (default: packaged)")
    return p


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise RagError(f"--auth/${AUTH_ENV} must look like user:password, got {len(value)} characters without both")
    return user, password


def open_index(index_dir: Path, corpus_dir: Path, model: str | None) -> Index:
    """The saved index, refreshed from the corpus folder when it was built from it; built on first run."""
    index = Index(index_dir, model=model)
    fresh = not index.exists()
    if fresh or str(corpus_dir.resolve()) in index.roots():
        if fresh:
            print(f"Building the index from {corpus_dir} (first run; later runs start from the saved index)")
        report = index.add(
            [corpus_dir], progress=True, on_skip=lambda name, why: print(f"skipped {name}: {why}", file=sys.stderr)
        )
        if fresh or report.added or report.updated or report.removed:
            print(f"{report.added} added, {report.updated} updated, {report.removed} removed -> {index.path}")
    return index


def share_unreachable() -> str | None:
    """Why a share link cannot be made from here, or None when Gradio's share server answers."""
    import httpx
    from gradio.networking import GRADIO_API_SERVER

    try:
        httpx.get(GRADIO_API_SERVER, timeout=SHARE_CHECK_SECONDS).raise_for_status()
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def warm_up(index: Index) -> None:
    try:
        index.search("warm up", k=1)
    except RagError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    corpus_dir = args.corpus or default_corpus_dir()
    index_dir = args.index or (default_index_dir() if args.corpus is None else corpus_dir.resolve().parent / "index")
    try:
        auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
        index = open_index(index_dir, corpus_dir, args.model)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    share = args.share
    if share:
        reason = share_unreachable()
        if reason:
            print(
                f"--share: no public link, Gradio's share server cannot be reached from this machine ({reason}); "
                f"the chat is served locally only.",
                file=sys.stderr,
            )
            share = False
    import gradio as gr

    demo = build_app(ChatService(index, corpus_dir))
    demo.queue(default_concurrency_limit=8)
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=share,
            auth=auth,
            auth_message="This Verbatim chat is protected: sign in with the user and password you were given.",
            theme=gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
            css=CSS,
            footer_links=["api"],
            ssr_mode=False,
            quiet=True,  # Gradio's own banner suggests `share=True` even when --share was asked for
            prevent_thread_lock=True,
        )
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    # The page answers at once; the model and the dense index load behind it, not on the first question.
    threading.Thread(target=warm_up, args=(index,), daemon=True, name="warm-up").start()
    print(f"Verbatim chat: {demo.local_url}" + (f"  public link: {demo.share_url}" if demo.share_url else ""))
    if share and not demo.share_url:
        print("--share: Gradio could not make a public link; the chat is served locally only.", file=sys.stderr)
    print("Press Ctrl-C to stop.")
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
