"""Names across scripts: a Korean question's 김경수, 킵초게 or 모가디슈 and the English passage's Kim Kyung-soo,
Kipchoge or Mogadishu, matched by the consonants both spellings keep.

The multilingual encoder places a Korean question near English passages on its topic, but it reads names poorly
(measured: its misses on Korean questions about English news are mostly names), and no other arm can see a
name written in another script. Korean spells foreign names by sound and English spells Korean names by sound,
so the two spellings keep the same consonants in the same order, whatever vowels and epenthetic 으 they add:
each word is reduced to a skeleton of consonant classes (k/g, t/d, p/b/f/v, s/z/j/ch, l/r, m, n, ng), and a
Hangul word matches an English name (one capitalised word or a run of them: Kim Kyung-soo, Xi Jinping) whose
skeleton is the same. Short skeletons are weak evidence (two classes match many words), so they must cover a
whole Hangul word, less a particle, and an English word of their own; longer ones may be a Hangul word's
beginning (버몬트주 is Vermont and a state).
"""

from __future__ import annotations

import re
from functools import lru_cache

from rag.text import STOP_WORDS

Unit = tuple[str, str]  # ("C", consonant class) or ("V", a Korean vowel's index / an English vowel group)

# Hangul syllable = 0xAC00 + (initial * 21 + vowel) * 28 + final
_INITIALS = ("K", "K", "N", "T", "T", "L", "M", "P", "P", "S", "S", "", "S", "S", "S", "K", "T", "P", "")
_FINALS = (
    "", "K", "K", "K", "N", "N", "N", "T", "L", "K", "M", "L", "L", "L", "P", "L",
    "M", "P", "P", "T", "T", "G", "T", "T", "K", "T", "P", "",
)  # fmt: skip
# The English vowel letters each Korean vowel may stand for, in jamo order (ㅏ ㅐ ㅑ ㅒ ㅓ ㅔ ㅕ ㅖ ㅗ ㅘ ㅙ
# ㅚ ㅛ ㅜ ㅝ ㅞ ㅟ ㅠ ㅡ ㅢ ㅣ): lenient, since English spells one sound many ways (ㅓ is Ardern's e,
# Russia's u, Jacinda's a).
_VOWEL_LETTERS = (
    "aou", "ae", "aiye", "aey", "aeiouy", "eai", "eyiou", "eyi", "oau", "aou", "ae",
    "oe", "oyi", "uoy", "oua", "e", "iue", "uyie", "eiu", "iue", "iey",
)  # fmt: skip
_EU, _I = 18, 20  # ㅡ, the vowel Korean adds after a consonant English ends a syllable with; ㅣ
_PARTICLES = (
    "으로부터", "에서부터", "에게서", "으로서", "으로써", "이라는", "이라고", "에서는", "에서의", "에게는",
    "께서", "에서", "에게", "으로", "로서", "라는", "라고", "까지", "부터", "이며", "이고", "처럼", "보다",
    "은", "는", "이", "가", "을", "를", "의", "에", "와", "과", "로", "도", "만", "께", "랑",
)  # fmt: skip
_LATIN_CLASS = {
    "b": "P", "p": "P", "f": "P", "v": "P", "d": "T", "t": "T", "k": "K", "q": "K",
    "j": "S", "s": "S", "z": "S", "l": "L", "m": "M", "n": "N",
}  # fmt: skip
_QUESTION_WORDS = ("어디", "누구", "누가", "무엇", "무슨", "언제", "어떤", "어떻게", "어느", "얼마", "몇", "왜")
MIN_PREFIX_CLASSES = 3  # a skeleton this long may match the beginning of a Hangul word
MAX_COST = 0.5  # what a match of three consonant classes or more may cost in vowels (none for two)
MAX_VARIANTS = 16
MAX_NAME_WORDS = 3

_HAS_CAPITAL = re.compile(r"[A-Z]")
_CAPITAL_WORD = re.compile(r"[A-Z][A-Za-z'’]*(?:-[A-Za-z'’]+)*")
_HANGUL_WORD = re.compile(r"[\uac00-\ud7a3]+")
_LETTERS = re.compile(r"[a-z]+")
_VOWELS = frozenset("aeiouy")


def _collapse(units: list[Unit]) -> tuple[Unit, ...]:
    """Neighbouring equal consonant classes as one ('LL' in 말레이시아, 'ss' in Jessica): each script doubles
    letters where the other does not."""
    out: list[Unit] = []
    for unit in units:
        if unit[0] == "C" and out and out[-1] == unit:
            continue
        out.append(unit)
    return tuple(out)


def skeleton(units: tuple[Unit, ...]) -> str:
    return "".join(value for kind, value in units if kind == "C")


