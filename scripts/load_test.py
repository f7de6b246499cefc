"""Load test for a running `byline serve` (not a unit test).

N concurrent clients ask questions on POST /api/ask for T seconds and we count 200s, 429s, 5xx
(must be 0), other statuses and transport errors, with p50/p95 latency. Clients that get 429 wait
`Retry-After` (capped by --backoff-max) like a polite client would.

With --rebuild-after S --admin-token T --edit FILE: after S seconds an article in the *served*
corpus folder is edited, POST /api/index/rebuild is called, the script waits for the build to
finish, then asks a question about the edit and checks that the answer's cited passages (or text)
contain the new sentence, all while the load keeps running.

    python scripts/load_test.py --url http://127.0.0.1:8000 --clients 20 --seconds 60 --out results/load.json \\
        --rebuild-after 15 --admin-token T --edit /tmp/corpus/autos/dongfeng-italy-talks.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx

QUESTIONS = [
    "Why is Italy courting Dongfeng?",
    "What did Stellantis say about Chinese carmakers?",
    "What happened to the Harbour marathon record?",
    "Did the central bank change interest rates?",
    "What new beetle species was described?",
    "Why does Dongfeng want Italy?",
]
EDIT_TEXT = "\n\nDongfeng said its first car built in Italy would be named the Aurora Sprint, a small electric hatchback.\n"
EDIT_QUESTION = "What will Dongfeng's first car built in Italy be named?"
EDIT_EXPECT = "Aurora Sprint"


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.0
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


class Tally:
    """Outcomes and latencies of every request."""

    def __init__(self) -> None:
        self.statuses: Counter[str] = Counter()
        self.latency_ok: list[float] = []
        self.latency_all: list[float] = []
        self.errors: Counter[str] = Counter()

    def add(self, status: int | None, seconds: float, error: str | None = None) -> None:
        if status is None:
            self.statuses["transport_error"] += 1
            self.errors[error or "?"] += 1
            return
        key = "200" if status == 200 else "429" if status == 429 else "5xx" if status >= 500 else "other"
        self.statuses[key] += 1
        self.latency_all.append(seconds)
        if status == 200:
            self.latency_ok.append(seconds)
        elif status != 429:
            self.errors[f"HTTP {status}"] += 1

    def summary(self) -> dict:
        rounded = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {
            "requests": sum(self.statuses.values()),
            "ok_200": self.statuses["200"],
            "too_many_429": self.statuses["429"],
            "server_errors_5xx": self.statuses["5xx"],
            "other_status": self.statuses["other"],
            "transport_errors": self.statuses["transport_error"],
            "latency_200_p50_s": rounded(percentile(self.latency_ok, 50)),
            "latency_200_p95_s": rounded(percentile(self.latency_ok, 95)),
            "latency_all_p50_s": rounded(percentile(self.latency_all, 50)),
            "latency_all_p95_s": rounded(percentile(self.latency_all, 95)),
            "errors": dict(self.errors),
        }


async def client_loop(number: int, http: httpx.AsyncClient, stop_at: float, tally: Tally, backoff_max: float) -> None:
    """One client: ask, record, back off on 429, repeat until the deadline."""
    turn = number
    while time.monotonic() < stop_at:
        question = QUESTIONS[turn % len(QUESTIONS)]
        turn += 1
        started = time.monotonic()
        try:
            response = await http.post("/api/ask", json={"question": question})
        except httpx.HTTPError as error:
            tally.add(None, time.monotonic() - started, f"{type(error).__name__}: {error}")
            await asyncio.sleep(0.5)
            continue
        tally.add(response.status_code, time.monotonic() - started)
        if response.status_code == 429:
            await asyncio.sleep(min(backoff_max, float(response.headers.get("Retry-After", "1"))))


async def ask_until_answered(http: httpx.AsyncClient, question: str, tally: Tally, deadline: float) -> dict:
    """Ask once, retrying politely on 429, and count the requests with the rest."""
    while time.monotonic() < deadline:
        started = time.monotonic()
        response = await http.post("/api/ask", json={"question": question})
        tally.add(response.status_code, time.monotonic() - started)
        if response.status_code == 200:
            return response.json()
        if response.status_code != 429:
            raise RuntimeError(f"check question got HTTP {response.status_code}: {response.text[:300]}")
        await asyncio.sleep(min(2.0, float(response.headers.get("Retry-After", "1"))))
    raise RuntimeError("no answer to the check question before the deadline")


def mentions(answer: dict, expect: str) -> dict:
    """Where the expected text shows up in an Answer JSON (its text, cited passages, nearest hits)."""
    return {
        "answer_text": expect in answer.get("answer", ""),
        "cited_passages": any(expect in c.get("chunk_text", "") for c in answer.get("citations", [])),
        "nearest": any(expect in h.get("text", "") for h in answer.get("nearest", [])),
    }


async def search_mentions(http: httpx.AsyncClient, question: str, expect: str) -> bool:
    """Whether the retrieved passages (no LLM, so not queued) contain the expected text."""
    hits = (await http.get("/api/search", params={"q": question, "k": 5})).json()["hits"]
    return any(expect in hit["text"] for hit in hits)


async def rebuild_during_load(http: httpx.AsyncClient, args, tally: Tally, started: float) -> dict:
    """Edit an article, rebuild, wait for the swap, and check that answers reflect the edit."""
    await asyncio.sleep(args.rebuild_after)
    since = lambda: round(time.monotonic() - started, 1)  # noqa: E731
    report: dict = {"edited_file": str(args.edit), "question": EDIT_QUESTION, "expect": EDIT_EXPECT}
    report["search_before_edit"] = await search_mentions(http, EDIT_QUESTION, EDIT_EXPECT)
    with open(args.edit, "a", encoding="utf-8") as file:
        file.write(EDIT_TEXT)
    report["edited_at_s"] = since()
    admin = {"Authorization": f"Bearer {args.admin_token}"}
    response = await http.post("/api/index/rebuild", headers=admin)
    report["rebuild_http_status"] = response.status_code
    response.raise_for_status()
    while True:
        status = (await http.get("/api/index/status")).json()
        if not status["running"]:
            break
        await asyncio.sleep(0.25)
    report["swapped_at_s"] = since()
    report["swapped_during_load"] = report["swapped_at_s"] < args.seconds
    report["rebuild_status"] = status
    report["search_after_swap"] = await search_mentions(http, EDIT_QUESTION, EDIT_EXPECT)
    answer = await ask_until_answered(http, EDIT_QUESTION, tally, time.monotonic() + 300)
    report["answered_at_s"] = since()
    report["answer_after_swap"] = mentions(answer, EDIT_EXPECT)
    report["answer_after_swap_text"] = answer.get("answer")
    report["reflects_edit"] = (
        not report["search_before_edit"] and report["search_after_swap"] and (report["answer_after_swap"]["answer_text"] or report["answer_after_swap"]["cited_passages"])
    )
    return report


async def run(args) -> dict:
    """Run the clients (and the optional rebuild) and return the JSON report."""
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.clients + 4)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=args.timeout, limits=limits) as http:
        ready = (await http.get("/readyz")).json()
        tally = Tally()
        started = time.monotonic()
        stop_at = started + args.seconds
        clients = [client_loop(n, http, stop_at, tally, args.backoff_max) for n in range(args.clients)]
        rebuild = [rebuild_during_load(http, args, tally, started)] if args.rebuild_after is not None else []
        results = await asyncio.gather(*clients, *rebuild, return_exceptions=True)
        elapsed = time.monotonic() - started
    failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    summary = tally.summary()
    report = {
        "url": args.url,
        "clients": args.clients,
        "seconds": args.seconds,
        "elapsed_s": round(elapsed, 1),
        "backoff_max_s": args.backoff_max,
        "server": ready,
        **summary,
        "task_failures": failures,
        "no_request_failed": summary["server_errors_5xx"] == 0 and summary["transport_errors"] == 0 and summary["other_status"] == 0,
    }
    if rebuild and not isinstance(results[-1], BaseException):
        report["rebuild"] = results[-1]
    return report


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run, print and save the report; exit 1 if any request failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--timeout", type=float, default=300, help="per-request timeout in seconds")
    parser.add_argument("--backoff-max", type=float, default=2.0, help="cap on the Retry-After wait after a 429")
    parser.add_argument("--api-key", default="", help="sent as a bearer token when the server has BYLINE_API_KEYS")
    parser.add_argument("--rebuild-after", type=float, help="seconds into the run to edit, rebuild and check")
    parser.add_argument("--admin-token", default="", help="BYLINE_ADMIN_TOKEN of the server")
    parser.add_argument("--edit", type=Path, help="article file in the served corpus folder to edit")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)
    if args.rebuild_after is not None and not (args.admin_token and args.edit):
        parser.error("--rebuild-after needs --admin-token and --edit")
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    ok = report["no_request_failed"] and not report["task_failures"]
    if "rebuild" in report:
        ok = ok and report["rebuild"]["reflects_edit"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
