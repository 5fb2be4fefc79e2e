"""The chat's behaviour without a browser: replies, follow-ups, reading in context, adding articles."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import free_port, load_questions

from rag import Index
from rag.serve.chat_handlers import user_questions
from rag.serve.chat_service import CHAT_NAMES, ChatService

ARTICLE = """Harbour city opens floating solar farm
Posted March 4, 2025
The port authority of Mokpo switched on a floating solar farm of 41 megawatts on Tuesday,
the largest of its kind in the country.
The panels sit on a disused dock basin and will supply about 18,000 households, the authority said.
Engineers chose a floating design because the basin's water keeps the panels cool,
which raises their output by about a tenth.
"""


@pytest.fixture(scope="module")
def service(seed_index: Index, tmp_path_factory: pytest.TempPathFactory) -> ChatService:
    return ChatService(seed_index, tmp_path_factory.mktemp("unused-corpus"))


def test_reply_quotes_the_passage_with_its_source_and_marks_a_sentence(service):
    reply = service.answer("Who was Kim Kyoung-soo's political mentor?")
    assert reply.answer is not None and reply.answer.found
    assert any("Roh Moo" in s.passage.text for s in reply.shown[:3])
    assert reply.shown[0].passage.source == "002_4545c625dd368776.txt"
    assert "<mark>" in reply.markdown and "002&#95;4545c625dd368776&#46;txt" in reply.markdown
    assert reply.markdown.startswith("**5 passages from ")


def test_unanswerable_question_says_so_plainly(service):
    reply = service.answer("What is the recipe for kimchi stew?")
    assert reply.answer is not None and not reply.answer.found
    assert reply.markdown.startswith("**The articles do not answer this.**")
    assert reply.shown, "the closest passages are still shown, as such"


@pytest.mark.parametrize(
    "question",
    ["What is the recipe for kimchi stew?", "Which summit is Lee attending in Canada?", "Who won the World Cup?"],
)
def test_the_verdict_and_the_marks_agree_with_the_search(service, seed_index, question):
    """The chat shows what `Index.search` found: the same verdict, the same scores, and no "likely answers"
    under "The articles do not answer this"."""
    reply = service.answer(question)
    answer = seed_index.search(question, k=5)
    assert reply.answer == answer
    for item in reply.shown:
        assert f"({item.passage.score:.0%} chance)" in reply.markdown
    if not answer.found:
        assert "likely answers" not in reply.markdown.split("**4.**")[0]


def test_follow_up_is_searched_with_the_question_it_leans_on(service):
    first = "Which summit is Lee attending in Canada?"
    reply = service.answer("and what did he say about it?", earlier=[first])
    assert reply.searched_for == f"{first} and what did he say about it?"  # nothing of its own: all of the first
    assert "Searched for:" in reply.markdown
    assert any("G7" in s.passage.text or "Group of Seven" in s.passage.text for s in reply.shown[:3])


def test_the_answer_to_a_follow_up_comes_first_not_the_answer_to_the_question_before(service):
    """Follow-up pairs written for the seed articles: the second question's evidence must be the first passage
    in at least 9 of 10 (the earlier question's passage used to outvote it)."""
    pairs = load_questions("follow_ups.jsonl")
    firsts = [service.answer(p["follow_up"], earlier=[p["first"]]).shown[0].passage.text for p in pairs]
    hits = [p["evidence"].lower() in text.lower() for p, text in zip(pairs, firsts)]
    assert sum(hits) >= 0.9 * len(pairs), [p["follow_up"] for p, hit in zip(pairs, hits) if not hit]


def test_controls_k_mode_and_source_filter_apply(service):
    reply = service.answer("Lee Jae-myung", k=2, mode="keyword", source="001_*")
    assert len(reply.shown) == 2 and {s.passage.source for s in reply.shown} == {"001_33dd8276e80e8104.txt"}


def test_a_question_that_cannot_be_searched_gets_the_reason_as_reply(service):
    reply = service.answer("   ")
    assert reply.answer is None and reply.markdown.startswith("**Cannot search:**")


def test_a_bad_value_is_named_the_way_its_caller_gave_it(service, seed_index, capsys):
    from rag.serve.chat_service import CHAT_NAMES
    from rag.serve.cli import main

    typed = service.answer("Lee Jae-myung", since="Jan 2025", names=CHAT_NAMES)
    assert typed.error == "Published from 'Jan 2025': write a date as YYYY, YYYY-MM or YYYY-MM-DD"
    assert "--" not in typed.markdown
    assert service.answer("Lee Jae-myung", k=0).error.startswith("k must be a whole number")
    assert main(["ask", "Lee Jae-myung", "--until", "2025-13", "--index", str(seed_index.path)]) == 2
    assert "--until '2025-13'" in capsys.readouterr().err


def test_read_in_context_marks_the_passage_at_its_offsets(service):
    reply = service.answer("What is the China-North Korea mutual defense pledge?")
    p = reply.shown[0].passage
    page = service.article(p.doc_id, p.start, p.end)
    assert '<mark id="verbatim-passage">' in page
    document = service.index.document(p.doc_id)
    assert document.text[p.start : p.end] == p.text


def test_sources_list_every_article_with_its_passage_count(service):
    rows = service.source_rows()
    assert [r[1] for r in rows] == sorted(r[1] for r in rows) and len(rows) == 7
    assert all(isinstance(r[3], int) and r[3] > 0 for r in rows)
    assert len(service.examples()) == 4


def test_sources_come_a_page_at_a_time_and_can_be_searched(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n in range(120):
        (corpus / f"story-{n:03d}.txt").write_text(f"Harbour report number {n}\n\nShips came and went, {n} of them.\n")
    index = Index(tmp_path / "index", model="hashing")
    index.add([corpus])
    service = ChatService(index, corpus)
    first, second, third = (service.source_rows(page=p) for p in (1, 2, 3))
    assert (len(first), len(second), len(third)) == (50, 50, 20)
    assert first[0][1] == "story-000.txt" and third[-1][1] == "story-119.txt"
    assert [r[1] for r in service.source_rows(search="report number 11")] == [
        f"story-{n}.txt" for n in ("011", "110", "111", "112", "113", "114", "115", "116", "117", "118", "119")
    ]
    assert service.sources_caption(search="number 11") == "1–11 of 11 articles matching “number 11”"
    assert len(service.source_choices()) == 1 + 100, "all, then the first hundred articles: no site names here"


def test_user_questions_read_both_message_shapes():
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    assert user_questions(history) == ["first", "second"]


@pytest.mark.slow
def test_uploads_are_indexed_and_bad_files_named_with_reason(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "existing.txt").write_text(ARTICLE.replace("Mokpo", "Busan"))
    index = Index(tmp_path / "index")
    index.add([corpus])
    service = ChatService(index, corpus)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "solar.md").write_text(ARTICLE)
    (incoming / "existing.txt").write_text(ARTICLE.replace("Mokpo", "Busan"))  # same bytes: not added twice
    (incoming / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (incoming / "broken.txt").write_bytes(b"\x00\x01\x02 binary")
    (incoming / "empty.txt").write_text("   \n")
    (incoming / "nested.json").write_text("[" * 100_000 + "]" * 100_000)  # between good files: stops nothing

    status = service.add_files(sorted(incoming.iterdir()))

    assert "Added 1 article" in status and "solar&#46;md" in status
    assert "existing&#46;txt: already in the collection" in status
    for name in ("photo&#46;png", "broken&#46;txt", "empty&#46;txt", "nested&#46;json"):
        line = next(x for x in status.splitlines() if name in x)
        assert line.startswith("- **Rejected**") and len(line) > len(name) + 20
    assert sorted(p.name for p in corpus.iterdir()) == ["existing.txt", "solar.md"]
    assert "solar.md" in [r[1] for r in service.source_rows()]
    reply = service.answer("How many households will the Mokpo floating solar farm supply?")
    assert reply.answer.found and reply.shown[0].passage.source == "solar.md"
    assert "18,000 households" in reply.shown[0].passage.text


@pytest.mark.slow
def test_a_different_file_with_a_taken_name_gets_a_new_name(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "solar.md").write_text(ARTICLE)
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "solar.md").write_text(ARTICLE.replace("Mokpo", "Gunsan"))
    index = Index(tmp_path / "index")
    status = ChatService(index, corpus).add_files([incoming / "solar.md"])
    assert "solar (2&#41;&#46;md" in status
    assert (corpus / "solar.md").read_text() == ARTICLE
    assert "Gunsan" in (corpus / "solar (2).md").read_text()


@pytest.mark.slow
def test_an_uploaded_export_names_its_bad_records(tmp_path: Path):
    corpus = tmp_path / "corpus"
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "feed.jsonl").write_text(
        '{"title": "Gangneung coffee festival moves", "text": "The festival will move to Anmok beach next year."}\n'
        "not json\n"
    )
    status = ChatService(Index(tmp_path / "index"), corpus).add_files([incoming / "feed.jsonl"])
    assert "Added 1 article" in status
    assert "- **Rejected** feed&#46;jsonl&#35;2: not JSON" in status


