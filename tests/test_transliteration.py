"""Names across scripts: the Hangul spelling of a name matches its English spelling (Korean names romanised,
foreign names transcribed into Hangul), and words that only share consonants do not."""

from __future__ import annotations

import pytest

from rag.search.transliteration import NameBridge, english_names, hangul_candidates, spelt_alike


@pytest.mark.parametrize(
    ("korean", "english"),
    [
        ("김경수", "Kim Kyung-soo"),  # a Korean name, romanised in three words
        ("이재명", "Lee Jae-myung"),  # 이 is Lee: Korean drops the initial l
        ("윤석열", "Yoon Suk-yeol"),
        ("김정은", "Kim Jong Un"),
        ("세종", "Sejong"),
        ("킵초게", "Kipchoge"),  # foreign names transcribed into Hangul
        ("모가디슈", "Mogadishu"),
        ("우크라이나", "Ukraine"),  # a final silent e
        ("나이지리아", "Nigeria"),  # 나이 is one sound, English i
        ("장쩌민", "Jiang Zemin"),
        ("시진핑", "Xi Jinping"),
        ("젤렌스키", "Zelensky"),
        ("트럼프", "Trump"),
        ("스웨덴", "Sweden"),  # the epenthetic 으 of 스
        ("홍콩", "Hong Kong"),
        ("싱가포르", "Singapore"),
        ("버몬트", "Vermont"),  # r before a consonant is silent
    ],
)
def test_a_name_in_hangul_matches_its_english_spelling(korean: str, english: str):
    assert spelt_alike(korean, english)


@pytest.mark.parametrize(
    ("korean", "english"),
    [
        ("스웨덴", "Houston"),  # the same consonants, vowels that do not fit
        ("복원", "Burkina"),  # 복원, "restoration"
        ("마라톤", "Melton"),
        ("이란", "Elena"),
        ("페루", "Polo"),  # two consonants: no vowel may differ
        ("피지", "Posey"),
        ("서울", "Sally"),
        ("김경수", "Kim Jong Un"),  # other consonants
    ],
)
def test_words_that_only_share_consonants_do_not_match(korean: str, english: str):
    assert not spelt_alike(korean, english)


def test_a_hangul_word_is_tried_without_its_particle_and_by_its_beginning():
    assert "러시아" in hangul_candidates("러시아가")
    assert "버몬트" in hangul_candidates("버몬트주")  # Vermont and 주, a state
    assert "수" not in hangul_candidates("수는")  # one syllable left: not a name
    assert "수는" not in hangul_candidates("수는")  # two syllables ending like a particle: a noun and its particle


def test_english_names_are_capitalised_words_and_their_runs():
    names = english_names("In Seoul, Kim Kyung-soo met The Associated Press on Monday.")
    assert {"Seoul", "Kim", "Kyung-soo", "Kim Kyung-soo", "Monday"} <= names
    assert "In" not in names and "The" not in names  # common words that start a sentence
    assert "Seoul Kim" not in names  # a comma ends a run


def test_a_question_finds_its_names_in_a_passage_of_the_other_script():
    korean_question = NameBridge("김경수는 어느 도시에서 선거 운동을 시작했나?")
    assert korean_question.shared("Kim Kyung-soo launched his campaign in Sejong on Monday.") == {
        "김경수는": ("김경수", "Kim Kyung-soo")  # the question's word, and the name in both scripts
    }
    assert korean_question.shared("The former governor launched his campaign on Monday.") == {}
    english_question = NameBridge("Where did Kim Kyung-soo launch his campaign?")
    assert english_question.shared("김경수 전 지사는 월요일 세종에서 출마를 선언했다.") == {
        "Kim Kyung-soo": ("김경수", "Kim Kyung-soo")
    }
    # Where the question asks "where" in Korean, no English name spelt like 어디 is taken for it.
    assert NameBridge("어디인가?").shared("Jacinda Ardern resigned.") == {}
