// Byline chat: streams /api/ask over server-sent events and shows cited passages.
// Every piece of article or answer text goes into the page through textContent, never as HTML.
// Only checked text is ever shown: the server's `delta` events carry whole checked sentences.
// The conversation is kept in localStorage until "New conversation".
"use strict";

(function () {
  const form = document.getElementById("ask-form");
  const question = document.getElementById("question");
  const send = document.getElementById("send");
  const stop = document.getElementById("stop");
  const turns = document.getElementById("turns");
  const panel = document.getElementById("panel");
  const STORAGE_KEY = "byline.conversation";
  const saved = [];            // finished turns {question, state, answer, partial}, as kept in localStorage
  const articles = new Map();  // article id -> article JSON (cache)
  let openedBy = null;         // the marker button that opened the panel, to return focus
  let answering = null;        // the AbortController of the answer streaming now

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
    button.setAttribute("aria-label", "Source " + n + ": " + citation.title);
    button.addEventListener("click", () => openPanel(citation, button));
    return button;
  }

  // Checked text with its [n] markers: a run of markers that ends a sentence and names only the answer's
  // own citations becomes buttons; any other "[n]" (one an article wrote, inside a quote) stays text.
  // The buttons and the full stop after them never wrap apart.
  const MARKER_RUN = /((?:\[\d+\])+)([.!?]?)(?=\s|$)/g;
  function appendChecked(parent, text, byNumber) {
    let last = 0;
    for (const match of text.matchAll(MARKER_RUN)) {
      const numbers = Array.from(match[1].matchAll(/\d+/g), (m) => Number(m[0]));
      if (!numbers.every((n) => byNumber.has(n))) continue;
      parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      const run = el("span", "cite-run");
      for (const n of numbers) run.appendChild(citeButton(n, byNumber.get(n)));
      run.appendChild(document.createTextNode(match[2]));
      parent.appendChild(run);
      last = match.index + match[0].length;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
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

  // The sources list is numbered by the markers themselves: item [3] is citation 3.
  function renderSources(box, citations) {
    const list = el("ol", "sources");
    list.setAttribute("aria-label", "Sources");
    for (const c of citations) {
      const item = el("li");
      item.value = c.n;
      item.appendChild(citeButton(c.n, c));
      item.appendChild(el("span", "source-title", " " + (c.title || c.article_id)));
      const meta = [c.source, (c.published || "").slice(0, 10)].filter(Boolean).join(" · ");
      if (meta) item.appendChild(el("span", "meta", " — " + meta));
      list.appendChild(item);
    }
    box.appendChild(list);
  }

  // The answer and its sources as plain text, for the clipboard.
  function answerAsText(answer) {
    const lines = [answer.answer];
    if (answer.citations.length) lines.push("", "Sources:");
    for (const c of answer.citations) {
      const meta = [c.source, (c.published || "").slice(0, 10)].filter(Boolean).join(", ");
      lines.push("[" + c.n + "] " + (c.title || c.article_id) + (meta ? " (" + meta + ")" : "") + (safeUrl(c.url) ? " " + c.url : ""));
      if (c.quote) lines.push('    "' + c.quote.split(/\s+/).join(" ").trim() + '"');
    }
    return lines.join("\n");
  }

  function copyButton(answer) {
    const button = el("button", "copy secondary", "Copy answer");
    button.type = "button";
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(answerAsText(answer));
        button.textContent = "Copied";
      } catch (error) {
        button.textContent = "Copy failed: " + error.message;
      }
      setTimeout(() => { button.textContent = "Copy answer"; }, 2000);
    });
    return button;
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
    appendChecked(body, answer.answer, byNumber);
    box.appendChild(body);
    if (answer.message) box.appendChild(el("p", "note", answer.message));
    if (answer.citations.length) renderSources(box, answer.citations);
    if (answer.draft) {
      const draft = el("details", "draft");
      draft.appendChild(el("summary", null, "Unchecked draft (the model's own text, not checked against the sources)"));
      draft.appendChild(el("p", null, answer.draft));
      box.appendChild(draft);
    }
    const tools = el("p", "tools");
    tools.appendChild(copyButton(answer));
    box.appendChild(tools);
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

  // --- the conversation, kept in localStorage ----------------------------------------------------
  const MAX_TURNS = 40;  // /api/ask takes at most 40 earlier turns; the answerer reads only the latest questions
  function history() {
    const turns = [];
    for (const turn of saved) {
      if (turn.state === "done") turns.push({ role: "user", content: turn.question }, { role: "assistant", content: turn.answer.answer });
    }
    return turns.slice(-MAX_TURNS);
  }

  function store() {
    for (;;) {
      try {
        localStorage.setItem(STORAGE_KEY, JSON.stringify(saved));
        return;
      } catch (error) {  // over the quota (or storage is off): forget the oldest turns first
        if (saved.length === 0) return;
        saved.shift();
      }
    }
  }

  function addTurn(text) {
    const userTurn = el("li", "turn user");
    userTurn.appendChild(el("p", "question", text));
    const botTurn = el("li", "turn assistant");
    const box = el("div", "answer");
    botTurn.appendChild(box);
    turns.append(userTurn, botTurn);
    return { botTurn, box };
  }

  function renderSaved(turn) {
    const { botTurn, box } = addTurn(turn.question);
    botTurn.dataset.state = turn.state;
    if (turn.answer) renderAnswer(box, turn.answer);
    else {
      const partial = el("p", "answer-text");
      appendChecked(partial, turn.partial.text, new Map(turn.partial.citations.map((c) => [c.n, c])));
      box.appendChild(partial);
      box.appendChild(el("p", "note stopped", "Stopped: the answer was cancelled."));
    }
  }

  function restore() {
    let kept = [];
    try {
      kept = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
    } catch (ignored) { /* unreadable: start afresh */ }
    for (const turn of Array.isArray(kept) ? kept : []) {
      if (!turn || typeof turn.question !== "string" || !(turn.answer || turn.partial)) continue;
      saved.push(turn);
      renderSaved(turn);
    }
    if (saved.length) turns.lastElementChild.scrollIntoView({ block: "end" });
  }

  // --- asking ----------------------------------------------------------------------------------
  async function ask(text, signal) {
    const { botTurn, box } = addTurn(text);
    botTurn.dataset.state = "waiting";
    const live = el("p", "answer-text live");
    box.appendChild(live);
    botTurn.scrollIntoView({ block: "end" });
    const payload = { question: text, history: history(), stream: true, filters: filters() };
    const streamed = { text: "", citations: [] };
    const byNumber = new Map();
    let final = null;
    try {
      const response = await fetch("/api/ask", { method: "POST", headers: headers(), body: JSON.stringify(payload), signal });
      if (!response.ok) throw new Error(await errorText(response));
      await readEvents(response, (name, data) => {
        if (name === "delta") {
          botTurn.dataset.state = "streaming";
          for (const c of data.citations) byNumber.set(c.n, c);
          streamed.text += data.text;
          streamed.citations.push(...data.citations);
          appendChecked(live, data.text, byNumber);
        } else if (name === "final") {
          final = data;
          renderAnswer(box, data);
        } else if (name === "error") {
          throw new Error(data.detail);
        }
      });
      if (!final) throw new Error("the answer stream ended early");
      botTurn.dataset.state = final.abstained ? "abstained" : "done";
      saved.push({ question: text, state: botTurn.dataset.state, answer: final });
    } catch (error) {
      if (error.name !== "AbortError") {
        botTurn.dataset.state = "error";
        box.appendChild(el("p", "note error", error.message));
        return;
      }
      if (!botTurn.isConnected) return;  // "New conversation" cancelled it: nothing to keep
      botTurn.dataset.state = "stopped";
      box.appendChild(el("p", "note stopped", "Stopped: the answer was cancelled."));
      saved.push({ question: text, state: "stopped", partial: streamed });
    }
    store();
  }

  function setAnswering(controller) {
    answering = controller;
    send.hidden = Boolean(controller);
    send.disabled = Boolean(controller);
    stop.hidden = !controller;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text || answering) return;
    const controller = new AbortController();
    setAnswering(controller);
    question.value = "";
    try {
      await ask(text, controller.signal);
    } finally {
      setAnswering(null);
      question.focus();
    }
  });

  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  stop.addEventListener("click", () => {
    if (answering) answering.abort();
  });
  document.getElementById("clear").addEventListener("click", () => {
    if (answering) answering.abort();
    saved.length = 0;
    localStorage.removeItem(STORAGE_KEY);
    turns.replaceChildren();
    closePanel();
    question.focus();
  });
  document.getElementById("panel-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closePanel();
  });
  restore();
})();
