"""The chat's answer markup shows article text literally, whatever markup the article carries.

Each reply is rendered the way the chat renders it (CommonMark with inline HTML, GFM line breaks) and the
resulting HTML is inspected: no element that the article's text asked for may exist, and the text a reader
sees must contain the passage character for character.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from rag.citations import citation
from rag.records import Answer, Copy, Document, Passage
from rag.serve.render import (
    ShownPassage,
    answer_markdown,
    answer_text,
    article_html,
    literal,
    location,
    quoted,
    strength,
)

HOSTILE = [
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "[click me](javascript:alert(1)) and [news](https://evil.example/)",
    "**not bold** __nor this__ *nor* _this_ ~~nor struck~~",
    "# not a heading\n## nor this",
    "    four spaces are not code\n\tnor a tab",
    "> not a quote inside a quote\n- not a list\n1. not numbered",
    "| a | b |\n|---|---|\n| not | a table |",
    "$$x^2$$ and $y$ and \\(z\\)",
    "<style>body{display:none}</style><mark>fake</mark>",
    "www.example.com and https://example.com/auto",
    "&amp; stays &amp;, &lt;b&gt; stays too, and a lone & too",
    "`code` and ```fence```",
    "<!-- comment --> <iframe src='https://evil.example'></iframe>",
    "Line one\\\nline two with a backslash break",
]


class Seen(HTMLParser):
    """Tags and visible text of rendered HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "br":
            self.text.append("\n")

    def handle_data(self, data):
        self.text.append(data)


def render(markdown: str) -> Seen:
    """What the chat does with a reply: CommonMark + inline HTML, a single newline is a line break."""
    html = MarkdownIt("commonmark", {"html": True, "breaks": True}).enable("table").enable("strikethrough")
    seen = Seen()
    seen.feed(html.render(markdown))
    return seen


def visible(seen: Seen) -> str:
    return "".join(seen.text)


