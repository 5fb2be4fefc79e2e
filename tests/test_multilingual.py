"""The multilingual arm: a Korean question finds the English article and an English question the Korean one;
its vectors are stored once beside the first arm's, follow every commit, come to an index built without them
on its next run without embedding the first arm again, and go when the arm is turned off. The articles are
written here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag import Index
from rag.ingest.plaintext import parse_document
from rag.search.relevance import load_calibration
from rag.search.request import Question
from rag.serve.render import across_languages
from rag.text import language_of

ENGLISH = {
    "tram.txt": (
        "Riverside city opens its first tram line\n"
        "The city of Riverside opened its first tram line on Monday. The line runs eleven kilometres from the "
        "central station to the university hospital and stops at fourteen places. The mayor, Helen Park, said "
        "the trams would run every six minutes at rush hour and would carry forty thousand passengers a day."
    ),
    "harvest.txt": (
        "Farmers report a poor apple harvest after a dry summer\n"
        "Apple growers in the northern valley picked a third less fruit this autumn than last year. Weeks "
        "without rain in July left the trees stressed, and hail in August damaged what remained. Prices at "
        "the wholesale market rose by a fifth."
    ),
    "library.txt": (
        "The old library reopens after a five-year restoration\n"
        "The national library reopened its reading room on Saturday after five years of restoration work. "
        "Workers replaced the glass roof and repaired the oak shelves, which hold two hundred thousand books."
    ),
}
KOREAN = {
    "festival.txt": (
        "바닷가 마을에서 첫 오징어 축제 열려\n"
        "동해안의 작은 어촌 마을에서 지난 주말 처음으로 오징어 축제가 열렸다. 사흘 동안 약 삼만 명의 "
        "관광객이 찾았고, 어민들은 갓 잡은 오징어를 직접 구워 팔았다. 마을 이장은 내년에도 축제를 열겠다고 밝혔다."
    ),
}


def write(folder: Path, articles: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def meta(index_dir: Path) -> dict[str, str]:
    with sqlite3.connect(index_dir / "rag.sqlite") as db:
        return dict(db.execute("SELECT key, value FROM meta"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Index:
    """English and Korean articles in one collection, with the packaged model and the arm on (the default)."""
    folder = tmp_path_factory.mktemp("mixed")
    write(folder / "corpus", {**ENGLISH, **KOREAN})
    index = Index(folder / "index")
    index.add([folder / "corpus"])
    return index


def test_a_korean_question_finds_the_english_article_and_says_it_crossed_languages(mixed: Index):
    answer = mixed.search("리버사이드에 처음 생긴 트램 노선은 몇 킬로미터인가?", k=3)
    first = answer.passages[0]
    assert first.source == "tram.txt"
    assert "eleven kilometres" in first.text  # verbatim, untranslated
    assert first.language == "en" and first.asked_in == "ko"
    assert across_languages(first) == (
        "Matched across languages: a Korean question, a passage in English (shown as written); named in both: "
        "리버사이드 = Riverside."
    )
    assert first.to_dict()["language"] == "en" and first.to_dict()["across_languages"] is True
    assert first.to_dict()["names_across"] == [{"hangul": "리버사이드", "latin": "Riverside"}]
    assert answer.note is None  # the arm ran: no "cannot match" note


def test_an_english_question_finds_the_korean_article(mixed: Index):
    """First, though the first model's cosine to a Korean passage is noise: a passage in another script is
    placed by the multilingual arm alone (it came last of four while the first arm's ranking placed it)."""
    for question in ("How many tourists came to the squid festival?", "What did the fishermen sell at the festival?"):
        answer = mixed.search(question, k=3)
        korean = answer.passages[0]
        assert korean.source == "festival.txt", question
        assert korean.language == "ko" and korean.asked_in == "en"


def test_a_question_in_the_passages_language_is_not_called_a_cross_language_match(mixed: Index):
    answer = mixed.search("When did Riverside open its tram line?", k=3)
    assert answer.passages[0].source == "tram.txt"
    assert answer.passages[0].asked_in is None and across_languages(answer.passages[0]) is None


def test_the_vectors_are_stored_once_per_passage_as_float16(mixed: Index):
    values = meta(mixed.path)
    rows = int(values["multilingual_rows"])
    assert rows == int(values["vector_rows"]) > 0
    assert (mixed.path / values["multilingual_file"]).stat().st_size == rows * 512 * 2  # 1 KB a passage
    assert int(values["wide_chunks"]) == 1  # the Korean article's one passage
    manifest = mixed.info().manifest  # what `rag info` says
    assert manifest.multilingual and manifest.wide_passages == 1
    assert manifest.to_dict()["multilingual"] is True


def test_an_index_built_before_the_arm_gains_it_without_embedding_again(tmp_path: Path):
    corpus = write(tmp_path / "corpus", ENGLISH)
    old = Index(tmp_path / "index", multilingual=False)
    old.add([corpus])
    assert meta(old.path)["multilingual_file"] == ""
    assert Index(old.path).search("리버사이드 트램 노선", k=3).note is not None  # "cannot match" without the arm
    with sqlite3.connect(old.path / "rag.sqlite") as db:  # as an index written before the arm existed
        db.execute("DELETE FROM meta WHERE key LIKE 'multilingual%' OR key = 'wide_chunks'")
    vectors = next(old.path.glob("vectors-*.f16")).read_bytes()

    upgraded = Index(old.path)
    assert upgraded.outdated()
    report = upgraded.add([corpus])
    assert report.embedded == 0  # the first arm's vectors are kept
    assert next(old.path.glob("vectors-*.f16")).read_bytes() == vectors
    assert int(meta(old.path)["multilingual_rows"]) == int(meta(old.path)["vector_rows"])
    assert upgraded.search("리버사이드에 처음 생긴 트램 노선은?", k=3).passages[0].source == "tram.txt"


def test_the_arm_follows_changes_and_can_be_turned_off(tmp_path: Path):
    corpus = write(tmp_path / "corpus", {**ENGLISH, **KOREAN})
    index = Index(tmp_path / "index")
    index.add([corpus])
    assert int(meta(index.path)["wide_chunks"]) == 1
    index.search("오징어 축제", k=1)  # the arm's index is open, and must follow the next commits

    (corpus / "festival.txt").unlink()
    write(corpus, {"market.txt": "New fish market opens by the harbour\nThe harbour's new fish market opened."})
    index.add([corpus])
    assert int(meta(index.path)["wide_chunks"]) == 0
    searcher = index.searcher
    arm = searcher.multilingual_index()
    assert arm is not None
    with searcher.store.read() as reader:
        assert arm.ntotal == reader.counts().chunks
    assert "market.txt" in [p.source for p in index.search("수산시장이 새로 문을 열었다", k=4).passages]

    off = Index(index.path, multilingual=False)
    off.add([corpus])
    assert meta(index.path)["multilingual_file"] == ""
    assert not list(index.path.glob("multilingual-*.f16"))  # its file is removed with the commit
    answer = Index(index.path).search("리버사이드에 처음 생긴 트램 노선은?", k=3)
    assert all(p.asked_in is None for p in answer.passages)
    assert Index(index.path).searcher.multilingual_index() is None
    assert not Index(index.path).info().manifest.multilingual


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("김경수가 대통령실을 옮기려는 도시는?", "ko"),
        ("Kim also vowed to fully relocate the presidential office from Seoul to Sejong.", "en"),
        ("東京は日本の首都です", "ja"),
        ("中国的首都是北京", "zh"),
        ("Le président a déclaré que la situation est grave", None),  # Latin script, not English: not named
        ("이재명 (Lee Jae-myung) said the Democratic Party will win the vote in June", "en"),
    ],
)
def test_the_language_of_a_text_is_named_only_when_its_letters_tell(text: str, language: str | None):
    assert language_of(text) == language


