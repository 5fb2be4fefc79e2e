// The chat page's behaviour that Gradio's components do not give: opening a passage in its article from a
// link in an answer, scrolling answers and articles inside their own panels, and giving each answer an
// accessible name that is its text rather than its Markdown source.
(() => {
  const READ = "#verbatim-read-";

  // The hidden "open" button's event reads the passage from here (its `js` returns it as the input).
  let target = "";

  function openPassage(href) {
    target = href.slice(READ.length);
    document.getElementById("verbatim-open")?.click();
    document.getElementById("verbatim-side")?.classList.add("verbatim-reading");
  }

  // "Copy citation": the card's citation, as the server wrote it, to the clipboard. Over plain http from another
  // machine the Clipboard API is not offered, so a selected textarea and the copy command stand in.
  function copyCitation(link) {
    const text = link.closest(".verbatim-card")?.querySelector(".verbatim-cite-text")?.textContent ?? "";
    const done = () => {
      link.textContent = "Citation copied";
      setTimeout(() => (link.textContent = "Copy citation"), 2000);
    };
    if (navigator.clipboard?.writeText) {
      navigator.clipboard.writeText(text).then(done, () => copyBySelection(text) && done());
    } else if (copyBySelection(text)) {
      done();
    }
  }

  function copyBySelection(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }

  // "Ask without this": that reply's question asked again as written (no dates or source read from its
  // words), through the hidden button whose event reads the question from here.
  let asWritten = "";

  function askAsWritten(link) {
    const row = link.closest(".bot-row");
    const rows = [...document.querySelectorAll("#verbatim-chat .user-row, #verbatim-chat .bot-row")];
    const before = rows.slice(0, rows.indexOf(row)).filter((r) => r.classList.contains("user-row")).pop();
    asWritten = before?.innerText.trim() ?? "";
    if (asWritten) document.getElementById("verbatim-ask-as-written")?.click();
  }

  document.addEventListener(
    "click",
    (event) => {
      const edit = event.target.closest?.('a[href="#verbatim-edit-search"]');
      if (edit) {
        // The text a follow-up was searched with, in the question box to change and ask as it is.
        event.preventDefault();
        event.stopPropagation();
        const searched = edit.parentElement?.querySelector(".verbatim-searched")?.textContent ?? "";
        const input = document.querySelector("#verbatim-question textarea");
        if (input && searched) {
          input.value = searched;
          input.dispatchEvent(new Event("input", { bubbles: true }));
          input.focus();
        }
        return;
      }
      const dates = event.target.closest?.('a[href="#verbatim-as-written"]');
      if (dates) {
        event.preventDefault();
        event.stopPropagation();
        askAsWritten(dates);
        return;
      }
      const cite = event.target.closest?.('a[href="#verbatim-cite"]');
      if (cite) {
        event.preventDefault();
        event.stopPropagation();
        copyCitation(cite);
        return;
      }
      const link = event.target.closest?.(`a[href^="${READ}"]`);
      if (link) {
        event.preventDefault();
        event.stopPropagation();
        openPassage(link.getAttribute("href"));
        return;
      }
      if (event.target.closest?.(".verbatim-close")) {
        document.getElementById("verbatim-side")?.classList.remove("verbatim-reading");
      }
    },
    true,
  );

  // Gradio names a reply by its raw Markdown; a screen reader should read what the page shows.
  function nameReplies() {
    document.querySelectorAll('#verbatim-chat [data-testid="bot"]').forEach((el) => {
      const name = "Verbatim's answer: " + el.innerText.trim();
      if (el.getAttribute("aria-label") !== name) el.setAttribute("aria-label", name);
    });
  }

  // A quote longer than its box opens at its marked sentence, and says that it scrolls.
  function openQuotes() {
    document.querySelectorAll("#verbatim-chat .verbatim-card blockquote:not([data-opened])").forEach((quote) => {
      if (!quote.clientHeight) return; // not laid out yet
      quote.dataset.opened = "1";
      if (quote.scrollHeight <= quote.clientHeight + 2) return;
      quote.classList.add("verbatim-more");
      quote.tabIndex = 0;
      quote.title = "The whole passage: scroll for the rest";
      const mark = quote.querySelector("mark");
      if (mark) {
        const below = mark.getBoundingClientRect().top - quote.getBoundingClientRect().top;
        quote.scrollTop = Math.max(0, below - parseFloat(getComputedStyle(quote).lineHeight));
      }
    });
  }

  new MutationObserver(() => {
    nameReplies();
    openQuotes();
  }).observe(document.documentElement, {
    subtree: true,
    childList: true,
    characterData: true,
    attributes: true,
    attributeFilter: ["aria-label"],
  });

  window.verbatim = {
    readTarget: () => target,
    asWrittenQuestion: () => asWritten,
    // The newest question at the top of the conversation, its answer's first passages under it.
    showAnswerStart() {
      setTimeout(() => {
        const row = [...document.querySelectorAll("#verbatim-chat .user-row")].pop();
        const pane = row?.closest(".bubble-wrap");
        if (pane) pane.scrollTop += row.getBoundingClientRect().top - pane.getBoundingClientRect().top;
      }, 100);
    },
    // The article's text scrolled to the quote, inside its panel; the panel brought into view.
    showQuote() {
      setTimeout(() => {
        const mark = document.getElementById("verbatim-passage");
        const text = mark?.closest(".verbatim-text");
        if (text) {
          const below = mark.getBoundingClientRect().top - text.getBoundingClientRect().top;
          text.scrollTop += below - text.clientHeight / 4;
        }
        const panel = document.getElementById("verbatim-side");
        const top = panel?.getBoundingClientRect().top ?? 0;
        if (panel && (top < 0 || top > window.innerHeight / 2)) panel.scrollIntoView({ block: "start" });
      }, 80);
    },
  };
})();
