// The admin page: upload files, delete an article's file, start a rebuild and follow it until it ends.
// Everything from the server is put in the page with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 700;
const WATCH_DELAY_MS = 2500; // a server run with --watch starts its own rebuild after a change: show it too
let wasRunning = false; // a build was seen running: list the articles afresh when it ends
let timer = null;

function schedule(ms) {
  // One status poll pending at a time, whoever asks for it.
  clearTimeout(timer);
  timer = setTimeout(() => follow().catch((error) => { $("rebuild-status").textContent = `Status unavailable: ${error.message}`; }), ms);
}

async function call(method, url, body) {
  const response = await fetch(url, { method, body, headers: { Accept: "application/json" }, credentials: "same-origin" });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
    throw new Error(`${response.status}: ${detail}`);
  }
  return data;
}

function line(list, text, kind) {
  const item = document.createElement("li");
  item.textContent = text;
  if (kind) item.className = kind;
  list.append(item);
  return item;
}

async function upload(event) {
  event.preventDefault();
  const results = $("upload-results");
  results.replaceChildren();
  const replace = $("upload-replace").checked;
  for (const file of $("upload-files").files) {
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const saved = await call("POST", `/api/admin/upload?replace=${replace}`, form);
      const note = saved.skipped.length ? `; left out: ${saved.skipped.map((s) => `${s.path} (${s.reason})`).join("; ")}` : "";
      line(results, `${saved.name}: saved, ${saved.articles} article(s)${saved.replaced ? ", replacing the old file" : ""}${note}`, "ok");
    } catch (error) {
      line(results, `${file.name}: refused, ${error.message}`, "error");
    }
  }
  $("upload-form").reset();
  schedule(WATCH_DELAY_MS);
}

async function deleteFile(button) {
  if (!window.confirm(`Delete ${button.dataset.file} from the corpus folder? Every article in it goes at the next rebuild.`)) return;
  const row = button.closest("tr");
  try {
    const result = await call("DELETE", `/api/admin/articles/${encodeURIComponent(button.dataset.articleId)}/file`);
    row.classList.add("deleted");
    button.disabled = true;
    button.textContent = `Deleted ${result.deleted}`;
    schedule(WATCH_DELAY_MS);
  } catch (error) {
    button.textContent = `Not deleted: ${error.message}`;
  }
}

function showSummary(status) {
  const box = $("rebuild-summary");
  box.replaceChildren();
  if (status.last_error) line(box.appendChild(document.createElement("ul")), `Failed: ${status.last_error}`, "error");
  const summary = status.last_summary;
  if (!summary) return;
  const list = box.appendChild(document.createElement("ul"));
  list.id = "summary-list";
  line(list, `added ${summary.added}, changed ${summary.changed}, unchanged ${summary.unchanged}, removed ${summary.removed}, skipped ${summary.skipped.length}`);
  for (const skipped of summary.skipped) line(list, `skipped ${skipped.path}: ${skipped.reason}`, "skipped");
}

async function follow() {
  const status = await call("GET", "/api/index/status");
  const figures = status.total ? ` ${status.done}/${status.total}` : "";
  $("rebuild-status").textContent = status.running
    ? `Rebuilding: ${status.stage}${figures}`
    : status.finished_at ? `Last rebuild ${status.stage} at ${new Date(status.finished_at * 1000).toLocaleTimeString()}` : "";
  $("rebuild").disabled = status.running;
  showSummary(status);
  if (status.running) {
    wasRunning = true;
    schedule(POLL_MS);
  } else if (wasRunning) {
    wasRunning = false;
    await refreshArticles();
  }
}

async function rebuild() {
  $("rebuild").disabled = true;
  $("rebuild-status").textContent = "Starting a rebuild…";
  try {
    await call("POST", "/api/index/rebuild");
  } catch (error) {
    $("rebuild-status").textContent = `Rebuild not started: ${error.message}`;
    $("rebuild").disabled = false;
    return;
  }
  wasRunning = true;
  schedule(0);
}

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
  return td;
}

async function refreshArticles() {
  const params = new URLSearchParams(window.location.search);
  const page = await call("GET", `/api/admin/articles?q=${encodeURIComponent(params.get("q") || "")}&offset=${Number(params.get("offset") || 0)}&limit=25`);
  const body = $("articles").tBodies[0];
  body.replaceChildren();
  for (const article of page.articles) {
    const row = body.insertRow();
    row.dataset.articleId = article.id;
    const link = document.createElement("a");
    link.href = `/articles/${encodeURIComponent(article.id)}`;
    link.textContent = article.title || "(untitled)";
    row.insertCell().append(link);
    cell(row, article.source);
    cell(row, article.published.slice(0, 10));
    cell(row, article.path).className = "file";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "delete secondary";
    button.dataset.articleId = article.id;
    button.dataset.file = article.path.split("#")[0];
    button.textContent = "Delete file";
    row.insertCell().append(button);
  }
  const shown = page.articles.length;
  $("article-count").textContent = page.total
    ? `${page.offset + 1}–${page.offset + shown} of ${page.total} article${page.total === 1 ? "" : "s"}`
    : "No articles.";
}

$("upload-form").addEventListener("submit", upload);
$("rebuild").addEventListener("click", rebuild);
$("articles").addEventListener("click", (event) => {
  const button = event.target.closest("button.delete");
  if (button) deleteFile(button);
});
schedule(0);