def passage(text: str, url: str | None = "https://news.example/a?id=1&x=2", title: str = "A *title* <b>") -> Passage:
    return Passage(
        text=text, score=0.5, doc_id=1, title=title, source="news/<a>.txt", url=url, start=10, end=10 + len(text)
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_article_text_is_shown_literally_and_creates_no_elements(text):
    seen = render(quoted(text, None))
    tags = {t for t, _ in seen.tags}
    assert tags <= {"blockquote", "p", "br", "bdi"}, f"article text created {tags}"
    shown = visible(seen)
    for line in text.split("\n"):
        assert line.strip() in shown


@pytest.mark.parametrize("text", HOSTILE)
def test_highlighted_sentence_is_the_only_live_markup(text):
    middle = len(text) // 2
    seen = render(quoted(text, (0, middle)))
    assert [t for t, _ in seen.tags if t not in {"blockquote", "p", "br", "bdi"}] == ["mark"]


def test_a_right_to_left_override_in_an_article_reverses_nothing_after_it():
    """U+202E in a passage or a title stays inside its own bidi isolate: each line of the quote and each part of
    the attribution is one, closed before what follows."""
    p = passage("Harbour pilots \u202estopped work\nThe second line stays as it is.")
    p = Passage(**{**p.__dict__, "title": "Port \u202enews"})
    markdown = answer_markdown(Answer(query="q", found=True, passages=[p]), [ShownPassage(p, None, 1.2, 400)])
    assert "<bdi>Harbour pilots \u202estopped work</bdi>" in markdown
    assert "<bdi>The second line stays as it is.</bdi>" in markdown
    assert "<strong><bdi>Port \u202enews</bdi></strong>" in markdown
    assert render(markdown).tags.count(("bdi", {})) >= 4


def test_whole_reply_keeps_attribution_and_shows_title_url_and_source_literally():
    p = passage("The <script>x()</script> passage.\n\n> Second sentence here.")
    answer = Answer(query="q", found=True, passages=[p])
    markdown = answer_markdown(answer, [ShownPassage(p, (0, 31), 1.2, 400)])
    seen = render(markdown)
    links = [attrs for tag, attrs in seen.tags if tag == "a"]
    assert links == [
        {"href": "https://news.example/a?id=1&x=2", "target": "_blank", "rel": "noopener noreferrer nofollow"},
        {"href": f"#verbatim-read-1-10-{p.end}", "class": "verbatim-read"},  # this passage, in its article
        {"href": "#verbatim-cite", "class": "verbatim-cite"},  # copies the citation below
    ]
    [cited] = re.findall(r'<pre class="verbatim-cite-text">(.*?)</pre>', markdown, re.DOTALL)
    assert "\n" not in cited and html.unescape(cited) == citation(p)  # what the copy link takes, exactly
    assert html.unescape(cited).startswith("> The <script>x()</script> passage.\n>\n> > Second sentence here.\n>")
    assert not any(tag in {"script", "b", "em", "img"} for tag, _ in seen.tags)
    shown = visible(seen)
    for piece in ("The <script>x()</script> passage.", "A *title* <b>", "news/<a>.txt", "likely answers", "of 400"):
        assert piece in shown


def test_attribution_names_author_page_and_copies():
    p = Passage(
        text="Text.",
        score=0.5,
        doc_id=1,
        title="Report",
        source="report.pdf",
        url=None,
        start=0,
        end=5,
        published="2024-11-30",
        author="Gangneung City",
        page=2,
        copies=(Copy("mirror/report.pdf", "Report", None, True), Copy("wire.txt", "Other head", None, False)),
    )
    shown = visible(render(answer_markdown(Answer("q", True, [p]), [ShownPassage(p, None, 1.0, 100)])))
    assert "Report · publication unknown · by Gangneung City · 2024-11-30 · page 2" in shown
    assert "report.pdf · characters 0–5 of 100" in shown
    assert "Same story also in: mirror/report.pdf, wire.txt (near-duplicate)" in shown


def test_a_javascript_url_is_text_not_a_link():
    p = passage("Text.", url="javascript:alert(1)")
    seen = render(answer_markdown(Answer("q", True, [p]), [ShownPassage(p, None, 1.0, 100)]))
    assert [a["href"] for t, a in seen.tags if t == "a"] == ["#verbatim-read-1-10-15", "#verbatim-cite"]
    assert "javascript:alert(1)" in visible(seen)


def test_not_found_says_so_before_any_passage():
    p = Passage(**{**passage("Something unrelated.").__dict__, "score": 0.02})
    shown = visible(render(answer_markdown(Answer("q", False, [p]), [ShownPassage(p, None, 0.2, 100)])))
    assert shown.index("do not answer this") < shown.index("Something unrelated.")
    assert "unlikely to answer" in shown


@pytest.mark.parametrize(
    ("score", "relevance", "label"),
    [
        (0.61, 6.7, "●●● likely answers (61% chance)"),
        (0.5, 5.5, "●●● likely answers (50% chance)"),
        (0.11, 1.2, "●●○ may answer (11% chance)"),
        (0.49, 5.4, "●●○ may answer (49% chance)"),
        (0.55, 0.9, "●●○ may answer (55% chance)"),
        (0.05, 0.5, "●○○ unlikely to answer (5% chance)"),
    ],
)
def test_the_words_beside_a_passage_follow_its_number(score, relevance, label):
    """No label contradicts its probability: "likely answers" only at 50% or more, "unlikely" only under it
    (an 11% passage over the bar was once shown as a "strong match")."""
    p = Passage(**{**passage("Text.").__dict__, "score": score})
    assert strength(ShownPassage(p, None, relevance, 100)) == label


def test_follow_up_reply_shows_what_was_searched():
    p = passage("Text.")
    md = answer_markdown(Answer("q", True, [p]), [ShownPassage(p, None, 1.0, 100)], searched_for="Who is <X>? and Y")
    assert "Searched for: Who is <X>? and Y" in visible(render(md))


def test_location_names_characters_and_share_of_article():
    p = passage("x" * 100)
    assert location(p, 1000) == "characters 10–110 of 1,000 (1–11%)"


def test_article_view_escapes_text_and_marks_the_passage_at_its_offsets():
    text = "Intro <img src=x onerror=alert(1)>. The quoted passage. Outro."
    doc = Document(source="a.txt", text=text, title="<i>T</i>", url="https://e.example/")
    start = text.index("The quoted")
    seen = Seen()
    seen.feed(article_html(doc, start, start + len("The quoted passage.")))
    assert "img" not in {t for t, _ in seen.tags} and "i" not in {t for t, _ in seen.tags}
    assert ("mark", {"id": "verbatim-passage"}) in seen.tags
    assert text in visible(seen) and "<i>T</i>" in visible(seen)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
        | st.sampled_from("\n <>&*_[]()#`|$\\!~"),
        max_size=80,
    )
)
def test_any_text_round_trips_through_markdown(text):
    shown = visible(render(literal(text)))
    assert " ".join(shown.split()) == " ".join(text.split())


def test_the_reader_sees_title_publication_date_and_link_and_the_file_only_on_request():
    p = Passage(
        text="Turnout reached 4,812 voters.",
        score=0.7,
        doc_id=1,
        title="Poll closes",
        source="2025/002_4545c625dd368776.txt",
        url="https://www.koreaherald.com/article/1",
        start=1116,
        end=1145,
        published="2025-06-01",
    )
    seen = render(answer_markdown(Answer("q", True, [p]), [ShownPassage(p, None, 1.0, 4035, "The Korea Herald")]))
    tags = [t for t, _ in seen.tags]
    assert "details" in tags and "summary" in tags
    shown = visible(seen)
    line = shown[shown.index("Poll closes") :]
    assert line.startswith("Poll closes · The Korea Herald · 2025-06-01 · https://www.koreaherald.com/article/1")
    details = line[line.index("File and position") :]
    assert details.startswith("File and position2025/002_4545c625dd368776.txt · characters 1,116–1,145 of 4,035")
    assert "002_4545" not in line[: line.index("File and position")]


