"""`python app.py` as users and programs reach it: gradio_client, several clients at once, auth, --share."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import CORPUS, ROOT, ChatServer, load_questions, start_chat
from gradio_client import Client

pytestmark = pytest.mark.slow


def test_chat_endpoint_returns_the_reply(chat_server):
    reply = Client(chat_server.url, verbose=False).predict(
        "Who was Kim Kyoung-soo's political mentor?", api_name="/chat"
    )
    assert reply.startswith("5 passages from ")
    assert "> Sejong was envisioned by former President Roh Moo-hyun, Kim's political mentor," in reply
    assert "\n  002_4545c625dd368776.txt · characters " in reply
    assert "&#" not in reply and "**" not in reply and "<" not in reply  # text a program reads as it is


def test_structured_endpoint_returns_what_rag_ask_json_prints(chat_server):
    question = "Which summit is Lee attending in Canada?"
    from_app = Client(chat_server.url, verbose=False).predict(question, 3, "hybrid", "", api_name="/ask")
    cli = subprocess.run(
        [sys.executable, "-m", "rag", "ask", question, "--k", "3", "--json", "--index", str(chat_server.index)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert from_app == json.loads(cli.stdout)
    assert from_app["found"] and len(from_app["passages"]) == 3


def test_structured_endpoint_reports_a_bad_question(chat_server):
    with pytest.raises(Exception, match="question is empty"):
        Client(chat_server.url, verbose=False).predict("  ", api_name="/ask")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("G7", "abc"), "k must be a whole number"),
        (("G7", None), "k must be a whole number"),
        (("G7", 2.5), "k must be a whole number"),
        (("G7", 3, "magic"), "unknown search mode"),
        (("G7", 3, "hybrid", "", "0000"), "year 0 is out of range"),
        (("G7", 3, "hybrid", "", "", "2024-13"), "until '2024-13'"),
    ],
)
def test_bad_values_over_http_come_back_with_their_reason(chat_server, args, message):
    with pytest.raises(Exception, match=message):
        Client(chat_server.url, verbose=False).predict(*args, api_name="/ask")
    reply = Client(chat_server.url, verbose=False).predict(*args, api_name="/chat")
    assert reply.startswith("Cannot search: ") and message in reply
    assert "--" not in reply, "an HTTP caller never typed a command-line flag"
    # a caller's bad value is answered, not logged as a fault of the server
    assert "Traceback" not in chat_server.log.read_text()


def test_markup_in_an_article_comes_back_as_the_articles_own_text_from_chat_and_ask(chat_server):
    """Programs get the article's characters as they are (the browser's Markdown escapes them: test_render)."""
    question = "What code was found on the Gwangju Folk Museum's defaced website?"
    client = Client(chat_server.url, verbose=False)
    reply = client.predict(question, api_name="/chat")
    raw = client.predict(question, api_name="/ask")
    assert raw["passages"][0]["source"] == "defaced_museum.txt"
    assert "<script>alert('pwned')</script>" in raw["passages"][0]["text"]
    quote = "\n".join(line[2:] for line in reply.split("\n\n2. ")[0].split("\n") if line.startswith("> "))
    assert quote == "\n".join(line for line in raw["passages"][0]["text"].split("\n") if line.strip())


def test_several_clients_at_once_each_get_their_own_right_answer(chat_server):
    rows = [r for r in load_questions("seed_questions.jsonl") if r["evidence"] and r["q"].isascii()][:8]

    def ask(row: dict) -> tuple[dict, dict]:
        return row, Client(chat_server.url, verbose=False).predict(row["q"], api_name="/ask")

    with ThreadPoolExecutor(len(rows)) as pool:
        results = list(pool.map(ask, rows))
    for row, answer in results:
        assert answer["query"] == row["q"]
        assert any(row["evidence"] in p["text"] for p in answer["passages"]), row["q"]


def test_first_run_built_the_index_from_the_corpus_and_said_so(chat_server):
    log = chat_server.log.read_text()
    assert "Building the index from" in log and "8 added" in log  # 5 files, one of them holding 4 articles
    assert (chat_server.index / "rag.sqlite").exists()


def wrong_passwords_sent_at_once_stall_nobody_else(server: ChatServer) -> None:
    """40 wrong sign-ins at once: a signed-in client's questions keep their usual latency and the right password
    is answered at once, while the wrong ones are answered one after another, slower and slower."""
    import statistics
    import threading

    assert sign_in(server.url, "ana", "wrong")[0] == 400, "a wrong password is refused (the check is awaited)"
    client = Client(server.url, auth=("ana", "s3cret"), verbose=False)

    def ask() -> float:
        started = time.perf_counter()
        answer = client.predict("Which summit is Lee attending in Canada?", 1, "keyword", api_name="/ask")
        assert answer["passages"]
        return time.perf_counter() - started

    usual = statistics.median(ask() for _ in range(6))
    answers: list[tuple[int, float]] = []
    attackers = [
        threading.Thread(target=lambda n=n: answers.append(sign_in(server.url, "ana", f"guess{n}", 2.5)), daemon=True)
        for n in range(40)
    ]
    for thread in attackers:
        thread.start()
    time.sleep(0.5)
    during = statistics.median(ask() for _ in range(6))
    status, right_took = sign_in(server.url, "ana", "s3cret")
    for thread in attackers:
        thread.join(5)
    print(
        f"usual {usual * 1000:.0f} ms, during 40 wrong sign-ins {during * 1000:.0f} ms "
        f"(x{during / usual:.2f}); the right password answered in {right_took * 1000:.0f} ms"
    )
    assert status == 200 and right_took < 1.0
    assert during < 3 * usual + 0.25, (usual, during)
    assert sum(code == 400 for code, _ in answers) < 10, "wrong passwords are answered a few a second at most"
    assert all(code in (0, 400) for code, _ in answers)


def test_auth_protects_the_app_and_share_offline_fails_in_one_line(tmp_path: Path, chat_server):
    """A second server on the first one's index: starts from the saved index (no rebuild), requires the
    password, and with --share either gets a public link or, offline, says why in one line and serves locally."""
    server = start_chat(
        chat_server.corpus, chat_server.index, tmp_path / "app.log", "--share", env={"RAG_AUTH": "ana:s3cret"}
    )
    try:
        for route, data in [
            ("gradio_api/info", None),
            ("config", None),
            ("gradio_api/file=/etc/passwd", None),
            ("gradio_api/queue/data?session_hash=x", None),
            ("gradio_api/call/ask", b'{"data": ["Who?"]}'),
            ("gradio_api/call/chat", b'{"data": ["Who?"]}'),
            ("gradio_api/queue/join", b'{"data": ["Who?"], "fn_index": 0, "session_hash": "x"}'),
            ("gradio_api/run/predict", b'{"data": ["Who?"]}'),
            ("gradio_api/component_server", b"{}"),
        ]:
            status, body = status_and_body(server.url + route, data, {"Content-Type": "application/json"})
            assert status == 401 and b"Roh" not in body, (route, status, body[:100])
        status, _ = status_and_body(server.url + "gradio_api/upload", *multipart("x.txt", b"Words.\n"))
        assert status == 401
        client = Client(server.url, auth=("ana", "s3cret"), verbose=False)
        assert "Roh Moo" in client.predict("Who was Kim Kyoung-soo's political mentor?", api_name="/chat")
        wrong_passwords_sent_at_once_stall_nobody_else(server)
        log = server.log.read_text()
        assert "Building the index" not in log
        share_lines = [line for line in log.splitlines() if "share" in line.lower()]
        if any("public URL" in line for line in share_lines):
            return  # this machine is online: Gradio made a link
        assert len(share_lines) == 1, share_lines
        assert share_lines[0].startswith("--share: no public link") and "served locally only" in share_lines[0]
    finally:
        server.stop()


def test_bad_auth_value_is_refused_before_serving(tmp_path: Path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "app.py"),
            "--auth",
            "nopassword",
            "--corpus",
            str(CORPUS),
            "--index",
            str(tmp_path / "index"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --auth/$RAG_AUTH must look like user:password")


def test_wrong_passwords_are_slowed_and_a_right_one_is_not():
    from rag.serve import server

    now = [0.0]
    sign_in = server.SignIn("ana", "s3cret", clock=lambda: now[0])
    waits = []
    for guess in ("a", "b", "c", "d", "e", "f", "g"):  # one after another: each waits its own delay
        right, wait = sign_in.verdict("ana", guess)
        assert not right
        waits.append(wait)
        now[0] += wait
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert sign_in.verdict("ana", "s3cret") == (True, 0.0), "a right password is answered at once"
    assert sign_in.verdict("ana", "h") == (False, 0.25), "and resets the count"
    at_once = [sign_in.verdict("ana", guess)[1] for guess in "ijk"]  # sent together: answered one after another
    assert at_once == [0.25 + 0.5, 0.25 + 0.5 + 1.0, 0.25 + 0.5 + 1.0 + 2.0]
    assert not sign_in.verdict("bob", "s3cret")[0]


def sign_in(url: str, user: str, password: str, timeout: float = 30) -> tuple[int, float]:
    """POST /login as the page does; (status, seconds the answer took)."""
    data = urllib.parse.urlencode({"username": user, "password": password}).encode()
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "login", data=data), timeout=timeout) as response:
            return response.status, time.perf_counter() - started
    except urllib.error.HTTPError as exc:
        return exc.code, time.perf_counter() - started
    except OSError:  # still waiting for its turn when the client gave up
        return 0, time.perf_counter() - started


def test_listening_on_every_address_without_auth_warns_and_names_the_reachable_url(tmp_path: Path):
    server = start_chat(CORPUS, tmp_path / "index", tmp_path / "app.log", "--host", "0.0.0.0", "--model", "hashing")
    try:
        deadline = time.monotonic() + 30  # the page answers a moment before the start-up lines are printed
        while "Press Ctrl-C" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = server.log.read_text().splitlines()
        warnings = [line for line in lines if line.startswith("warning: listening on 0.0.0.0 without --auth")]
        assert len(warnings) == 1
        reachable = next(line for line in lines if line.startswith("Reachable from other machines at http://"))
        assert "0.0.0.0" not in reachable and "127.0.0.1" not in reachable
    finally:
        server.stop()


# --- what the server exposes ------------------------------------------------------------------------------
def status_and_body(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def multipart(name: str, content: bytes) -> tuple[bytes, dict]:
    boundary = "verbatim-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_the_server_serves_no_file_outside_what_the_page_needs(chat_server):
    article = sorted(chat_server.corpus.glob("*.txt"))[0]
    secrets = {
        "/etc/passwd": b"root:",
        str(chat_server.index / "rag.sqlite"): b"SQLite format 3",
        str(article): article.read_bytes()[:60],
        str(ROOT / "app.py"): b"import",
    }
    for path, content in secrets.items():
        relative = Path(path).relative_to("/")
        for route in (
            f"gradio_api/file={path}",
            f"gradio_api/file={urllib.parse.quote(path, safe='')}",
            f"file={path}",
            f"gradio_api/file=../../../../../{relative}",
            f"static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/{relative}",
            f"assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/{relative}",
        ):
            status, body = status_and_body(chat_server.url + route)
            assert status in (403, 404) and content not in body, (route, status, body[:100])
    status, _ = status_and_body(chat_server.url + f"gradio_api/file=corpus/{article.name}")
    assert status in (403, 404)


def test_an_uploaded_name_cannot_leave_the_corpus_or_replace_an_article(chat_server, tmp_path: Path):
    from rag.serve.uploads import save_uploads

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "x.txt").write_text("An article already here.\n\nIt must stay as it is, word for word.\n")
    story = b"Harbour pilots strike\n\nPilots stopped work on Monday over pay, and forty ships waited outside.\n"
    landed = []
    for name in ("../../x.txt", "/tmp/x.txt", "..%2F..%2Fx.txt", "x.txt"):
        status, body = status_and_body(chat_server.url + "gradio_api/upload", *multipart(name, story))
        assert status == 200, body
        [path] = json.loads(body)
        assert Path(path).name.endswith("x.txt") and ".." not in Path(path).parts, path
        landed.append(Path(path))
    result = save_uploads(landed, corpus)
    assert result.saved == ["x (2).txt"] and result.already_there == ["x.txt", "x.txt"], result
    assert result.rejected == [("..%2F..%2Fx.txt", "a hidden file's name (it starts with '.'): rename it to add it")]
    assert (corpus / "x.txt").read_text().startswith("An article already here.")
    assert not (tmp_path / "x.txt").exists() and not Path("/x.txt").exists()


def test_an_upload_over_the_limit_is_refused_with_its_reason(chat_server, tmp_path: Path):
    big = b"Big story\n\n" + b"A sentence that goes on. " * 60_000  # 1.5 MB, over the fixture's 1 MB
    status, body = status_and_body(chat_server.url + "gradio_api/upload", *multipart("big.txt", big))
    assert (status, body) == (413, b"File size exceeded maximum allowed size of 1000000 bytes.")
    from rag.serve.uploads import save_uploads

    (tmp_path / "big.txt").write_bytes(big)
    result = save_uploads([tmp_path / "big.txt"], tmp_path / "corpus", max_bytes=1_000_000)
    assert result.saved == [] and result.rejected == [
        ("big.txt", "1.5 MB, over the 1 MB upload limit: add it with `rag index`")
    ]


def test_nasty_questions_over_http_get_an_answer_or_a_reason(chat_server):
    """The fuzz corpus of tests/test_fuzz.py through `/ask` and `/chat`: a JSON answer or a message, never an
    empty error or a traceback."""
    from gradio_client.exceptions import AppError
    from test_fuzz import NASTY

    client = Client(chat_server.url, verbose=False)
    for question in NASTY:
        if any("\ud800" <= c <= "\udfff" for c in question):  # not UTF-8: only a raw JSON escape can send it
            assert_escaped_question_gets_a_reason(chat_server.url, question)
            continue
        try:
            answer = client.predict(question, api_name="/ask")
            assert set(answer) >= {"query", "found", "passages"}, answer
        except AppError as exc:
            assert str(exc).strip() and "Traceback" not in str(exc), repr(question)
        reply = client.predict(question, api_name="/chat")
        assert isinstance(reply, str) and reply.strip() and "Traceback" not in reply, repr(question)


def raw_call(url: str, api: str, data: list) -> str:
    """One call through Gradio's plain HTTP API, as curl makes it: the event stream of its result."""
    body = json.dumps({"data": data}).encode()  # ensure_ascii: a lone surrogate travels as \udxxx
    status, started = status_and_body(url + f"gradio_api/call/{api}", body, {"Content-Type": "application/json"})
    assert status == 200, started
    event = json.loads(started)["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api}/{event}", timeout=60) as response:
        return response.read().decode()


