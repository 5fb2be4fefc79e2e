"""The README and docs/ stay true: every command they show parses, the examples marked `docs-test: run` and
every `>>>` example are run and give what the page shows, the command reference is the commands' own
`--help`, the index format is the code's schema, and the README stays the front door."""

from __future__ import annotations

import doctest
import io
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT

from rag.serve import cli, cli_reference, server

PAGES = [ROOT / "README.md", ROOT / "index" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(<!-- docs-test: run -->\n)?^( *)```(\w*)\n(.*?)^\2```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    page: Path
    language: str
    text: str
    run: bool
    line: int


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(page, m.group(3), m.group(4), bool(m.group(1)), text.count("\n", 0, m.start(3)) + 1)
        for m in FENCE.finditer(text)
    ]


ALL = [b for page in PAGES for b in blocks(page)]


def test_the_readme_is_the_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 10 * 1024
    for page in ("chat", "cli", "formats", "python-api", "architecture", "evaluation", "scale-out"):
        assert f"(docs/{page}.md)" in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_between_pages_leads_somewhere(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([\w./-]+?)(?:#[\w-]*)?\)", text):
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which is not there"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_example_shows_a_machine_path(page):
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"/work/|/home/\w|/Users/\w|/root/", text), "an author's own path"


def test_the_command_reference_is_the_commands_own_help():
    text = cli_reference.DOC.read_text(encoding="utf-8")
    assert cli_reference.rewritten(text) == text, "run `python -m rag.serve.cli_reference` to regenerate it"


def test_the_index_format_in_the_docs_is_the_code_schema():
    from rag.index.lexical import FOLDER
    from rag.index.schema import SCHEMA

    assert f"`{FOLDER}/`" in (ROOT / "index" / "README.md").read_text(encoding="utf-8")

    sql = [b.text for b in blocks(ROOT / "docs" / "architecture.md") if b.language == "sql"]
    assert sql == [SCHEMA.strip() + "\n"]


def test_every_stage_package_is_in_the_architecture_table():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.name for p in (ROOT / "rag").glob("*/__init__.py"))
    assert packages and all(f"`rag/{name}`" in text for name in packages)
    for module in (ROOT / "rag").rglob("*.py"):
        if module.name not in ("__init__.py", "__main__.py"):
            assert f"`{module.name}`" in text, f"{module.relative_to(ROOT)} is not in the table"


# --- commands ---------------------------------------------------------------------------------------------
def commands(block: Block) -> list[str]:
    """The command lines of a shell block: `$ `-prompted lines in a console block, every line of a bash block;
    each split at `&&` and `|` into the commands it runs."""
    text = block.text.replace("\\\n", " ")  # a line continued with a backslash is one command
    if block.language == "console":
        lines = [line[2:] for line in text.splitlines() if line.startswith("$ ")]
    elif block.language == "bash":
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    else:
        return []
    return [part.strip() for line in lines for chain in line.split("&&") for part in chain.split(" | ")]


def words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


SHELL = [(b, c) for b in ALL for c in commands(b)]


@pytest.mark.parametrize(("block", "command"), SHELL, ids=[f"{b.page.name}:{b.line}:{c[:30]}" for b, c in SHELL])
def test_every_command_shown_parses(block, command):
    """`rag ...` and `python app.py ...` as their parsers read them; a bench script exists; other programs
    (pip, curl, apt-get, cut) are not ours to check."""
    if "$(" in command:  # a shell's command substitution: curl and cut, not ours
        return
    argv = words(command)
    if not argv:
        return
    if argv[0] == "rag":
        cli.build_parser().parse_args(argv[1:])
    elif argv[:2] == ["python", "app.py"]:
        server.build_parser().parse_args(argv[2:])
    elif argv[0] == "python" and argv[1].startswith("bench/"):
        assert (ROOT / argv[1]).is_file(), f"{argv[1]} does not exist"
    elif argv[:2] == ["python", "-m"] and argv[2].startswith("rag"):
        assert argv[2] in sys.modules or __import__(argv[2])


def normalised(text: str) -> str:
    """Output less what changes from run to run: timings and the time of the last commit."""
    text = re.sub(r" in \d+\.\ds -> ", " in _s -> ", text)
    text = re.sub(r"updated \d{4}-\d\d-\d\dT[\d:]+[+-]\d{4}", "updated _", text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def shown_runs(block: Block) -> list[tuple[str, str]]:
    """(command, output shown) of each `$ ` line of a run block."""
    runs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], []))
        elif runs:
            runs[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in runs]


def run_command(command: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> str:
    """`rag ...` through its entry point in this process; a `printf ... |` before it is its input, a `| cut
    -c1-N` after it cuts each line at N bytes, as the shell would."""
    parts = command.split(" | ")
    stdin, cut = "", None
    if parts[0].startswith("printf "):
        stdin = words(parts.pop(0))[1].encode().decode("unicode_escape")
    if parts[-1].startswith("cut -c1-"):
        cut = int(parts.pop().removeprefix("cut -c1-"))
    (argv,) = [words(p) for p in parts]
    assert argv[0] == "rag"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    cli.main(argv[1:])
    out = capsys.readouterr().out
    if cut is not None:
        out = "\n".join(line.encode()[:cut].decode("utf-8", "ignore") for line in out.split("\n"))
    return out


RUN_PAGES = [page for page in PAGES if any(b.run for b in blocks(page))]


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: p.name)
def test_the_examples_give_what_the_page_shows(page, tmp_path, capsys, monkeypatch):
    shutil.copytree(CORPUS, tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)
    for block in (b for b in blocks(page) if b.run):
        for command, shown in shown_runs(block):
            got = run_command(command, capsys, monkeypatch)
            assert normalised(got) == normalised(shown), f"{page.name}:{block.line}: {command}"


# --- Python -----------------------------------------------------------------------------------------------
def run_doctest(block: Block, replace: dict[str, str] | None = None) -> None:
    text = block.text
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    test = doctest.DocTestParser().get_doctest(text, {}, f"{block.page.name}:{block.line}", str(block.page), 0)
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()


PYTHON = [b for b in ALL if b.language == "python" and ">>>" in b.text]
SERVED = [b for b in PYTHON if "gradio_client" in b.text]


@pytest.mark.slow
def test_the_python_examples_run(tmp_path, monkeypatch):
    """Every page's examples in order, each page with its own names, in one folder holding a copy of the sample
    corpus, which the default index is built from once."""
    import rag.api

    shutil.copytree(CORPUS, tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_CORPUS", str(tmp_path / "corpus"))
    monkeypatch.setenv("RAG_INDEX", str(tmp_path / "index"))
    monkeypatch.setattr(rag.api, "_DEFAULT", None)
    for page in sorted({b.page for b in PYTHON if b not in SERVED}):
        examples = [b for b in PYTHON if b.page == page and b not in SERVED]
        run_doctest(Block(page, "python", "".join(b.text for b in examples), False, examples[0].line))


@pytest.mark.slow
@pytest.mark.parametrize("block", SERVED, ids=lambda b: f"{b.page.name}:{b.line}")
def test_the_http_examples_run_against_a_running_chat(block, chat_server):
    run_doctest(block, {"http://127.0.0.1:7860/": chat_server.url})
