from pathlib import Path

import pytest

from rag.index.lexical import PLAIN, STEMMED, LexicalIndex
from rag.index.rows import PassageRow
from rag.text import bigram_query, bigram_text, coverage, query_keys, words_and_pairs_query, words_query

NASTY = [
    '"',
    'a"b',
    "NEAR(a b)",
    "x AND y OR NOT z",
    "col:value",
    "stem_text:value",
    "prefix*",
    "^start",
    "(unbalanced",
    "-minus",
    "'",
    "\\",
    "{",
    "[1 TO 5]",
    "~2",
    "+must",
    "a\u0000b",
    "IN [a b]",
]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who is Lee Jae-myung's main rival?", ["lee", "jae", "myung", "main", "rival"]),
        ('He said "NEAR" AND OR', ["near"]),
        ("What is it?", []),
    ],
)
def test_words_query(question, expected):
    assert words_query(question) == expected


def test_pairs_follow_the_question_order():
    assert words_and_pairs_query("mutual defense pledge") == [
        "mutual",
        "defense",
        "pledge",
        "mutual defense",
        "defense pledge",
    ]


def test_bigrams_for_korean():
    assert bigram_text("이재명 과반") == " 이재 재명   과반 "
    assert bigram_query("이재명은 과반") == ["이재", "재명", "명은", "과반"]
    assert bigram_text("Lee 이재명") == "Lee  이재 재명 "


@pytest.fixture(scope="module")
def tiny_lexical(tmp_path_factory: pytest.TempPathFactory) -> LexicalIndex:
    lexical = LexicalIndex(Path(tmp_path_factory.mktemp("lexical")))
    writer = lexical.writer()
    writer.add(
        [
            PassageRow(1, "value near start prefix minus unbalanced", "Values", 1, "a.txt", "a.txt"),
            PassageRow(2, "이재명 후보 과반 득표", "여론", 2, "b.txt", "b.txt"),
        ]
    )
    writer.commit(1)
    writer.close()
    lexical.follow(1)
    return lexical


@pytest.mark.parametrize("term", NASTY)
def test_user_text_never_becomes_query_syntax(tiny_lexical: LexicalIndex, term: str):
    hits = tiny_lexical.search(words_and_pairs_query(f"find {term} value"), STEMMED, 10)
    assert [cid for cid, _ in hits] == [1]
    assert tiny_lexical.search(bigram_query(f"{term} 과반"), PLAIN, 10)[0][0] == 2


def test_coverage_counts_key_terms():
    keys = query_keys("Which summit is Lee attending in Canada?")
    assert keys == ["summi", "lee", "atten", "canad"]
    assert coverage(keys, "Lee heads to the G7 summit in Canada, attending as president") == 1.0
    assert coverage(keys, "Nothing relevant here") == 0.0


def test_neighbouring_words_score_as_a_pair(tmp_path: Path):
    lexical = LexicalIndex(tmp_path)
    writer = lexical.writer()
    writer.add(
        [
            PassageRow(1, "The bowl of soup was super hot, and the game went on.", "Lunch", 1, "a.txt", "a.txt"),
            PassageRow(2, "The Super Bowl was played in Santa Clara, and the game went on.", "Football", 2, "b", "b"),
        ]
    )
    writer.commit(1)
    writer.close()
    lexical.follow(1)
    hits = lexical.search(words_and_pairs_query("Where was the Super Bowl played?"), STEMMED, 10)
    assert [cid for cid, _ in hits][0] == 2
    assert lexical.search(words_query("elections"), STEMMED, 10) == []
    assert lexical.search(words_query("games"), STEMMED, 10), "Porter stems games and game alike"