def test_common_punctuation_stays_readable_in_the_markdown_source():
    source = literal("Lee Jae-myung won 4,812 votes (27%), she said: 'a record'. Really?")
    assert source == "Lee Jae-myung won 4,812 votes (27%), she said: 'a record'. Really?"


@pytest.mark.parametrize("text", HOSTILE)
def test_the_plain_text_reply_carries_the_passage_exactly_and_no_markup(text):
    p = passage(text)
    reply = answer_text(Answer("q", True, [p]), [ShownPassage(p, (0, 3), 1.0, 400, "news.example")])
    quoted_lines = [line[2:] for line in reply.split("\n") if line.startswith("> ")]
    assert "\n".join(quoted_lines).strip() == "\n".join(x for x in text.split("\n") if x.strip()).strip()
    ours = "\n".join(line for line in reply.split("\n") if not line.startswith(">"))
    assert "&#" not in ours and "<strong>" not in ours and "<mark>" not in ours
    assert "— A *title* <b> · news.example · date unknown · https://news.example/a?id=1&x=2" in reply
    assert "  news/<a>.txt · characters 10–" in reply


def test_the_terminal_can_mark_the_sentence_without_touching_the_rest():
    p = passage("First sentence. Second one.")
    reply = answer_text(Answer("q", True, [p]), [ShownPassage(p, (16, 27), 1.0, 400)], marked=("[", "]"))
    assert "> First sentence. [Second one.]" in reply


def ranked(*scored: tuple[str, float, float]) -> list[ShownPassage]:
    """Shown passages in rank order from (text, probability, relevance over the bar)."""
    return [
        ShownPassage(Passage(**{**passage(text).__dict__, "score": score}), None, relevance, 1000)
        for text, score, relevance in scored
    ]


FOLDING = [
    ("Kim Kyoung-soo was pardoned on Liberation Day in 2024.", 0.62, 6.0),
    ("He served as a lawmaker for Gimhae before he became governor.", 0.14, 1.3),
    ("The party's primary will be held in three rounds across the regions.", 0.04, 0.4),
    ("Polls closed at 8 p.m. and counting began at once.", 0.03, 0.3),
]


def test_passages_unlikely_to_answer_after_a_better_one_are_folded_under_one_line():
    seen = render(answer_markdown(Answer("q", True, [s.passage for s in ranked(*FOLDING)]), ranked(*FOLDING)))
    assert seen.tags.count(("details", {"class": "verbatim-weaker"})) == 1
    shown = visible(seen)
    summary = shown.index("2 weaker passages (unlikely to answer)")
    assert shown.index(FOLDING[0][0]) < shown.index(FOLDING[1][0]) < summary < shown.index(FOLDING[2][0])
    assert shown.index("4. ●○○") > shown.index(FOLDING[2][0])  # numbering goes on inside the fold
    markdown = answer_markdown(Answer("q", True, []), ranked(*FOLDING))
    fold = markdown.index('<details class="verbatim-weaker">')
    assert markdown.index(FOLDING[1][0]) < fold < markdown.index(FOLDING[2][0]) < markdown.rindex("</details>")


def test_nothing_is_folded_when_no_passage_is_better_or_a_stronger_one_comes_later():
    all_weak = ranked(FOLDING[2], FOLDING[3])
    folds = ("details", {"class": "verbatim-weaker"})
    assert folds not in render(answer_markdown(Answer("q", False, []), all_weak)).tags
    stronger_last = ranked(FOLDING[0], FOLDING[2], FOLDING[1])
    assert folds not in render(answer_markdown(Answer("q", True, []), stronger_last)).tags
    one_weak = answer_markdown(Answer("q", True, []), ranked(FOLDING[0], FOLDING[3]))
    assert "1 weaker passage (unlikely to answer)" in visible(render(one_weak))


def test_the_plain_text_reply_names_the_weaker_passages_and_still_carries_them_all():
    text = answer_text(Answer("q", True, []), ranked(*FOLDING))
    heading = text.index("2 weaker passages, unlikely to answer:")
    assert text.index(FOLDING[1][0]) < heading < text.index("3. ●○○") < text.index(FOLDING[3][0])
    assert "weaker" not in answer_text(Answer("q", True, []), ranked(FOLDING[0], FOLDING[1]))
