"""The chat in a real headless browser (Debian's chromium, driven by Playwright), as a reader uses it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import start_chat

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"),
]
# Without these, chromium tries Google's services at start and this machine's closed network refuses them.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ANSWER_TIMEOUT_MS = 60_000
# How many lines an element's text takes on screen (one box per line of each text run).
LINES_OF_TEXT = """e => { const r = document.createRange(); r.selectNodeContents(e);
    return new Set([...r.getClientRects()].filter(b => b.width > 0).map(b => Math.round(b.top))).size; }"""


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, chat_server):
    context = browser.new_context(viewport={"width": 1366, "height": 768})  # a common laptop screen
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(chat_server.url)
    page.wait_for_selector("#verbatim-question textarea")
    yield page
    context.close()


def ask(page, question: str, nth: int = 1):
    """Type a question, press Enter, wait for the nth bot reply; returns that reply's element."""
    page.locator("#verbatim-question textarea").fill(question)
    page.keyboard.press("Enter")
    reply = page.locator("#verbatim-chat .bot-row").nth(nth - 1)
    reply.wait_for(timeout=ANSWER_TIMEOUT_MS)
    return reply


def in_view(element, pane) -> float:
    """How many pixels of `element` show inside `pane` (both locators), vertically."""
    box, frame = element.bounding_box(), pane.bounding_box()
    return max(0.0, min(box["y"] + box["height"], frame["y"] + frame["height"]) - max(box["y"], frame["y"]))


def test_a_question_gets_the_passage_and_its_source(page, tmp_path):
    reply = ask(page, "Who was Kim Kyoung-soo's political mentor?")
    page.wait_for_timeout(500)  # the page script scrolls the question to the top
    text = reply.inner_text()
    assert text.startswith("5 passages from 1 article") and "Roh Moo-hyun" in text
    title = "Kim Kyoung-soo enters race championing Roh's Sejong-centered vision"
    assert f"{title} · publication unknown · date unknown · Read in its article" in text
    # The file and offsets are there for whoever opens "File and position", not in the reader's way.
    assert "002_4545c625dd368776.txt" not in text
    details = reply.locator("details.verbatim-details").first
    details.locator("summary").click()
    assert details.inner_text().startswith("File and position\n002_4545c625dd368776.txt · characters ")
    assert reply.locator("mark").count() >= 1 and reply.locator("blockquote").count() == 5
    # More than one passage in view on a 1366x768 screen, each with its marked sentence.
    pane = page.locator("#verbatim-chat .bubble-wrap")
    quotes = reply.locator("blockquote")
    assert in_view(quotes.nth(0), pane) > 80 and in_view(quotes.nth(1), pane) > 60
    assert in_view(quotes.nth(0).locator("mark").first, pane) > 10
    # The reply's accessible name is what it shows, not its Markdown.
    name = page.locator('#verbatim-chat [data-testid="bot"]').first.get_attribute("aria-label")
    assert name.startswith("Verbatim's answer: 5 passages from 1 article") and "**" not in name and "&#" not in name
    details.locator("summary").click()


def test_markup_in_an_article_shows_literally_and_never_runs(page):
    reply = ask(page, "What code was found on the Gwangju Folk Museum's defaced website?")
    text = reply.inner_text()
    assert "<script>alert('pwned')</script>" in text
    assert "<img src=x onerror=alert(1)>" in text
    assert "[claim your prize](javascript:alert(2))" in text and "**ALL YOUR BASE**" in text
    page.wait_for_timeout(500)
    assert page.dialogs == []
    assert reply.locator("script, img, iframe, a[href^='javascript']").count() == 0
    assert reply.locator("strong", has_text="ALL YOUR BASE").count() == 0


def test_two_readers_at_once_keep_their_own_conversations(browser, chat_server):
    pages = []
    for _ in range(2):
        context = browser.new_context()
        p = context.new_page()
        p.goto(chat_server.url)
        p.wait_for_selector("#verbatim-question textarea")
        pages.append(p)
    first = ["Which summit is Lee attending in Canada?", "Who was Kim Kyoung-soo's political mentor?"]
    for p, question in zip(pages, first):  # both in flight together
        p.locator("#verbatim-question textarea").fill(question)
        p.keyboard.press("Enter")
    for p in pages:
        p.locator("#verbatim-chat .bot-row").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    for p in pages:
        p.locator("#verbatim-question textarea").fill("and what about Japan?")
        p.keyboard.press("Enter")
    for p, question in zip(pages, first):
        follow_up = p.locator("#verbatim-chat .bot-row").nth(1)
        follow_up.wait_for(timeout=ANSWER_TIMEOUT_MS)
        assert f"Searched for: {question} and what about Japan?" in follow_up.inner_text()
        users = p.locator("#verbatim-chat .user-row").all_inner_texts()
        assert [u.strip() for u in users] == [question, "and what about Japan?"]
        follow_up.get_by_role("link", name="Edit and ask again").click()  # the searched text, ready to change
        assert p.locator("#verbatim-question textarea").input_value() == f"{question} and what about Japan?"
        p.context.close()