def test_a_korean_teaser_beside_its_english_twin_is_content_and_a_list_of_korean_links_is_not():
    page = "\n".join(
        [
            "Election special",
            "The election campaign ended on Monday with rallies in every city of the country, and the vote "
            "counts will begin at six.",
            "[Poll Highlights] Final Survey Shows Lee Has Majority. Candidate Preference: Lee Leads with 50.3%",
            "[여론조사꽃] 마지막 조사, 단일화 돼도 이재명 과반",
            "[Column] We won't give up",
            "[Op-Ed] Let workers lead",
            "[Statement] Stop the interference",
            "Most read",
            "[속보] 국회 본회의 개최",
            "[단독] 여당 대표 사퇴",
            "[인터뷰] 청년 정책 제안",
            "[분석] 지방선거 전망",
        ]
    )
    doc = parse_document(page, "page.txt")
    kept = "".join(doc.text[a:b] for a, b in doc.segments)
    assert "[여론조사꽃] 마지막 조사" in kept  # the twin of the teaser above it
    assert "[Poll Highlights]" in kept
    for link in ("[속보] 국회 본회의 개최", "[단독] 여당 대표 사퇴", "[인터뷰] 청년 정책 제안"):
        assert link not in kept


def test_multilingual_rows_are_unit_vectors(mixed: Index):
    arm = mixed.searcher.multilingual_index()
    assert arm is not None
    with mixed.searcher.store.read() as reader:
        ids = reader.live_chunk_ids()
    norms = np.linalg.norm(arm.vectors.read(ids), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)