@lru_cache(maxsize=65536)
def hangul_units(word: str) -> tuple[Unit, ...]:
    """A run of Hangul syllables as consonant classes and vowels (ㅇ at the start of a syllable is silent; ㅎ
    is dropped, as English often drops h)."""
    units: list[Unit] = []
    for ch in word:
        code = ord(ch) - 0xAC00
        if not 0 <= code < 11172:
            continue
        initial, vowel, final = _INITIALS[code // 588], code // 28 % 21, _FINALS[code % 28]
        if initial:
            units.append(("C", initial))
        units.append(("V", str(vowel)))
        if final:
            units.append(("C", final))
    return _collapse(units)


@lru_cache(maxsize=65536)
def latin_units(word: str) -> tuple[tuple[Unit, ...], ...]:
    """One English word as consonant classes and vowel groups, spelt every way its letters may sound to a
    Korean ear (g before e/i as k or j; th as t or s; ng before a vowel as ng or ng-g; r before a consonant
    silent or sounded)."""
    w = word.lower()
    variants: list[list[Unit]] = [[]]

    def add(*options: str) -> None:
        nonlocal variants
        grown = [v + [("C", c) for c in o] for v in variants for o in options]
        variants = grown[:MAX_VARIANTS]

    i = 0
    while i < len(w):
        c, pair = w[i], w[i : i + 2]
        nxt = w[i + 1] if i + 1 < len(w) else "$"
        if c in _VOWELS:
            j = i
            while j < len(w) and w[j] in _VOWELS:
                j += 1
            for v in variants:
                v.append(("V", w[i:j]))
            i = j
        elif c in "wh":
            i += 1
        elif pair in ("ph", "th", "sh", "ch", "ts", "tz", "zh", "ck", "gh"):
            add(*{"ph": ("P",), "th": ("T", "S"), "ck": ("K",), "gh": ("K" if i == 0 else "",)}.get(pair, ("S",)))
            i += 2
        elif pair == "ng":
            after = w[i + 2] if i + 2 < len(w) else "$"
            add("G", "GK") if after in _VOWELS else add("G" if after == "$" else "GK")
            i += 2
        elif c == "n" and nxt in ("g", "k"):
            add("G")
            i += 1
        elif c == "c":
            add("S" if nxt in _VOWELS and nxt in "eiy" else "K")
            i += 1
        elif c == "g":
            add("K", "S") if nxt in ("e", "i", "y") else add("K")
            i += 1
        elif c == "x":
            add("S" if i == 0 else "KS")
            i += 1
        elif c == "r":  # before a consonant silent in English (Vermont, 버몬트), sounded in Spanish (Ortiz, 오르티스)
            add("L") if nxt in _VOWELS else add("", "L")
            i += 1
        else:
            add(_LATIN_CLASS.get(c, ""))
            i += 1
    return tuple(_collapse(v) for v in variants)


@lru_cache(maxsize=65536)
def name_units(name: str) -> tuple[tuple[Unit, ...], ...]:
    """An English name of one or more words (Kim Kyung-soo) as one run of units, every variant of each word;
    a name starting with l or r also without it, since Korean drops an initial r/l sound (Lee and Rhee are
    이, Ryu is 유)."""
    runs: list[tuple[Unit, ...]] = [()]
    for part in _LETTERS.findall(name.lower()):
        runs = [r + v for r in runs for v in latin_units(part)][:MAX_VARIANTS]
    out = {_collapse(list(r)) for r in runs}
    out |= {r[1:] for r in out if r and r[0] == ("C", "L")}
    return tuple(r for r in out if len(skeleton(r)) >= 2)


def vowel_cost(korean: tuple[Unit, ...], english: tuple[Unit, ...]) -> float:
    """What aligning two spellings with the same consonants costs in vowels: a Korean vowel English has no
    letter for costs 1 (none for ㅡ, which Korean adds between consonants, for a vowel right after another,
    which English writes as one group, and for ㅣ after a final sh/ch/j), a vowel of each side that the other
    cannot spell costs 1, an English vowel group Korean leaves out costs 0.5 (a final e nothing)."""
    inf = float("inf")
    n, m = len(korean), len(english)
    best = [[inf] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            here = best[i][j]
            if here == inf:
                continue
            k = korean[i] if i < n else None
            e = english[j] if j < m else None
            if k and e and k[0] == e[0] == "C" and k[1] == e[1]:
                best[i + 1][j + 1] = min(best[i + 1][j + 1], here)
            if k and k[0] == "V":
                if e and e[0] == "V":
                    # A vowel before another is half of one sound (나이 is Nigeria's i), and a final silent e
                    # fits any vowel Korean writes there (우크라이나, Ukraine).
                    letters = _VOWEL_LETTERS[int(k[1])]
                    if i + 1 < n and korean[i + 1][0] == "V":
                        letters += _VOWEL_LETTERS[int(korean[i + 1][1])]
                    fits = (j == m - 1 and e[1] == "e") or any(letter in letters for letter in e[1])
                    best[i + 1][j + 1] = min(best[i + 1][j + 1], here + (0.0 if fits else 1.0))
                after_vowel = i > 0 and korean[i - 1][0] == "V"
                final_i = int(k[1]) == _I and i == n - 1 and i > 0 and korean[i - 1] == ("C", "S")
                free = int(k[1]) == _EU or after_vowel or final_i
                best[i + 1][j] = min(best[i + 1][j], here + (0.0 if free else 1.0))
            if e and e[0] == "V":
                silent = j == m - 1 and e[1] == "e"
                best[i][j + 1] = min(best[i][j + 1], here + (0.0 if silent else 0.5))
    return best[n][m]


def hangul_candidates(word: str) -> list[str]:
    """The parts of a Hangul word that may be a name: the word less a particle, when two syllables or more are
    left; the word itself, unless it is two syllables ending like a particle (수는, 곳은: a noun and its
    particle); and its beginnings of MIN_PREFIX_CLASSES consonants or more (버몬트 in 버몬트주)."""
    out = []
    stripped = False
    for particle in _PARTICLES:
        if word.endswith(particle) and len(word) - len(particle) >= 2:
            out.append(word[: -len(particle)])
        stripped = stripped or word.endswith(particle)
    if len(word) >= 3 or not stripped:
        out.append(word)
    for end in range(2, len(word)):
        if len(skeleton(hangul_units(word[:end]))) >= MIN_PREFIX_CLASSES:
            out.append(word[:end])
    return list(dict.fromkeys(out))


def english_names(text: str) -> set[str]:
    """The capitalised words of `text` (a hyphenated one as one: Kyung-soo) and the runs of two or three of them
    with single spaces between (Kim Kyung-soo, Xi Jinping), less common words that start a sentence ("The",
    "In") and short acronyms."""
    names: set[str] = set()
    run: list[str] = []
    last_end = -2
    for match in _CAPITAL_WORD.finditer(text):
        word = match.group()
        if match.start() != last_end + 1 or text[last_end] != " ":
            run = []
        last_end = match.end()
        run.append(word)
        if len(run) > MAX_NAME_WORDS:
            run.pop(0)
        if not (word.lower() in STOP_WORDS or word.isupper() and len(word) <= 3):
            names.add(word)
        for i in range(len(run) - 1):
            names.add(" ".join(run[i:]))
    return names


def hangul_words(text: str) -> list[str]:
    """The Hangul words of `text` that may hold a name: two syllables or more, not a question word (어디인가
    would otherwise be Ardern)."""
    return [w for w in _HANGUL_WORD.findall(text) if len(w) >= 2 and not w.startswith(_QUESTION_WORDS)]


def spelt_alike(korean: str, english: str) -> bool:
    """Whether a Hangul word (or its part) and an English name are one name in two scripts: the same consonant
    classes, and vowels that fit (MAX_COST; none for two consonants, which many words share)."""
    k = hangul_units(korean)
    key = skeleton(k)
    if len(key) < 2:
        return False
    limit = MAX_COST if len(key) >= MIN_PREFIX_CLASSES else 0.0
    return any(skeleton(e) == key and vowel_cost(k, e) <= limit for e in name_units(english))


class NameBridge:
    """A question's names, ready to be looked for in many passages: its Hangul words' parts by skeleton, and its
    capitalised English names by skeleton, worked out once per question."""

    def __init__(self, question: str) -> None:
        self.hangul: dict[str, list[tuple[str, str]]] = {}  # skeleton -> (word, part)
        for word in hangul_words(question):
            for part in hangul_candidates(word):
                self.hangul.setdefault(skeleton(hangul_units(part)), []).append((word, part))
        self.english: dict[str, list[str]] = {}
        for name in english_names(question):
            for key in _name_skeletons(name):
                self.english.setdefault(key, []).append(name)

    def __bool__(self) -> bool:
        return bool(self.hangul or self.english)

    def shared(self, passage: str) -> dict[str, tuple[str, str]]:
        """The question's words in one script (Hangul, or capitalised English) that name something `passage`
        names in the other, each with the name in both spellings (Hangul first: 김경수, Kim Kyung-soo); where
        several fit one word, the longest English name and the shortest Hangul part."""
        out: dict[str, tuple[str, str]] = {}

        def keep(word: str, pair: tuple[str, str]) -> None:  # the longest English name, the Hangul less its particle
            if word not in out or (len(pair[1]), -len(pair[0])) > (len(out[word][1]), -len(out[word][0])):
                out[word] = pair

        if self.hangul and _HAS_CAPITAL.search(passage):
            for name in english_names(passage):
                for key in _name_skeletons(name):
                    for word, part in self.hangul.get(key, ()):
                        if spelt_alike(part, name):
                            keep(word, (part, name))
        if self.english:
            for word in hangul_words(passage):
                for part in hangul_candidates(word):
                    for name in self.english.get(skeleton(hangul_units(part)), ()):
                        if spelt_alike(part, name):
                            keep(name, (part, name))
        return out


@lru_cache(maxsize=65536)
def _name_skeletons(name: str) -> frozenset[str]:
    return frozenset(skeleton(u) for u in name_units(name))
