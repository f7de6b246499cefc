"""The web layer's limits with fakes: API keys, the admin-only background rebuild, the bounded queue
(429 + Retry-After), and freeing the model when a client goes away."""

from __future__ import annotations

import threading
import time

import anyio

from index.errors import IndexBusy
from index.types import BuildSummary, Skipped
from server.api.limits import AnswerGate, stream_in_thread
from server.api.rebuild import Rebuilder
from server.settings import Settings
from server.answering.types import Delta

from conftest import FakeEmbedder
from test_app import DONGFENG, FakeAnswerer, FakeSearcher, client, make_client  # noqa: F401 - client is a fixture


class FakeBuild:
    """Stands in for build_index: reports progress, waits on an event, returns a summary."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list = []

    def __call__(self, corpus, index_dir, embedder, chunk, *, limits, progress):
        self.calls.append((corpus, index_dir))
        progress("embedding", 1, 4)
        assert self.release.wait(10)
        return BuildSummary(added=1, changed=2, removed=1, skipped=(Skipped("bad.pdf", "not a text file"),), seconds=0.5)


def test_rebuild_needs_admin_token_runs_in_background_and_reports(tmp_path):
    test_client, searcher, _ = make_client(admin_token="s3cret", corpus_dir=tmp_path)
    build = FakeBuild()
    with test_client:
        test_client.app.state.rebuilder.build = build
        assert test_client.post("/api/index/rebuild").status_code == 401
        assert test_client.post("/api/index/rebuild", headers={"Authorization": "Bearer wrong"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        started = test_client.post("/api/index/rebuild", headers=auth)
        assert started.status_code == 202 and started.json()["running"] is True
        busy = test_client.post("/api/index/rebuild", headers=auth)
        assert busy.status_code == 409 and busy.json()["error"] == "IndexBusy"
        # still answering from the old index while the build runs
        assert test_client.post("/api/ask", json={"question": "Why?"}).status_code == 200
        assert searcher.reloads == 0
        status = test_client.get("/api/index/status").json()
        assert status["running"] is True and (status["stage"], status["done"], status["total"]) == ("embedding", 1, 4)
        build.release.set()
        test_client.app.state.rebuilder.wait(10)
        status = test_client.get("/api/index/status").json()
        assert status["running"] is False and status["last_error"] is None and searcher.reloads == 1
        assert status["generation"] == "g2" and status["last_summary"]["changed"] == 2
        assert status["last_summary"]["skipped"] == [{"path": "bad.pdf", "reason": "not a text file"}]
        assert build.calls == [(tmp_path, test_client.app.state.settings.index_dir)]


def test_rebuild_disabled_without_admin_token(client):
    response = client.post("/api/index/rebuild", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403 and "BYLINE_ADMIN_TOKEN" in response.json()["detail"]


def test_failed_build_shows_in_status_and_keeps_old_index():
    def busy_build(*args, **kwargs):
        raise IndexBusy("another build holds the lock")

    searcher = FakeSearcher()
    rebuilder = Rebuilder(Settings(), FakeEmbedder(), searcher, build=busy_build)
    rebuilder.start()
    status = rebuilder.wait(10)
    assert status.last_error == "IndexBusy: another build holds the lock" and status.stage == "failed"
    assert searcher.reloads == 0 and not status.running


def test_queue_full_gets_429_with_retry_after():
    release = threading.Event()
    test_client, _, answerer = make_client(FakeAnswerer(gate=release), queue_size=1)
    results: list = []
    with test_client:
        def ask():
            results.append(test_client.post("/api/ask", json={"question": "Why?"}).status_code)

        workers = [threading.Thread(target=ask) for _ in range(2)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 10
        while test_client.app.state.gate.admitted < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = test_client.post("/api/ask", json={"question": "Why?"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1 and refused.json()["error"] == "QueueFull"
        streamed = test_client.post("/api/ask", json={"question": "Why?", "stream": True})
        assert streamed.status_code == 429
        release.set()
        for worker in workers:
            worker.join(10)
        assert results == [200, 200] and test_client.app.state.gate.admitted == 0
        assert test_client.post("/api/ask", json={"question": "Why?"}).status_code == 200


def test_closing_a_stream_early_closes_the_generator_and_frees_the_gate():
    answerer = FakeAnswerer(pieces=("a ", "b ", "c "))
    gate = AnswerGate(queue_size=0)

    async def consume_one():
        gate.admit()
        stream = stream_in_thread(gate, lambda: answerer.stream("q"))
        first = await stream.__anext__()
        await stream.aclose()
        gate.leave()
        return first

    assert anyio.run(consume_one) == Delta("a ")
    assert answerer.closed == 1 and answerer.finished == 0 and gate.admitted == 0
    assert not gate._turn.locked()


class SlowFirstAnswerer(FakeAnswerer):
    """The first answer would take ~50 s (a token every 50 ms); later ones are instant."""

    def stream(self, question, history=None, k=None, filters=None, **options):
        if not self.calls:
            self.calls.append(question)
            try:
                for i in range(1000):
                    time.sleep(0.05)
                    yield Delta(f"w{i} ")
            except GeneratorExit:
                self.closed += 1
                raise
            return
        yield from super().stream(question, history, k, filters, **options)


def test_client_disconnect_over_a_real_socket_frees_the_model():
    import httpx
    import uvicorn

    answerer = SlowFirstAnswerer()
    test_client, _, _ = make_client(answerer, queue_size=2)
    config = uvicorn.Config(test_client.app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            with http.stream("POST", "/api/ask", json={"question": "slow", "stream": True}) as response:
                assert next(response.iter_lines()) == "event: delta"
            started = time.monotonic()
            second = http.post("/api/ask", json={"question": "next"})
            assert second.status_code == 200 and time.monotonic() - started < 5
        assert answerer.closed == 1 and test_client.app.state.gate.admitted == 0
    finally:
        server.should_exit = True
        thread.join(10)
