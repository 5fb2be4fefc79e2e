"""The chat server `python app.py` starts: `[--host H] [--port P] [--share] [--auth user:password] [--index DIR]
[--corpus DIR] [--uploads DIR] [--model M]`.

The first run on a fresh clone builds the index from the corpus folder (progress in the terminal); later runs
open the saved index and pick up files added to or removed from that folder since. Everything runs on this
machine: no model, font or page asset is fetched from the network. `--share` is the one exception users ask
for, and where the machine is offline it says so in one line and the chat keeps serving locally.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gradio as gr

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio's queue rebuilds a pandas summary of its last events after every event, for a monitoring page this
# app does not serve: 12% of the server's CPU under 50 users. Once per 10,000 events keeps it out of the way.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "10000")

from rag.api import Index, default_corpus_dir, default_index_dir, default_uploads_dir  # noqa: E402
from rag.errors import IndexWriteError, RagError  # noqa: E402
from rag.serve.chat_service import ChatService  # noqa: E402
from rag.serve.cli import say_noted, say_skipped  # noqa: E402
from rag.serve.sign_in import SignIn  # noqa: E402
from rag.serve.uploads import DEFAULT_UPLOAD_MB  # noqa: E402
from rag.text import visible  # noqa: E402

AUTH_ENV = "RAG_AUTH"
SHARE_CHECK_SECONDS = 5.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python app.py", description="Verbatim: a chat that answers with quoted passages.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the whole network)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    p.add_argument("--share", action="store_true", help="also create a public Gradio share link (needs internet)")
    p.add_argument("--auth", help=f"user:password required to use the chat (or set ${AUTH_ENV})")
    p.add_argument("--index", type=Path, default=None, help="index directory (default: index/ beside the corpus)")
    p.add_argument("--corpus", type=Path, default=None, help="article folder to index (default: the sample corpus/)")
    p.add_argument(
        "--uploads",
        type=Path,
        default=None,
        help="folder that keeps files added in the chat, indexed with the corpus (default: INDEX-uploads/ beside "
        "the index folder, or $RAG_UPLOADS)",
    )
    p.add_argument("--model", default=None, help="sentence-transformers model for a new index (default: packaged)")
    p.add_argument(
        "--read-only",
        action="store_true",
        help="serve the index as it is: no indexing of the corpus, no uploads (a replica; see `rag snapshot`)",
    )
    p.add_argument(
        "--mcp",
        action="store_true",
        help="also serve the search as an MCP tool for AI agents (streamable HTTP at /mcp on --mcp-port; with "
        "--auth, HTTP Basic with the same credentials)",
    )
    p.add_argument("--mcp-port", type=int, default=None, help="port of the MCP server (default: --port + 1)")
    p.add_argument(
        "--watch",
        action="store_true",
        help="index files added, changed or removed in the corpus folder within seconds, while the chat runs",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_UPLOAD_MB,
        help=f"largest file the page accepts, in MB (default {DEFAULT_UPLOAD_MB:g}; bigger ones: `rag index`)",
    )
    return p


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise RagError(f"--auth/${AUTH_ENV} must look like user:password, got {len(value)} characters without both")
    return user, password


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str, auth: tuple[str, str] | None) -> str | None:
    """One line for a chat that anyone on the network can use: it answers from, and takes uploads into, the
    collection."""
    if auth or host in LOOPBACK:
        return None
    return (
        f"warning: listening on {host} without --auth: anyone who can reach this machine can read the articles "
        "and add files; set --auth user:password"
    )


def reachable_url(host: str, port: int) -> str:
    """The address other machines use: for 0.0.0.0 this machine's own network address, not localhost."""
    address = host
    if host in ("0.0.0.0", "::", ""):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect(("192.0.2.1", 9))  # a documentation address: connecting a UDP socket sends nothing
                address = probe.getsockname()[0]
        except OSError:
            address = socket.gethostname()
    return f"http://{address}:{port}/"


def open_index(
    index_dir: Path, corpus_dir: Path, model: str | None, read_only: bool = False, uploads_dir: Path | None = None
) -> Index:
    """The saved index, refreshed from the corpus folder (and the chat's uploads folder) when it was built from
    them; built on first run. A read-only replica serves the index as it is, and needs one."""
    index = Index(index_dir, model=model)
    fresh = not index.exists()
    if read_only:
        if fresh:
            raise RagError(
                f"--read-only serves an existing index, and {index_dir} holds none: build one with "
                f"`rag index --index DIR`, or publish one with `rag snapshot`"
            )
        return index
    roots = index.roots()
    folders = [corpus_dir] + ([uploads_dir] if uploads_dir is not None and uploads_dir.is_dir() else [])
    folders = [f for f in folders if fresh or (str(f.resolve()) in roots and f.is_dir())]
    if folders:
        if fresh:
            print(f"Building the index from {corpus_dir} (first run; later runs start from the saved index)")
        try:
            report = index.add(folders, progress=True, on_skip=say_skipped, on_note=say_noted)
        except IndexWriteError as exc:
            if fresh:
                raise
            print(
                f"warning: serving the index as it is, without the corpus's changes: {visible(str(exc))}",
                file=sys.stderr,
            )
            return index
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


