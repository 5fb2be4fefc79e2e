import sqlite3

import pytest

from rag.lexical import bigram_query, bigram_text, coverage, query_keys, quote, words_query

NASTY = ['"', 'a"b', "NEAR(a b)", "x AND y OR NOT z", "col:value", "prefix*", "^start", "(unbalanced", "-minus", "'"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who is Lee Jae-myung's main rival?", '"lee" OR "jae" OR "myung" OR "main" OR "rival"'),
        ('He said "NEAR" AND OR', '"near"'),
        ("What is it?", None),
    ],
)
def test_words_query(question, expected):
    assert words_query(question) == expected


def test_quote_doubles_quotes():
    assert quote('a"b') == '"a""b"'


def test_bigrams_for_korean():
    assert bigram_text("이재명 과반") == " 이재 재명   과반 "
    assert bigram_query("이재명은 과반") == '"이재" OR "재명" OR "명은" OR "과반"'
    assert bigram_text("Lee 이재명") == "Lee  이재 재명 "


@pytest.mark.parametrize("term", NASTY)
def test_user_text_never_breaks_fts(term):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61')")
    conn.execute("INSERT INTO t VALUES ('value near start prefix minus unbalanced')")
    for query in (words_query(f"find {term} value"), bigram_query(f"{term} 값")):
        if query:
            conn.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()


def test_coverage_counts_key_terms():
    keys = query_keys("Which summit is Lee attending in Canada?")
    assert keys == ["summi", "lee", "atten", "canad"]
    assert coverage(keys, "Lee heads to the G7 summit in Canada, attending as president") == 1.0
    assert coverage(keys, "Nothing relevant here") == 0.0
