"""The `rag` command: a thin shell over rag.api, with one clear line per error and non-zero exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from rag.api import Index, default_folders, default_index, default_index_dir, default_uploads_dir
from rag.citations import export
from rag.errors import PathNotFoundError, RagError
from rag.ingest.exports import RecordFields
from rag.models.embed import DEVICES
from rag.models.onnx_encoder import PRECISIONS
from rag.records import Answer, IndexReport
from rag.search.request import CLI_NAMES, DEFAULT_K, MAX_K, MODES, SearchRequest
from rag.text import visible

# Said in words rather than as this machine's paths, so the help reads the same everywhere (docs/cli.md).
CORPUS_DEFAULT = "$RAG_CORPUS, else the corpus/ folder of this checkout, and the chat's uploads folder if any"
INDEX_DEFAULT = "$RAG_INDEX, else index/ beside the corpus folder"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="Verbatim: ask questions of your articles, get exact passages with sources."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "index",
        aliases=["watch"],
        help="index (or update the index of) folders and files of articles; `rag watch` keeps doing it",
        description="Index new and changed files; unchanged ones are skipped, deleted ones removed. `rag watch` "
        "(or --watch) then keeps watching the folders and indexes what is added, changed or removed within "
        "seconds, a line per batch, until Ctrl-C.",
    )
    p.add_argument(
        "--watch",
        action="store_true",
        help="after indexing, keep watching the folders and index each change (the same as `rag watch`)",
    )
    p.add_argument(
        "paths",
        nargs="*",
        help="files or folders: .txt .md .html .pdf .jsonl .json .docx .eml .mbox .rss .atom .xml .warc .warc.gz; "
        f"or the web address of a feed, fetched and kept in the uploads folder (default: {CORPUS_DEFAULT})",
    )
    _common(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="read, chunk and embed on a Ray cluster: 'auto', a head's address, or nothing for a local instance "
        '(pip install -e ".[cluster]")',
    )
    p.add_argument("--ray-workers", type=int, metavar="N", help="embedding actors (default: one per cluster CPU)")
    p.add_argument(
        "--multilingual",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the multilingual vectors that match a question to passages in another language (on by "
        "default; --no-multilingual drops them: 1 KB less a passage, a faster build)",
    )
    add_precision(p)
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where passages are embedded: a GPU when one is usable (auto, the default), or cpu, or cuda",
    )
    p.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="ROLE=KEY",
        help="JSON/JSONL key for a role (text, title, url, date, author, site), e.g. --field text=body_html",
    )
    p.add_argument(
        "--fetch-links",
        action="store_true",
        help="for a saved RSS/Atom feed, fetch the page each item links and index its article text instead of the "
        "item's summary (pages that cannot be fetched are named); a saved sitemap's pages are read only with it",
    )
    p.add_argument(
        "--word-properties",
        action="store_true",
        help="take a Word file's title, author and creation date from its document properties (off by default: "
        "they are often the template's)",
    )

    p = sub.add_parser(
        "ask",
        help="ask a question, print the best passages",
        description="Search the index and print the most relevant passages verbatim.",
    )
    p.add_argument("question")
    _filters(p)
    p.add_argument("--json", action="store_true", help="print the answer as JSON (the same as --format json)")
    p.add_argument(
        "--format",
        choices=("text", "json", "markdown", "csl-json"),
        default="text",
        help="text (default); json; markdown: each passage as a quote with its source, to paste or keep; "
        "csl-json: the quoted articles for a reference manager (Zotero, pandoc)",
    )
    _common(p)

    p = sub.add_parser(
        "chat",
        help="a conversation in the terminal: ask, read, ask a follow-up (Ctrl-D to leave)",
        description='Ask questions one after another; a follow-up ("and what about Japan?") is searched with '
        "the question it follows, as in the browser chat. Ctrl-D leaves.",
    )
    _filters(p)
    _common(p)

    p = sub.add_parser(
        "eval",
        help="measure retrieval on a SQuAD-format file or a BEIR folder",
        description="Index the benchmark's corpus (cached by content), run every query per search mode, print "
        "Recall@1/5/20, MRR@10, nDCG@10, latency, and how often `found` is wrong.",
    )
    p.add_argument("benchmark", help="SQuAD-format .json file (SQuAD, KorQuAD) or BEIR folder (corpus.jsonl ...)")
    p.add_argument("--limit", type=int, help="only the first N queries (the corpus stays whole)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated search modes (default {','.join(MODES)})")
    p.add_argument(
        "--unanswerable",
        type=int,
        default=1000,
        metavar="N",
        help="queries asked again without their document, to measure wrong answers (default 1000; 0: skip)",
    )
    p.add_argument(
        "--cache", help="where benchmark indexes are kept (default ~/.cache/verbatim/eval or $RAG_EVAL_CACHE)"
    )
    p.add_argument("--model", help="sentence-transformers model name or path (default: the packaged one)")
    add_precision(p)
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--rerank",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure with (--rerank) or without (--no-rerank) the reader (default: as calibrated)",
    )

    p = sub.add_parser(
        "snapshot",
        help="publish a copy of the index for replicas: DEST/<commit>-<time>, and DEST/current pointing at it",
        description="Copy the index as of its newest commit into a new folder under DEST and point DEST/current "
        "at it in one rename. Replicas started with `python app.py --index DEST/current --read-only` follow.",
    )
    p.add_argument("dest", help="the folder that holds the snapshots")
    p.add_argument("--index", help=f"index directory (default: {INDEX_DEFAULT})")
    p.add_argument("--keep", type=int, default=2, help="snapshots kept, the new one included (default 2)")

    p = sub.add_parser("info", help="show what the index holds")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="list the first N documents (0: all)")
    _common(p)
    return parser


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k", type=int, default=DEFAULT_K, help=f"number of passages, 1-{MAX_K} (default {DEFAULT_K})")
    p.add_argument("--mode", choices=MODES, default="hybrid", help="search mode (default hybrid)")
    p.add_argument(
        "--source", help="only this source file (a glob such as '2025/*.html' works) or site ('koreaherald.com')"
    )
    p.add_argument("--since", help="only articles published on or after this date (YYYY, YYYY-MM or YYYY-MM-DD)")
    p.add_argument("--until", help="only articles published on or before this date (YYYY, YYYY-MM or YYYY-MM-DD)")
    p.add_argument(
        "--rerank",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the reader rescores the best passages and marks the answer words (--rerank), or is left out "
        "(--no-rerank); default: as calibrated (see docs/evaluation.md)",
    )
    p.add_argument(
        "--as-written",
        action="store_true",
        help="search the question's words as written: dates ('last week', 'in March 2025'), 'latest' and a "
        "publication named as the source ('according to Reuters') are not read as filters",
    )


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", help=f"index directory (default: {INDEX_DEFAULT})")
    p.add_argument(
        "--model",
        help="sentence-transformers model name or path (default: the index's own, "
        "or the packaged all-MiniLM-L6-v2 for a new index)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "index": cmd_index,
        "watch": cmd_index,
        "ask": cmd_ask,
        "chat": cmd_chat,
        "eval": cmd_eval,
        "info": cmd_info,
        "snapshot": cmd_snapshot,
    }
    try:
        return commands[args.command](args)
    except RagError as exc:
        print(f"error: {visible(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the index was left as it was before this run", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`rag info | head -1`): what it read was all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141


def add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="compute passage vectors in float32 (fp32, the default) or with the model's 8-bit graph (int8: about "
        "twice as fast on a CPU, retrieval a little worse on some sets); an index keeps its own unless this asks "
        "otherwise, and its passages are embedded again when it changes",
    )


def cmd_index(args: argparse.Namespace) -> int:
    fields = RecordFields(word_properties=args.word_properties, fetch_links=args.fetch_links)
    for spec in args.field:
        fields = fields.with_override(spec)
    index = Index(
        args.index, model=args.model, multilingual=args.multilingual, precision=args.precision, device=args.device
    )
    paths = [p for p in args.paths if not is_web_address(p)] or ([] if args.paths else default_folders(index.path))
    feeds = [p for p in args.paths if is_web_address(p)]
    if feeds:  # kept in the uploads folder, which the chat indexes too, and indexed from there
        from rag.ingest.feeds import save_feed

        uploads = default_uploads_dir(index.path)
        for url in feeds:
            saved = save_feed(url, uploads / "feeds")
            print(f"fetched {visible(url)} into {visible(str(saved))}", file=sys.stderr)
        paths.append(uploads)
    cluster = None
    if args.ray:
        from rag.build.cluster import RayCluster

        cluster = RayCluster(None if args.ray == "local" else args.ray, args.ray_workers)
    report = index.add(
        paths,
        progress=not args.quiet,
        on_skip=say_skipped,
        on_note=say_noted,
        fields=fields,
        cluster=cluster,
    )
    if report.reembedded:
        print(
            f"embedded again: {report.reembedded} stored passages, now in {report.precision} "
            "(questions are encoded in the same precision)",
            file=sys.stderr,
        )
    print(summary_line(report, index))
    if args.watch or args.command == "watch":
        return watch(index, paths, fields)
    return 0


def watch(index: Index, paths: Sequence[str | Path], fields: RecordFields) -> int:
    """`rag watch`: a line per batch of changes under the folders, until Ctrl-C."""
    from rag.build.watch import batch_line, watch_folders

    folders = [Path(p).expanduser() for p in paths if Path(p).expanduser().is_dir()]
    if not folders:
        raise PathNotFoundError("rag watch needs a folder to watch, not only files: name the folder the files are in")
    print(f"watching {', '.join(visible(str(f)) for f in folders)} (Ctrl-C to stop)", flush=True)

    def said(report: IndexReport) -> None:
        for name, why in report.skipped:
            say_skipped(name, why)
        print(f"{time.strftime('%H:%M:%S')} {visible(batch_line(report))} ({report.seconds:.1f}s)", flush=True)

    def failed(reason: str) -> None:
        print(f"error: {visible(reason)} (watching goes on)", file=sys.stderr, flush=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends; a write it cut short changed nothing
        watch_folders(lambda: index.add(folders, fields=fields), folders, said, failed)
    print("stopped watching", file=sys.stderr)
    return 0


def is_web_address(path: str | Path) -> bool:
    return str(path).startswith(("http://", "https://"))


def say_skipped(name: str, why: str) -> None:
    """One line on stderr for a file or record that could not be read; nothing in a name reaches the terminal
    as a control character."""
    print(f"skipped {visible(name)}: {visible(why)}", file=sys.stderr)


def say_noted(name: str, note: str) -> None:
    """One line on stderr for a file read as a legacy encoding, or with bytes that were not UTF-8."""
    print(f"note: {visible(name)}: {visible(note)}", file=sys.stderr)


def summary_line(report: IndexReport, index: Index) -> str:
    return (
        f"{report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.unchanged} unchanged, {len(report.skipped)} skipped; "
        f"{report.chunks} chunks ({report.embedded} embedded) in {report.seconds:.1f}s -> {visible(str(index.path))}"
    )


def _open(args: argparse.Namespace) -> Index:
    if args.index is None and args.model is None:
        return default_index(progress=True)
    index = Index(args.index, model=args.model)
    index.searcher  # noqa: B018 - opens now, so a missing index is reported before any work
    return index


def cmd_ask(args: argparse.Namespace) -> int:
    request = SearchRequest.build(
        args.question,
        args.k,
        args.mode,
        args.source,
        args.since,
        args.until,
        names=CLI_NAMES,
        rerank=args.rerank,
        read_question=not args.as_written,
    )
    answer = _open(args).ask(request)
    kind = "json" if args.json else args.format
    if kind == "text":
        print(format_answer(answer))
    else:
        sys.stdout.write(export(answer, kind))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """A question loop over the same `ChatService` as the browser: the same follow-up logic, verdict and
    attribution, as plain text. The marked sentence is bold on a terminal."""
    from rag.serve.chat_service import ChatService

    with contextlib.suppress(ImportError):  # line editing and history for input(), where the platform has it
        import readline  # noqa: F401
    index = _open(args)
    service = ChatService(index, default_uploads_dir(index.path))
    _, articles = service.articles(limit=1)
    marked = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
    print(
        f"Verbatim: ask about {articles:,} articles in {visible(str(index.path))}. Answers are quoted exactly. "
        "Ctrl-D to leave."
    )
    earlier: list[str] = []
    while True:
        try:
            question = input("\nask> ")
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:  # Ctrl-C drops the line being typed, as a shell does
            print()
            continue
        if not question.strip():
            continue
        reply = service.answer(
            question,
            earlier,
            args.k,
            args.mode,
            args.source,
            args.since,
            args.until,
            CLI_NAMES,
            args.rerank,
            read_question=not args.as_written,
        )
        print(reply.text(marked, terminal=True), flush=True)
        earlier.append(question)


def format_answer(answer: Answer, width: int = 100) -> str:
    note = [answer.note] if answer.note else []
    if answer.understood:
        note.insert(0, f"{visible(answer.understood)} (--as-written reads none of it).")
    if not answer.passages and answer.emptied:
        fix = (
            "Ask about other dates, or add --as-written"
            if answer.understood
            else "Widen --since/--until or leave them out"
        )
        return "\n".join([*note, f"Nothing to search: {answer.emptied}. {fix}."])
    if not answer.passages:
        return "\n".join(["Nothing in the index matches this question.", *note])
    head = (
        "Best passages:"
        if answer.found
        else "The articles do not seem to answer this. Closest passages, for what they are worth:"
    )
    lines = [head, ""] + ([*note, ""] if note else [])
    for rank, p in enumerate(answer.passages, start=1):
        page = f"page {p.page}" if p.page else None
        where = " | ".join(x for x in (p.source, p.url, p.published, p.author, page) if x)
        lines.append(f"[{rank}] {visible(p.title)}")
        lines.append(f"    {visible(where)} | chars {p.start}-{p.end} | relevance {p.score:.2f}")
        if p.copies:
            lines.append("    also in: " + visible(", ".join(c.source for c in p.copies)))
        for para in visible(p.text, newlines=True).splitlines():
            lines.extend(textwrap.wrap(para, width, initial_indent="    > ", subsequent_indent="    > ") or ["    >"])
        lines.append("")
    return "\n".join(lines).rstrip()


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.evaluate import evaluate, format_table, load_benchmark

    bench = load_benchmark(Path(args.benchmark)).limited(args.limit)
    result = evaluate(
        bench,
        model=args.model,
        modes=[m.strip() for m in args.modes.split(",") if m.strip()],
        cache=Path(args.cache) if args.cache else None,
        unanswerable=args.unanswerable,
        progress=not args.quiet,
        rerank=args.rerank,
        precision=args.precision,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_table(result))
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from rag.index import CURRENT, publish

    dest = Path(args.dest)
    snapshot = publish(Path(args.index) if args.index else default_index_dir(), dest, args.keep)
    print(f"published {snapshot}; {dest / CURRENT} -> {snapshot.name}")
    return 0


def _precision_line(precision: str | None) -> str:
    return {"int8": "int8 vectors", "fp32": "float32 vectors", None: "float32 vectors"}.get(precision, str(precision))


def cmd_info(args: argparse.Namespace) -> int:
    info = _open(args).info(limit=args.limit or None)
    if args.json:
        print(json.dumps(info.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(f"index:     {visible(info.path)}")
    print(f"model:     {info.model} ({info.dimension} dimensions, {_precision_line(info.manifest.precision)})")
    print(f"documents: {info.document_count}, chunks: {info.chunks}, updated {info.updated}")
    manifest = info.manifest
    if manifest.multilingual:
        print(f"across languages: on ({manifest.wide_passages} passages in Korean, Chinese or Japanese)")
    else:
        print("across languages: off (rag index --multilingual turns it on)")
    for d in info.documents:
        extra = ", ".join(x for x in (d.published, d.author, d.copy_of and f"copy of {d.copy_of}") if x)
        line = f"  {d.source}: {d.title} ({d.chunks} chunks{', ' + extra if extra else ''})"
        print(visible(line))
    if info.document_count > len(info.documents):
        print(f"  ... and {info.document_count - len(info.documents):,} more (--limit 0 lists all)")
    for (count, first), what in (
        (info.undated, "no publication date"),
        (info.unsourced, "no publication name or web address"),
    ):
        if count:
            named = ", ".join(first) + (f", ... and {count - len(first):,} more" if count > len(first) else "")
            print(visible(f"{count:,} of {info.document_count:,} articles have {what}: {named}"))
    if info.undated[0] or info.unsourced[0]:
        print(
            "  (citations say so. To fix a text file, put a line such as 'Posted March 4, 2025' or 'Source: "
            "https://...' under its title; for JSON exports name the fields: rag index --field date=pubDate)"
        )
    return 0