def release_idle_memory(demo: gr.Blocks, every: float = 15.0) -> None:
    """Every `every` seconds, forget the sessions no tab or client uses any more (`forget_idle_sessions`) and
    hand memory freed by finished requests back to the system. glibc keeps freed blocks in per-thread arenas,
    so a server that once answered 50 users at a time would otherwise hold that peak for good; malloc_trim
    returns what is free (skipped where glibc is not the allocator)."""
    from rag.serve.chat import forget_idle_sessions

    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        trim = None
    while True:
        time.sleep(every)
        if forget_idle_sessions(demo):
            gc.collect()  # a session's copy of the page holds reference cycles: freed only by the collector
        if trim is not None:
            trim(0)


def warm_up(index: Index) -> None:
    """The model's graph and the dense index load behind the page, so the first question waits for neither."""
    try:
        index.search("warm up", k=1)
        index.embedder.load()
    except RagError as exc:
        print(f"warning: {visible(str(exc))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.watch and args.read_only:
        print(
            "error: --watch indexes the corpus folder, and --read-only serves the index as it is: use one",
            file=sys.stderr,
        )
        return 2
    corpus_dir = args.corpus or default_corpus_dir()
    index_dir = args.index or (default_index_dir() if args.corpus is None else corpus_dir.resolve().parent / "index")
    uploads_dir = args.uploads or default_uploads_dir(index_dir)
    try:
        auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
        index = open_index(index_dir, corpus_dir, args.model, args.read_only, uploads_dir)
    except RagError as exc:
        print(f"error: {visible(str(exc))}", file=sys.stderr)
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
    from starlette.middleware import Middleware

    from rag.serve.chat import CSS, HEAD, build_app  # Gradio is imported here: `--help` and errors never pay for it
    from rag.serve.sign_in_page import KeepUserName

    max_upload = int(args.max_upload_mb * 1_000_000)
    service = ChatService(index, uploads_dir, max_upload, read_only=args.read_only)
    if args.watch:
        service.watch(corpus_dir)
        print(f"Watching {corpus_dir}: files added, changed or removed there are indexed within seconds")
    demo = build_app(service)
    demo.queue(default_concurrency_limit=8)
    warning = exposure_warning(args.host, auth)
    if warning:
        print(warning, file=sys.stderr)
    mcp_url = None
    if args.mcp:  # listening before the chat is: whoever sees the chat answer can reach the MCP port too
        from rag.serve.mcp_server import serve_mcp

        try:
            mcp_url = serve_mcp(index, args.host, args.mcp_port or args.port + 1, SignIn(*auth) if auth else None)
        except RagError as exc:
            print(f"error: {visible(str(exc))}", file=sys.stderr)
            return 2
    try:
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=share,
            auth=SignIn(*auth).check if auth else None,  # type: ignore[arg-type]  # Gradio awaits a coroutine function
            auth_message="This Verbatim chat is protected: sign in with the user and password you were given.",
            theme=gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
            css=CSS,
            head=HEAD,
            footer_links=["api"],
            ssr_mode=False,
            quiet=True,  # Gradio's own banner suggests `share=True` even when --share was asked for
            prevent_thread_lock=True,
            max_file_size=max_upload,
            show_error=True,  # a program calling the API gets Gradio's own reason too, never {"error": null}
            app_kwargs={"middleware": [Middleware(KeepUserName)]} if auth else None,
        )
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    if mcp_url:
        print(
            f"MCP tool server (search_articles): {mcp_url}" + (" (HTTP Basic, the --auth credentials)" if auth else "")
        )
    # The page answers at once; the model and the dense index load behind it, not on the first question.
    threading.Thread(target=warm_up, args=(index,), daemon=True, name="warm-up").start()
    threading.Thread(target=release_idle_memory, args=(demo,), daemon=True, name="release-memory").start()
    print(f"Verbatim chat: {demo.local_url}" + (f"  public link: {demo.share_url}" if demo.share_url else ""))
    if args.host not in LOOPBACK:
        print(f"Reachable from other machines at {reachable_url(args.host, args.port)}")
    if share and not demo.share_url:
        print("--share: Gradio could not make a public link; the chat is served locally only.", file=sys.stderr)
    if not args.read_only:
        print(f"Files added in the chat are kept in {uploads_dir}")
    print("Press Ctrl-C to stop.")
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        return 130
    return 0