def test_sessions_left_idle_are_forgotten_and_a_returning_client_is_served_again(service):
    """Gradio keeps each session's copy of the page; a server that never forgot them grew with every client."""
    from gradio_client import Client

    from rag.serve.chat import build_app, forget_idle_sessions  # Gradio: imported by the slow tier alone

    demo = build_app(service)
    demo.queue()
    demo.launch(server_port=free_port(), prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        clients = [Client(demo.local_url, verbose=False) for _ in range(3)]
        question = "Who was Kim Kyoung-soo's political mentor?"
        for client in clients:
            assert "Roh Moo-hyun" in client.predict(question, api_name="/chat")
        assert {c.session_hash for c in clients} <= set(demo.state_holder.session_data)
        assert forget_idle_sessions(demo) == 0  # just used: kept
        assert forget_idle_sessions(demo, idle_seconds=0) >= 3
        assert not demo.state_holder.session_data and not demo.state_holder.time_last_used
        assert "Roh Moo-hyun" in clients[0].predict(question, api_name="/chat")
        assert set(demo.state_holder.session_data) == {clients[0].session_hash}
    finally:
        demo.close()


# --- the page's events, without Gradio --------------------------------------------------------------------
def test_a_question_asked_on_the_page_joins_the_conversation(service):
    from rag.serve.chat_handlers import ChatHandlers

    handlers = ChatHandlers(service)
    first = handlers.respond("Who was Kim Kyoung-soo's political mentor?", [], 3, "hybrid", "", "", "")
    assert [m["role"] for m in first] == ["user", "assistant"] and "Roh Moo" in first[1]["content"]
    follow = handlers.respond("and what about Sejong?", first, 3.0, "hybrid", "", "", "")
    assert len(follow) == 4 and "Searched for:" in follow[3]["content"], "the earlier question is the context"
    assert handlers.respond("   ", first, 3, "hybrid", "", "", "") == first
    wrong = handlers.respond("Lee", [], 3, "hybrid", "", "Jan 2025", "")[1]["content"]
    assert "Published from" in wrong and "--since" not in wrong


def test_opening_articles_from_the_page(service):
    from rag.serve.chat_handlers import ChatHandlers

    handlers = ChatHandlers(service)
    passage = service.answer("What is the China-North Korea mutual defense pledge?").shown[0].passage
    article = handlers.read_passage(f"{passage.doc_id}-{passage.start}-{passage.end}")
    assert article is not None and '<mark id="verbatim-passage">' in article
    assert handlers.read_passage("not-a-target") is None and handlers.read_passage("") is None
    rows, caption = handlers.browse("", 1)
    assert caption.startswith(f"1–{len(rows)} of ") and rows[0][1] == service.articles()[0][0].source
    by_source = handlers.open_source("", 1, rows[1][1], 0)
    assert by_source == service.article(service.articles()[0][1].doc_id), "the clicked source wins over the row"
    assert handlers.open_source("", 1, None, 0) == service.article(service.articles()[0][0].doc_id)
    assert handlers.open_source("", 1, None, 10_000) is None


def test_the_lists_are_redrawn_only_after_a_newer_commit(service):
    from rag.serve.chat_handlers import ChatHandlers

    handlers = ChatHandlers(service)
    newest = service.lists_version()
    assert handlers.follow_index("", 1, newest) is None
    lists = handlers.follow_index("", 1, "0/0")
    assert lists is not None and lists.commit == newest and lists.rows == service.source_rows()
    assert ("All articles", "") in lists.choices
    assert handlers.upload(None) is None and handlers.upload([]) is None


def test_the_http_endpoints_name_a_wrong_value_as_the_api_does(service):
    from rag.errors import InvalidQueryError
    from rag.serve.chat_handlers import ChatHandlers

    handlers = ChatHandlers(service)
    assert handlers.chat_api("Lee", k=0).startswith("Cannot search: k must be a whole number")
    with pytest.raises(InvalidQueryError, match="^until '2025-13'"):
        handlers.ask_api("Lee", until="2025-13")
    answer = handlers.ask_api("Which summit is Lee attending in Canada?", k=2)
    assert answer["found"] and len(answer["passages"]) == 2


def test_an_upload_not_in_utf8_is_read_and_the_report_says_how(tmp_path: Path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    service = ChatService(Index(tmp_path / "index", model="hashing"), corpus)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "busan.txt").write_bytes(
        "부산항 물동량\n\n부산항 물동량이 늘었다고 항만공사가 밝혔다.\n".encode("cp949")
    )
    status = service.add_files([incoming / "busan.txt"])
    line = next(x for x in status.splitlines() if x.startswith("- busan"))
    assert "cp949" in line and "UTF" in line
    assert service.answer("부산항 물동량", mode="keyword").shown[0].passage.text.startswith("부산항 물동량")


def test_uploads_are_kept_beside_the_index_and_indexed_with_the_corpus(
    tmp_path: Path, corpus_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    """Files added in the chat go to `<index>-uploads`, never into the corpus folder (the checkout's sample
    `corpus/`, which `git status` and the tests read); the next start indexes that folder with the corpus,
    including a file put there while the app was down."""
    from rag.api import default_uploads_dir
    from rag.serve.server import open_index

    monkeypatch.delenv("RAG_UPLOADS", raising=False)
    index_dir = tmp_path / "index"
    uploads = default_uploads_dir(index_dir)
    assert uploads == tmp_path / "index-uploads"
    shipped = sorted(p.name for p in corpus_copy.iterdir())
    index = open_index(index_dir, corpus_copy, "hashing", uploads_dir=uploads)
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "solar.md").write_text(ARTICLE)
    assert "Added 1 article" in ChatService(index, uploads).add_files([incoming / "solar.md"])
    assert (uploads / "solar.md").read_text() == ARTICLE
    assert sorted(p.name for p in corpus_copy.iterdir()) == shipped, "the corpus folder is left as it was"
    (uploads / "tram.txt").write_text("Jeonju tram opens\nThe Jeonju tram line opened with nine stops.\n")
    reopened = open_index(index_dir, corpus_copy, "hashing", uploads_dir=uploads)
    assert reopened.search("Jeonju tram stops", k=1, mode="keyword").passages[0].source == "tram.txt"
    assert reopened.search("Mokpo floating solar", k=1, mode="keyword").passages[0].source == "solar.md"
    monkeypatch.setenv("RAG_UPLOADS", str(tmp_path / "elsewhere"))
    assert default_uploads_dir(index_dir) == tmp_path / "elsewhere"


def test_an_unknown_source_or_empty_dates_are_explained_in_the_chats_words(service):
    unknown = service.answer("Who is Lee?", source="nosuch.txt", names=CHAT_NAMES)
    assert unknown.answer is None and "no article, site or web address called “nosuch.txt”" in unknown.error
    assert "--" not in unknown.markdown and unknown.markdown.startswith("**Cannot search:**")
    empty = service.answer("Who is Lee?", since="2999", names=CHAT_NAMES)
    assert empty.answer is not None and empty.answer.passages == []
    assert "Nothing to search: 0 of" in empty.markdown and "on or after 1 January 2999" in empty.markdown
    assert "--" not in empty.markdown
