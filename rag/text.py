"""What every stage reads off a text: its words (questions to search terms), its scripts, its folding, the
shape of its lines, and what of it a terminal may print.

Terms are runs of word characters only, so user text can never become query syntax (`rag.index.lexical`
quotes each one). English goes to the stemmed fields; text with Hangul or CJK goes to the plain fields as
overlapping two-character pieces: Korean attaches particles to words ("이재명은", "이재명이"), so whole
words miss, and most Korean words are two syllables long, which a trigram table cannot match at all.
"""

from __future__ import annotations

import calendar
import re
import unicodedata

STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "according",
        "tell",
        "know",
        "say",
        "said",
        "says",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)
_WIDE = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]")


_SURROGATE = re.compile("[\ud800-\udfff]")


def broken_character(text: str) -> int | None:
    """Where `text` holds a lone surrogate (half an emoji, or a byte that was not UTF-8, as Python keeps it),
    which the tokenizer, SQLite and the terminal all refuse; None when it holds none."""
    match = _SURROGATE.search(text)
    return match.start() if match else None


def has_wide_script(text: str) -> bool:
    """Hangul, kana or CJK ideographs: scripts written without spaces between every word."""
    return bool(_WIDE.search(text))


def content_words(text: str) -> list[str]:
    """Lower-cased words minus stop words, order kept, duplicates dropped."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOP_WORDS and (len(word) > 1 or word.isdigit()):
            seen.setdefault(word, None)
    return list(seen)


def bigrams(word: str) -> list[str]:
    if len(word) <= 2:
        return [word]
    return [word[i : i + 2] for i in range(len(word) - 1)]


WIDE_CHARS = _WIDE
_WIDE_RUN = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u9fff\uac00-\ud7af]+")


def bigram_text(text: str) -> str:
    """Text as the bigram table indexes it: each run of Hangul/CJK becomes its overlapping two-character
    pieces (the scheme of Lucene's CJK analyzer); other text passes through for unicode61 to split."""
    return _WIDE_RUN.sub(lambda m: " " + " ".join(bigrams(m.group())) + " ", text)


def words_query(text: str) -> list[str]:
    """The content words, for the stemmed or the plain fields; empty when nothing is left to match."""
    return content_words(text)


def words_and_pairs_query(text: str) -> list[str]:
    """The content words, plus each pair of neighbouring content words as a phrase: a passage that repeats
    the question's wording ("super bowl", "mutual defense") ranks above one that merely shares its words
    (the ordered pairs of the sequential dependence model). Measured on SQuAD in bench/RESULTS.md."""
    return with_pairs(content_words(text))


def with_pairs(words: list[str]) -> list[str]:
    """`words`, then each pair of neighbours as a phrase (`words_and_pairs_query`)."""
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def bigram_query(text: str) -> list[str]:
    """The pieces of `bigram_text(question)`, for the plain fields."""
    return list(dict.fromkeys(content_words(bigram_text(text))))


def fold(text: str) -> str:
    """Lower case without accents ("Málaga" as "malaga"); Hangul and other scripts stay as they are."""
    text = text.lower()
    if text.isascii():
        return text
    bare = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare)


def query_keys(text: str) -> list[str]:
    """The pieces of a question whose presence in a passage counts as lexical evidence."""
    keys: dict[str, None] = {}
    for word in content_words(fold(text)):
        if has_wide_script(word):
            for piece in bigrams(word):
                keys.setdefault(piece, None)
        else:
            keys.setdefault(word[:5] if len(word) > 5 else word, None)
    return list(keys)


def coverage(keys: list[str], passage: str) -> float:
    """Share of the question's keys found in the passage (substring match, case and accents ignored)."""
    if not keys:
        return 0.0
    lowered = fold(passage)
    return sum(1 for key in keys if key in lowered) / len(keys)


HEADLINE_MAX_CHARS = 150
LINE_END = re.compile(r"[.!?。…][\"'”’)\]]*$")


def is_headline(text: str) -> bool:
    """A short line that does not end like a sentence."""
    return len(text) < HEADLINE_MAX_CHARS and not LINE_END.search(text)


# Characters a terminal or a log acts on rather than shows: C0 and C1 controls (ESC starts colour and cursor
# sequences, CR and LF forge lines), the bidi controls that reverse what follows them, and lone surrogates
# (bytes of a file name that were not UTF-8, as Python keeps them).
_UNSEEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED_ESCAPES = {"\r": "\\r", "\n": "\\n"}


def visible(text: str, newlines: bool = False) -> str:
    """`text` as a terminal or a log line should print it: every character it would act on shown as an escape
    (`\\n`, `\\x1b`, `\\u202e`; a byte that was not UTF-8 as `\\xff`), so no file name or piece of an article can
    forge a line, move the cursor or reverse what follows. Tabs stay, and line breaks too when `newlines`."""

    def shown(match: re.Match[str]) -> str:
        ch = match.group()
        if ch in _NAMED_ESCAPES:
            return _NAMED_ESCAPES[ch]
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for the byte code - 0xDC00
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    if newlines:
        return "\n".join(_UNSEEN.sub(shown, line) for line in text.split("\n"))
    return _UNSEEN.sub(shown, text)


_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u3400-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_ENGLISH_WORDS = frozenset(
    "the of and to in a is that for on was with as by at from it he she they said his her has have had be are "
    "were not but an this which who will would been its their what when where why how did does many".split()
)
LANGUAGE_NAMES = {"en": "English", "ko": "Korean", "ja": "Japanese", "zh": "Chinese"}
WIDE_LANGUAGES = frozenset({"ko", "ja", "zh"})


def language_of(text: str) -> str | None:
    """The language a text is written in, as far as its letters tell: "ko", "ja" or "zh" by script (Hangul,
    kana, ideographs alone), "en" when its Latin words are English (a fifth of them among the commonest English
    words, question words among them), None when it cannot tell (another Latin-script language, too few
    letters). Script decides first: an English headline in a Korean article is an English line, a Korean
    article with English names Korean."""
    hangul, kana, han = len(_HANGUL.findall(text)), len(_KANA.findall(text)), len(_HAN.findall(text))
    words = _LATIN_WORD.findall(text)
    latin = sum(len(w) for w in words)
    wide = hangul + kana + han
    if wide and wide * 3 >= latin:  # a syllable or ideograph holds about what three Latin letters do
        if hangul >= max(kana, han * 0.5):
            return "ko"
        return "ja" if kana else "zh"
    if len(words) < 2:
        return None
    english = sum(1 for w in words if w.lower() in _ENGLISH_WORDS)
    return "en" if english * 5 >= len(words) or (len(words) <= 6 and english) else None


def day_in_words(iso: str | None) -> str | None:
    """The day an ISO date (YYYY-MM-DD, or the start of a longer one) names, in words: "3 January 2025"; None
    when it names no whole day."""
    digits = (iso or "")[:10]
    if len(digits) != 10 or not digits[:4].isdigit() or not digits[5:7].isdigit() or not digits[8:].isdigit():
        return None
    year, month, day = int(digits[:4]), int(digits[5:7]), int(digits[8:])
    if not 1 <= month <= 12:
        return None
    return f"{day} {calendar.month_name[month]} {year}"