def assert_escaped_question_gets_a_reason(url: str, question: str) -> None:
    stream = raw_call(url, "ask", [question, 5, "hybrid", "", "", ""])
    assert "event: error" in stream and "broken character" in stream, stream


@pytest.mark.parametrize(
    ("data", "event", "says"),
    [
        ([], "error", "/ask takes question, k, mode, source, since, until, rerank: the first, then any of the others"),
        (["G7"], "complete", '"found": true'),
        (["G7", 2], "complete", '"passages"'),
        (["G7", 1, "hybrid", "", "", "", True], "complete", '"answer": {'),
        (["G7", 1, "hybrid", "", "", "", None, "more"], "error", "(8 values were sent)"),
        (["G7", "five"], "error", "k must be a whole number between 1 and 100, not 'five'"),
        ([["G7"]], "error", "the question must be text, not list"),
    ],
)
def test_a_raw_call_with_values_missing_or_extra_gets_our_own_words(chat_server, data, event, says):
    """Values left off the end take their defaults; none, or more than the endpoint takes, are answered in
    our words, never Gradio's handler text, and no such call leaves a traceback in the server's log."""
    stream = raw_call(chat_server.url, "ask", data)
    assert f"event: {event}" in stream and says in stream, stream
    assert "input values" not in stream and '"error": null' not in stream
    assert "Traceback" not in chat_server.log.read_text()


def test_a_raw_call_that_sends_no_list_is_refused_with_the_reason(chat_server):
    body = json.dumps({"data": "G7"}).encode()
    status, said = status_and_body(chat_server.url + "gradio_api/call/ask", body, {"Content-Type": "application/json"})
    assert status == 422 and b"Input should be a valid list" in said