def test_an_other_script_passage_clears_the_bar_at_its_cut_and_is_placed_at_its_rank_cut():
    calibration = load_calibration("all-MiniLM-L6-v2")
    arm = calibration.multilingual
    assert arm is not None
    bar = calibration.dense.threshold
    assert arm.probability(arm.cut, bar) == pytest.approx(bar)
    for wide in (True, False):  # each direction clears the bar at its own cut
        assert arm.probability(arm.found_cut(wide), bar, arm.found_cut(wide)) == pytest.approx(bar)
    assert arm.placement(arm.rank_cut, bar) == pytest.approx(bar)
    cosines = np.linspace(-1, 1, 41)
    scores = [arm.probability(float(c), bar) for c in cosines]
    assert all(0 < a <= b < 1 for a, b in zip(scores, scores[1:]))  # a probability, rising with the cosine


MAYORS = {
    "bridge.txt": (
        "A harbour crossing opens to traffic\n"
        "The new crossing in Port Alder opened to traffic on Friday. Mayor Gwendolyn Ortiz cut the ribbon and "
        "said it would save commuters twenty minutes a day."
    ),
    "tunnel.txt": (
        "A river crossing opens to traffic\n"
        "The new crossing in Eastbrook opened to traffic on Friday. Mayor Theodore Quill cut the ribbon and "
        "said it would save commuters half an hour a day."
    ),
}


@pytest.mark.slow
def test_a_korean_question_naming_someone_finds_the_english_passage_that_names_them(tmp_path: Path):
    """Two English articles alike but for their names and places: the multilingual encoder alone cannot tell
    which one a Korean question means; the names, spelt alike across scripts, do."""
    index = Index(tmp_path / "index")
    index.add([write(tmp_path / "corpus", MAYORS)])
    for question, source in [
        ("그웬돌린 오르티스 시장이 개통식에서 한 말은?", "bridge.txt"),
        ("테오도르 퀼 시장은 통근 시간이 얼마나 줄어든다고 했나?", "tunnel.txt"),
        ("포트 앨더에 새로 생긴 것은?", "bridge.txt"),
        ("이스트브룩에서 금요일에 개통한 것은?", "tunnel.txt"),
    ]:
        assert index.search(question, k=2).passages[0].source == source, question
    first = index.search("그웬돌린 오르티스 시장이 개통식에서 한 말은?", k=2).passages[0]
    assert first.names_across == (("그웬돌린", "Gwendolyn"), ("오르티스", "Ortiz"))
    assert across_languages(first) == (
        "Matched across languages: a Korean question, a passage in English (shown as written); named in both: "
        "그웬돌린 = Gwendolyn, 오르티스 = Ortiz."
    )
    assert first.to_dict()["names_across"][0] == {"hangul": "그웬돌린", "latin": "Gwendolyn"}


@pytest.mark.slow
def test_a_passage_naming_someone_by_surname_counts_the_names_its_title_gives(tmp_path: Path):
    """News names someone in full once, then by surname: a passage of the article counts the names its
    title gives, so the passage that answers is not outranked by the one that spells the name out."""
    first = (
        "Gwendolyn Ortiz won the mayoral race in Port Alder on Sunday with 54 percent of the vote, ending twelve "
        "years of rule by the Harbour Party. Gwendolyn Ortiz, a former schoolteacher, thanked volunteers at a rally "
        "near the fish market and said the count had been slow because of heavy rain in the northern districts. "
        "Turnout was the highest in two decades, the election office said, at 71 percent. The outgoing mayor "
        "conceded before midnight and promised an orderly handover of the town hall."
    )
    second = (
        "Her first act in office, Ortiz told reporters, will be to reopen the harbour library, closed since a storm "
        "damaged its roof three winters ago. The repairs will cost about two million dollars, paid from a fund the "
        "council set aside last year. She also plans to cut bus fares for pupils and to hold an open meeting in "
        "every ward before the summer. The new council sits for the first time next month."
    )
    index = Index(tmp_path / "index")
    index.add(
        [
            write(
                tmp_path / "corpus",
                {"ortiz.txt": f"Gwendolyn Ortiz wins the Port Alder mayoral race\n{first}\n\n{second}"},
            )
        ]
    )
    asked = Question.of("그웬돌린 오르티스 시장이 취임 후 가장 먼저 하겠다는 일은?")
    searcher = index.searcher
    arms = searcher.arms(asked, 100, None, None, searcher.multilingual_vector(asked))
    with searcher.store.read() as reader:
        texts = {row.id: row.text for row in reader.passage_rows([cid for cid, _ in arms.crossing or []])}
    surname_only = next(cid for cid, text in texts.items() if text.startswith("Her first act"))
    assert (arms.crossing_names or {})[surname_only] == (("그웬돌린", "Gwendolyn"), ("오르티스", "Ortiz"))
