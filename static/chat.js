// Byline chat: streams /api/ask over server-sent events and shows cited passages.
// Every piece of article or answer text goes into the page through textContent, never as HTML.
"use strict";

(function () {
  const form = document.getElementById("ask-form");
  const question = document.getElementById("question");
  const send = document.getElementById("send");
  const turns = document.getElementById("turns");
  const panel = document.getElementById("panel");
  const history = [];          // earlier turns, sent with each question so follow-ups work
  const articles = new Map();  // article id -> article JSON (cache)
  let openedBy = null;         // the marker button that opened the panel, to return focus

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // With BYLINE_API_KEYS set, the login cookie (HttpOnly, sent with every same-origin fetch) carries the key.
  const headers = () => ({ "Content-Type": "application/json" });

  function filters() {
    const after = document.getElementById("after").value;
    const before = document.getElementById("before").value;
    const sources = Array.from(document.getElementById("sources").selectedOptions).map((o) => o.value);
    if (!after && !before && sources.length === 0) return null;
    return { after: after || null, before: before || null, sources: sources };
  }

  function safeUrl(url) {
    return /^https?:\/\//i.test(url || "") ? url : null;
  }

  function articleHref(id, start, end) {
    let href = "/articles/" + encodeURIComponent(id);
    if (Number.isInteger(start) && Number.isInteger(end)) href += "?start=" + start + "&end=" + end;
    return href;
  }

  // --- server-sent events over fetch ---------------------------------------------------------
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  // --- rendering -----------------------------------------------------------------------------
  function citeButton(n, citation) {
    const button = el("button", "cite", "[" + n + "]");
    button.type = "button";
    button.dataset.n = String(n);
    button.setAttribute("aria-label", "Source " + n + (citation ? ": " + citation.title : ""));
    if (!citation) button.disabled = true;
    else button.addEventListener("click", () => openPanel(citation, button));
    return button;
  }

  // Text with [n] markers becomes text nodes and real buttons.
  function appendWithMarkers(parent, text, byNumber) {
    const seen = new Set();
    const pattern = /\[(\d+)\]/g;
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      const n = Number(match[1]);
      parent.appendChild(citeButton(n, byNumber.get(n)));
      seen.add(n);
      last = pattern.lastIndex;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
    return seen;
  }

  function renderNearest(box, nearest) {
    if (!nearest || nearest.length === 0) return;
    box.appendChild(el("p", "nearest-title", "Nearest articles:"));
    const list = el("ul", "nearest");
    for (const hit of nearest) {
      const item = el("li");
      const link = el("a", null, hit.title || hit.article_id);
      link.href = articleHref(hit.article_id, hit.start, hit.end);
      item.appendChild(link);
      const meta = [hit.source, (hit.published || "").slice(0, 10)].filter(Boolean).join(" · ");
      if (meta) item.appendChild(el("span", "meta", " " + meta));
      list.appendChild(item);
    }
    box.appendChild(list);
  }

  function renderAnswer(box, answer) {
    box.replaceChildren();
    const byNumber = new Map(answer.citations.map((c) => [c.n, c]));
    if (answer.abstained) {
      const note = el("div", "note abstained");
      note.setAttribute("role", "note");
      note.appendChild(el("strong", null, "No answer from the archive. "));
      note.appendChild(document.createTextNode(answer.message || answer.answer || "The sources do not answer this."));
      renderNearest(note, answer.nearest);
      box.appendChild(note);
      return;
    }
    const body = el("p", "answer-text");
    let unsupported = 0;
    const sentences = answer.sentences && answer.sentences.length ? answer.sentences : [{ text: answer.answer, citations: [], supported: true }];
    for (const sentence of sentences) {
      const span = el("span", sentence.supported ? "sentence" : "sentence unsupported");
      const seen = appendWithMarkers(span, sentence.text, byNumber);
      for (const n of sentence.citations || []) if (!seen.has(n)) span.appendChild(citeButton(n, byNumber.get(n)));
      if (!sentence.supported) {
        unsupported += 1;
        span.appendChild(el("span", "badge", "unsupported"));
      }
      body.appendChild(span);
      body.appendChild(document.createTextNode(" "));
    }
    box.appendChild(body);
    if (answer.mode === "extractive") box.appendChild(el("p", "note extractive", answer.message || "Quoted from the sources: the model's own answer could not be checked."));
    else if (answer.message) box.appendChild(el("p", "note", answer.message));
    if (unsupported) box.appendChild(el("p", "note unsupported-note", (unsupported === 1 ? "1 sentence marked “unsupported” is" : unsupported + " sentences marked “unsupported” are") + " not backed by any cited passage."));
    if (answer.citations.length) {
      const list = el("ol", "sources");
      for (const c of answer.citations) {
        const item = el("li");
        item.appendChild(citeButton(c.n, c));
        item.appendChild(el("span", "source-title", " " + (c.title || c.article_id)));
        const meta = [c.source, (c.published || "").slice(0, 10)].filter(Boolean).join(" · ");
        if (meta) item.appendChild(el("span", "meta", " — " + meta));
        list.appendChild(item);
      }
      box.appendChild(list);
    }
  }

  // --- the source panel ----------------------------------------------------------------------
  async function fetchArticle(id) {
    if (!articles.has(id)) {
      const response = await fetch("/api/articles/" + encodeURIComponent(id), { headers: headers() });
      if (!response.ok) throw new Error("article " + response.status);
      articles.set(id, await response.json());
    }
    return articles.get(id);
  }

  function passageNodes(text, citation) {
    // Show the cited chunk (found in the article) with the supporting span marked.
    let from = text.indexOf(citation.chunk_text);
    let to = from + citation.chunk_text.length;
    if (from < 0 || citation.span_start < from || citation.span_end > to) {
      from = Math.max(0, citation.span_start - 300);
      to = Math.min(text.length, citation.span_end + 300);
    }
    const mark = el("mark", "span", text.slice(citation.span_start, citation.span_end));
    return [document.createTextNode(text.slice(from, citation.span_start)), mark, document.createTextNode(text.slice(citation.span_end, to))];
  }

  async function openPanel(citation, button) {
    openedBy = button;
    document.getElementById("panel-title").textContent = "[" + citation.n + "] " + (citation.title || "Source");
    document.getElementById("panel-meta").textContent = [citation.source, (citation.published || "").slice(0, 10)].filter(Boolean).join(" · ");
    const passage = document.getElementById("panel-passage");
    passage.replaceChildren(document.createTextNode(citation.chunk_text));
    const local = document.getElementById("panel-local");
    local.href = articleHref(citation.article_id, citation.span_start, citation.span_end);
    const original = document.getElementById("panel-url");
    const url = safeUrl(citation.url);
    original.hidden = !url;
    if (url) original.href = url;
    panel.hidden = false;
    document.body.classList.add("panel-open");
    document.getElementById("panel-close").focus();
    try {
      const article = await fetchArticle(citation.article_id);
      passage.replaceChildren(...passageNodes(article.text, citation));
      // Scroll only the passage box (scrollIntoView would also scroll the panel and the page).
      const mark = passage.querySelector("mark");
      if (mark) passage.scrollTop = Math.max(0, mark.offsetTop - 24);
    } catch (error) {
      passage.appendChild(el("span", "meta", " (the full article could not be loaded: " + error.message + ")"));
    }
  }

  function closePanel() {
    if (panel.hidden) return;
    panel.hidden = true;
    document.body.classList.remove("panel-open");
    if (openedBy) openedBy.focus();
  }

  // --- asking ----------------------------------------------------------------------------------
  async function errorText(response) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (ignored) { /* keep the status text */ }
    if (response.status === 429) detail += " (retry after " + (response.headers.get("Retry-After") || "a few") + " s)";
    if (response.status === 401) detail += " — your login has expired: reload the page to log in again.";
    return "Error " + response.status + ": " + detail;
  }

  async function ask(text) {
    const userTurn = el("li", "turn user");
    userTurn.appendChild(el("p", "question", text));
    const botTurn = el("li", "turn assistant");
    botTurn.dataset.state = "waiting";
    const box = el("div", "answer");
    const live = el("p", "live", "");
    box.appendChild(live);
    botTurn.appendChild(box);
    turns.append(userTurn, botTurn);
    botTurn.scrollIntoView({ block: "end" });
    const payload = { question: text, history: history.slice(), stream: true, filters: filters() };
    let final = null;
    try {
      const response = await fetch("/api/ask", { method: "POST", headers: headers(), body: JSON.stringify(payload) });
      if (!response.ok) throw new Error(await errorText(response));
      await readEvents(response, (name, data) => {
        if (name === "delta") {
          botTurn.dataset.state = "streaming";
          live.textContent += data.text;
        } else if (name === "final") {
          final = data;
          renderAnswer(box, data);
        } else if (name === "error") {
          throw new Error(data.detail);
        }
      });
      if (!final) throw new Error("the answer stream ended early");
      history.push({ role: "user", content: text }, { role: "assistant", content: final.answer });
      botTurn.dataset.state = final.abstained ? "abstained" : "done";
    } catch (error) {
      botTurn.dataset.state = "error";
      box.appendChild(el("p", "note error", error.message));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text || send.disabled) return;
    send.disabled = true;
    question.value = "";
    try {
      await ask(text);
    } finally {
      send.disabled = false;
      question.focus();
    }
  });

  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  document.getElementById("clear").addEventListener("click", () => {
    history.length = 0;
    turns.replaceChildren();
    closePanel();
    question.focus();
  });
  document.getElementById("panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closePanel();
  });
})();
