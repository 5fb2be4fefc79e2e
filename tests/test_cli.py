import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag import Index, PathNotFoundError
from rag.serve.cli import build_parser

KEYS = [
    *("text", "score", "doc_id", "title", "source", "site", "url", "start", "end", "article_length"),
    *("published", "crawled", "author", "page"),
    *("copies", "answer", "language", "across_languages", "names_across"),
]


def rag(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


@pytest.mark.slow
def test_index_ask_info_round_trip(tmp_path: Path, corpus_copy: Path):
    idx = str(tmp_path / "idx")
    built = rag("index", str(corpus_copy), "--index", idx, "--quiet", "--model", "hashing")  # the CLI, not the model
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith("7 added, 0 updated, 0 removed, 0 unchanged, 0 skipped;")

    asked = rag("ask", "Who was Kim Kyoung-soo's political mentor?", "--index", idx, "--json", "--k", "3")
    assert asked.returncode == 0, asked.stderr
    payload = json.loads(asked.stdout)
    assert list(payload) == ["query", "found", "passages"]
    assert payload["found"] is True and len(payload["passages"]) == 3
    assert all(list(p) == KEYS for p in payload["passages"])
    assert any("Roh Moo-hyun" in p["text"] for p in payload["passages"])
    for p in payload["passages"]:
        assert p["text"] in (corpus_copy / p["source"].split("#")[0]).read_text()
    assert all(p["answer"] is None for p in payload["passages"])  # the reader is not the default

    read = rag("ask", "Who was Kim Kyoung-soo's political mentor?", "--index", idx, "--json", "--rerank")
    assert read.returncode == 0, read.stderr
    first = json.loads(read.stdout)["passages"][0]
    marked = first["answer"]  # the reader's answer words, an exact slice of the passage
    assert marked is not None and first["start"] <= marked["start"] < marked["end"] <= first["end"]
    assert first["text"][marked["start"] - first["start"] : marked["end"] - first["start"]] == marked["text"]

    info = rag("info", "--index", idx)
    assert info.returncode == 0 and "documents: 7" in info.stdout


def test_errors_are_one_line_and_exit_non_zero(tmp_path: Path):
    missing = rag("ask", "anything", "--index", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: no index in")
    assert len(missing.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_missing_path_or_an_unknown_source_is_an_error_not_an_empty_answer(tmp_path: Path, corpus_copy: Path):
    nowhere = rag("index", str(tmp_path / "no" / "such"), "--index", str(tmp_path / "idx"), "--model", "hashing")
    assert nowhere.returncode == 2 and not (tmp_path / "idx").exists(), "nothing is created for a wrong path"
    assert nowhere.stderr.startswith("error: no such file or folder:") and "no/such" in nowhere.stderr
    idx = str(tmp_path / "idx")
    assert rag("index", str(corpus_copy), "--index", idx, "--quiet", "--model", "hashing").returncode == 0
    unknown = rag("ask", "Who is Lee?", "--index", idx, "--source", "nosuch.txt")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "no article, site or web address called “nosuch.txt”" in unknown.stderr
    future = rag("ask", "Who is Lee?", "--index", idx, "--since", "2999")
    assert future.returncode == 0
    assert future.stdout.startswith("Nothing to search: 0 of 7 articles are dated on or after 1 January 2999")
    with pytest.raises(PathNotFoundError, match="articles"):
        Index(tmp_path / "api-idx").add([tmp_path / "articles"])
    assert not (tmp_path / "api-idx").exists()


def test_empty_question_is_refused(seed_index):
    empty = rag("ask", "  ", "--index", str(seed_index.path))
    assert empty.returncode == 2 and "the question is empty" in empty.stderr


@pytest.mark.parametrize("command", ["index", "ask", "info"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "--index" in capsys.readouterr().out


def test_rag_chat_follows_up_like_the_browser_and_leaves_on_end_of_input(seed_index):
    first = "Who was Kim Kyoung-soo's political mentor?"
    run = subprocess.run(
        [sys.executable, "-m", "rag", "chat", "--index", str(seed_index.path), "--k", "2"],
        input=f"{first}\n\n   \nand what about Sejong?\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    greeting, *turns = run.stdout.split("ask> ")
    assert greeting.startswith("Verbatim: ask about 7 articles") and len(turns) == 5  # 4 lines, then the end
    turns = [t for t in turns if t.strip()]  # blank lines ask nothing
    assert len(turns) == 2
    expected = seed_index.search(first, k=2)
    assert turns[0].startswith("2 passages from 1 article, best first, quoted exactly:")
    assert f"> {expected.passages[0].text.splitlines()[0]}" in turns[0]
    assert f"— {expected.passages[0].title}" in turns[1] and expected.passages[0].source in turns[0]
    assert turns[1].startswith(f"Searched for: {first} and what about Sejong?")
    assert "\033[" not in run.stdout  # not a terminal: no bold codes in the text


def test_names_and_articles_never_act_on_the_terminal_and_each_encoding_is_named(tmp_path: Path, capsys):
    """A file name holding a line break, ESC sequences or a right-to-left override is printed escaped, on its
    own line; a file that is not UTF-8 is read as what it is and the run says so; one stray byte in a UTF-8
    article is replaced and counted, and the rest of it is searchable as written."""
    from rag.serve.cli import main

    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "evil\nskipped good_0.txt: all fine, indexed.txt").write_bytes(b"")
    (folder / "\x1b]0;owned\x07\x1b[2J.txt").write_text("Harbour pilots\n\nHarbour pilots stopped work in Busan.\n")
    (folder / "photo\u202egnp.txt").write_text("Port strike\n\nThe port strike ended on Friday.\n")
    (folder / "busan.txt").write_bytes("부산항 물동량\n\n부산항 물동량이 늘었다고 항만공사가 밝혔다.\n".encode("cp949"))
    article = "Café society\n\nThe café in Zürich opened a branch in 서울 last week, its owner said.\n".encode()
    (folder / "cafe.txt").write_bytes(article[:5] + b"\xff" + article[5:])
    index = str(tmp_path / "idx")

    assert main(["index", str(folder), "--index", index, "--model", "hashing", "--quiet"]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert sorted(lines) == [
        "note: busan.txt: not UTF-8: read as cp949",
        "note: cafe.txt: 1 byte not UTF-8 replaced by U+FFFD (at byte 5)",
        "skipped evil\\nskipped good_0.txt: all fine, indexed.txt: empty file",
    ]
    assert "4 added" in out
    assert main(["info", "--index", index]) == 0
    listed = capsys.readouterr().out
    assert "\x1b" not in listed and "\u202e" not in listed
    assert "  \\x1b]0;owned\\x07\\x1b[2J.txt: Harbour pilots (1 chunks)" in listed.splitlines()
    assert "  photo\\u202egnp.txt: Port strike (1 chunks)" in listed.splitlines()
    assert main(["ask", "Zürich", "--index", index, "--mode", "keyword", "--k", "1"]) == 0
    assert "cafe.txt" in capsys.readouterr().out


@pytest.mark.slow
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path):
    """`rag info --limit 0 | head -1`: the pipe closes while rag still writes; it stops without a word."""
    records = tmp_path / "wire.jsonl"
    rows = [{"title": f"Harbour report {n} " + "x" * 80, "text": f"Report {n} on the strike."} for n in range(1500)]
    records.write_text("".join(json.dumps(row) + "\n" for row in rows))
    index = tmp_path / "idx"
    assert rag("index", str(records), "--index", str(index), "--model", "hashing", "--quiet").returncode == 0
    reader = subprocess.Popen(
        [sys.executable, "-m", "rag", "info", "--index", str(index), "--limit", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stdout.readline().startswith(b"index:")
    reader.stdout.close()
    _, err = reader.communicate(timeout=60)
    assert reader.returncode == 141 and b"Traceback" not in err and not err.strip(), err