def open_in_article(page, reply, n: int):
    """Click passage n's "Read in its article"; returns the passage's first line and the marked quote."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    card = reply.locator(".verbatim-card").nth(n)
    first_line = card.locator("blockquote").text_content().strip().splitlines()[0].strip()
    marked = page.locator("#verbatim-context mark#verbatim-passage")
    for attempt in range(3):  # a click that lands while the reply is still being laid out can be lost: again
        card.get_by_text("Read in its article").click()
        try:
            page.wait_for_function(
                "line => document.getElementById('verbatim-passage')?.textContent.trim().startsWith(line)",
                arg=first_line[:40],
                timeout=ANSWER_TIMEOUT_MS // 3,
            )
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    page.wait_for_timeout(300)  # the page script scrolls the quote into view
    return first_line, marked


def test_a_passage_opens_beside_the_chat_titled_and_scrolled_to_the_quote(page):
    reply = ask(page, "What is the China-North Korea mutual defense pledge?")
    titles = reply.locator(".verbatim-attribution strong").all_inner_texts()
    assert len(set(titles)) >= 2, titles  # more than one article answers: each link must open its own
    for n in (0, next(i for i, t in enumerate(titles) if t != titles[0])):
        _, marked = open_in_article(page, reply, n)
        panel = page.locator("#verbatim-context")
        assert panel.locator("h3").inner_text() == titles[n]  # the article clicked, whatever was open before
        assert in_view(panel.locator("h3"), page.locator("body")) > 0  # its title and attribution in view
        assert in_view(marked, panel.locator(".verbatim-text")) > 20  # the quote scrolled into view
        beside = panel.bounding_box()
        assert beside["x"] > page.locator("#verbatim-chat").bounding_box()["x"] + 300  # next to the chat
        assert 0 <= beside["y"] < 768


def test_korean_headlines_show_in_a_korean_font_beside_the_answer(page, tmp_path):
    """The README's screenshot: an answer, and the article of its first passage with its Korean headlines.
    Without a CJK font (Debian's fonts-noto-cjk, which `.ci/run` installs) Hangul shows as empty boxes."""
    import subprocess

    fonts = subprocess.run(["fc-list", ":lang=ko", "family"], capture_output=True, text=True).stdout
    assert fonts.strip(), "no font for Korean: apt-get install -y fonts-noto-cjk"
    reply = ask(page, "Who is Lee Jae-myung's main rival according to the poll?")
    open_in_article(page, reply, 0)
    korean = page.locator("#verbatim-context .verbatim-text").get_by_text("이재명, 이미 완연한 국가지도자 행보").first
    assert in_view(korean, page.locator("#verbatim-context .verbatim-text")) > 0
    page.screenshot(path=str(Path(os.environ.get("VERBATIM_SCREENSHOT_DIR", tmp_path)) / "chat-answer.png"))


def test_a_narrow_screen_reads_an_article_over_the_chat_and_closes_it(browser, chat_server):
    context = browser.new_context(viewport={"width": 400, "height": 800})
    page = context.new_page()
    page.goto(chat_server.url)
    page.wait_for_selector("#verbatim-question textarea")
    reply = ask(page, "Who was Kim Kyoung-soo's political mentor?")
    question = page.locator("#verbatim-chat .user-row").first.bounding_box()
    chat = page.locator("#verbatim-chat").bounding_box()
    assert question["x"] >= chat["x"] and question["x"] + question["width"] <= chat["x"] + chat["width"] + 1
    assert page.locator("#verbatim-chat label").count() == 0  # no label for the question to overlap
    first_line, marked = open_in_article(page, reply, 0)
    side = page.locator("#verbatim-side").bounding_box()
    assert side["x"] <= 1 and side["y"] <= 1 and side["width"] >= 398  # over the page, not 1,000 px below it
    assert in_view(marked, page.locator("#verbatim-context .verbatim-text")) > 20
    page.get_by_role("button", name="Close the article").click()
    assert page.locator("#verbatim-side").evaluate("e => getComputedStyle(e).position") != "fixed"
    context.close()


def test_an_example_question_on_the_empty_chat_answers(page):
    page.get_by_text("Which summit is Lee attending in Canada?").click()
    reply = page.locator("#verbatim-chat .bot-row").first
    reply.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "Group of Seven" in reply.inner_text() or "G7" in reply.inner_text()


def test_uploaded_article_is_indexed_listed_and_answerable(page, chat_server, tmp_path):
    article = tmp_path / "lacquer_fair.txt"
    article.write_text(
        "Tongyeong lacquer fair draws record crowd\nPosted June 9, 2025\n"
        "The Tongyeong mother-of-pearl lacquer fair welcomed 52,000 visitors over three days, organisers said.\n"
        "Artisans from twelve workshops showed inlaid boxes, and a master craftsman demonstrated how abalone shell is "
        "cut into threads.\n"
    )
    bad = tmp_path / "scan.txt"
    bad.write_bytes(b"\x00\x01binary\x00")
    page.get_by_role("tab", name="Add articles").click()
    page.locator("#verbatim-upload input[type=file]").set_input_files([str(article), str(bad)])
    status = page.locator("#verbatim-upload-status")
    status.get_by_text("Added 1 article").wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "lacquer_fair.txt" in status.inner_text()
    assert "Rejected scan.txt" in status.inner_text()
    kept = chat_server.index.parent / f"{chat_server.index.name}-uploads" / "lacquer_fair.txt"
    assert kept.read_text() == article.read_text(), "kept beside the index"
    assert not (chat_server.corpus / "lacquer_fair.txt").exists(), "not in the corpus folder"
    page.get_by_role("tab", name="Sources").click()
    page.locator("#verbatim-sources").get_by_text("Tongyeong lacquer fair draws record crowd").wait_for()
    reply = ask(page, "How many visitors came to the Tongyeong lacquer fair?")
    assert (
        "52,000 visitors" in reply.inner_text() and "lacquer_fair.txt" in reply.locator("details").first.text_content()
    )


def test_an_open_tab_follows_articles_another_process_indexed(page, chat_server, tmp_path):
    """`rag index` run beside the app (from this test's process, another one than the app's): the open tab's
    Sources list shows the new article within seconds, clicking it opens that article (not whichever row used
    to be there), and questions find it."""
    from rag.serve.cli import main

    (chat_server.corpus / "kelp_harvest.txt").write_text(
        "Wando kelp harvest hits record\nPosted April 2, 2025\n"
        "Fishers on Wando island landed 31,000 tonnes of kelp this spring, the county office said.\n"
        "Warm winter water and new drying yards were credited for the rise.\n"
    )
    assert main(["index", str(chat_server.corpus), "--index", str(chat_server.index), "--quiet"]) == 0
    for header in ("Title", "File", "Date", "Passages"):  # readable headers: each on one line, never "Pas/sag/es"
        cell = page.locator("#verbatim-sources th span.header").filter(has_text=header).first
        assert cell.evaluate(LINES_OF_TEXT) == 1, header
    title = page.locator("#verbatim-sources").get_by_text("Wando kelp harvest hits record")
    title.wait_for(timeout=30_000)
    title.click()
    page.locator("#verbatim-context").get_by_text("31,000 tonnes of kelp").wait_for(timeout=ANSWER_TIMEOUT_MS)
    reply = ask(page, "How much kelp did Wando fishers land this spring?")
    assert "31,000 tonnes" in reply.inner_text() and "kelp_harvest.txt" in reply.locator("details").first.text_content()


def test_a_passage_copies_as_a_citation_and_the_answer_downloads_with_its_sources(browser, chat_server):
    """*Copy citation* puts the passage, exactly, and its attribution on the clipboard; the answer downloads as
    Markdown (every passage cited), JSON (what `/ask` gives) and CSL-JSON (the quoted articles)."""
    import json

    from gradio_client import Client

    context = browser.new_context(
        viewport={"width": 1366, "height": 768}, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    page.goto(chat_server.url)
    page.wait_for_selector("#verbatim-question textarea")
    question = "Who was Kim Kyoung-soo's political mentor?"
    reply = ask(page, question)
    reply.get_by_role("link", name="Copy citation").first.click()
    reply.get_by_role("link", name="Citation copied").wait_for(timeout=5_000)
    copied = page.evaluate("navigator.clipboard.readText()")
    first = Client(chat_server.url, verbose=False).predict(question, api_name="/ask")["passages"][0]
    quote, _, source = copied.rpartition("\n>\n> — ")
    assert quote == "\n".join(f"> {line}" if line.strip() else ">" for line in first["text"].split("\n"))
    assert source.startswith(f"“{first['title']}”") and f"characters {first['start']:,}–{first['end']:,}" in source
    files = {}
    for label in ("Answer as Markdown", "JSON", "CSL-JSON (reference managers)"):
        with page.expect_download() as download:
            page.get_by_role("button", name=label, exact=True).click()
        files[label] = Path(download.value.path()).read_text()
    assert files["Answer as Markdown"].startswith(f"# {question}\n") and copied in files["Answer as Markdown"]
    assert json.loads(files["JSON"])["passages"][0]["text"] == first["text"]
    items = json.loads(files["CSL-JSON (reference managers)"])
    assert items[0]["title"] == first["title"] and items[0]["id"] == first["source"]
    context.close()


def test_a_date_in_the_question_is_read_shown_and_removed_in_one_click(page):
    reply = ask(page, "What did the DPK leader say in January 2025?")
    line = reply.locator(".verbatim-dates")
    assert "Only articles published in January 2025" in line.inner_text()
    assert "001_33dd8276e80e8104.txt" in reply.locator("details").first.text_content()  # the dated article
    line.get_by_role("link", name="Ask without this").click()
    again = page.locator("#verbatim-chat .bot-row").nth(1)
    again.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#verbatim-chat .user-row").nth(1).inner_text().strip() == (
        "What did the DPK leader say in January 2025?"
    )
    assert again.locator(".verbatim-dates").count() == 0, "every date searched, nothing read from the words"


def test_passages_unlikely_to_answer_fold_under_one_line_that_opens_them(page):
    reply = ask(page, "What did Sanders say?")
    folded = reply.locator("details.verbatim-weaker")
    assert folded.count() == 1
    summary = folded.locator("> summary")
    label = summary.inner_text()
    weaker = int(label.split()[0])
    assert label == f"{weaker} weaker passage{'s' * (weaker != 1)} (unlikely to answer)" and weaker >= 1
    quotes = folded.locator("blockquote")
    assert quotes.count() == weaker and not quotes.first.is_visible()
    assert reply.locator("blockquote").first.is_visible()  # the answer itself stays in view
    assert all("●○○" in s for s in folded.locator("small").all_text_contents())
    summary.click()
    assert quotes.first.is_visible() and quotes.nth(weaker - 1).is_visible()


def test_the_sources_list_filters_as_the_reader_types(page):
    page.get_by_role("tab", name="Sources").click()
    caption = page.locator("#verbatim-sources-caption")
    caption.get_by_text(" articles").wait_for()
    everything = int(caption.inner_text().split(" of ")[1].split()[0])
    page.get_by_placeholder("Find by title or file").press_sequentially("Sejong", delay=40)  # no Enter
    caption.get_by_text("matching “Sejong”").wait_for(timeout=10_000)
    matching = int(caption.inner_text().split(" of ")[1].split()[0])
    titles = page.locator("#verbatim-sources tbody td:first-child").all_text_contents()
    assert 1 <= matching < everything and len(titles) == matching, (caption.inner_text(), titles)
    assert all("Sejong" in title for title in titles), titles


@pytest.mark.parametrize("width", [360, 400])
def test_the_sources_headers_and_search_box_fit_a_phone(browser, chat_server, width):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(chat_server.url)
    page.get_by_role("tab", name="Sources").click()
    page.locator("#verbatim-sources th span.header").first.wait_for()
    for header in page.locator("#verbatim-sources th span.header").all():
        name, overflow = header.evaluate("e => [e.innerText, e.scrollWidth - e.clientWidth]")
        assert overflow <= 0 and header.evaluate(LINES_OF_TEXT) == 1, (name, overflow)  # never "Passag"
    search = page.get_by_placeholder("Find by title or file")
    assert search.evaluate("e => e.scrollWidth <= e.clientWidth")
    table = page.locator("#verbatim-sources").bounding_box()
    assert table["x"] >= 0 and table["x"] + table["width"] <= width
    context.close()


def test_a_wrong_password_keeps_the_user_name_and_the_right_one_then_signs_in(browser, chat_server, tmp_path):
    server = start_chat(chat_server.corpus, chat_server.index, tmp_path / "app.log", env={"RAG_AUTH": "ana:s3cret"})
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        page = context.new_page()
        page.goto(server.url)
        user, password = page.locator("input[type=text]"), page.locator("input[type=password]")
        user.fill("ana")
        password.fill("not-it")
        page.keyboard.press("Enter")
        page.get_by_text("Incorrect Credentials").wait_for()
        page.wait_for_function("() => document.querySelector('input[type=text]')?.value === 'ana'")
        assert password.input_value() == "" and password.evaluate("e => e === document.activeElement")
        page.keyboard.type("s3cret")
        page.keyboard.press("Enter")
        page.wait_for_selector("#verbatim-question textarea")  # signed in with the kept name
        assert "Roh Moo-hyun" in ask(page, "Who was Kim Kyoung-soo's political mentor?").inner_text()
    finally:
        context.close()
        server.stop()
