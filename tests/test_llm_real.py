"""The LLM backends with the bundled Gemma 3 270M: in-process llama.cpp, and a real llama_cpp.server on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from index.errors import LLMUnavailable
from server.settings import REPO_ROOT
from server.llm import make_llm
from server.llm.llama_cpp import LlamaCppLLM, bundled_model_path
from server.llm.openai_compat import OpenAICompatibleLLM
from server.llm.streaming import stop_on_repeats
from server.settings import Settings

pytestmark = pytest.mark.real
pytest.importorskip("llama_cpp")

PROMPT = "The Eiffel Tower is a wrought-iron tower in"


@pytest.fixture(scope="module")
def gguf():
    """The bundled GGUF, assembled once into the default cache folder."""
    return bundled_model_path(Settings().llm_cache_dir)


@pytest.fixture(scope="module")
def llm(gguf):
    model = LlamaCppLLM(gguf, n_ctx=2048)
    yield model
    model.close()


def test_make_llm_loads_the_bundled_base_model_as_a_completion_model():
    model = make_llm(Settings())
    try:
        assert model.is_chat is False  # a base model: prompted as completion, with stop sequences
        assert model.context_tokens == 2048 and model.name.endswith("gemma-3-270m-q4_k_m.gguf")
        assert model.count_tokens("Rome wants jobs.") == 4
    finally:
        model.close()


def test_loading_and_generating_print_nothing_to_stderr(gguf):
    script = (
        "import sys; from pathlib import Path; from server.llm.llama_cpp import LlamaCppLLM; "
        f"llm = LlamaCppLLM(Path({str(gguf)!r}), n_ctx=512); print(''.join(llm.generate('Rome is', max_tokens=3)))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() and done.stderr == ""


def test_generates_text_for_a_completion_prompt_within_max_tokens(llm):
    pieces = list(llm.generate(PROMPT, max_tokens=12))
    text = "".join(pieces)
    assert "Paris" in text
    assert 1 <= len(pieces) <= 12  # one piece per token
    assert llm.count_tokens(text) <= 13


def test_honours_stop_sequences(llm):
    free = "".join(llm.generate(PROMPT, max_tokens=24))
    words = free.split()
    assert len(words) >= 4, free
    stop = " " + words[3]
    stopped = "".join(llm.generate(PROMPT, max_tokens=24, stop=[stop]))
    assert stopped == free[: free.index(stop)]  # greedy decoding: the same text, cut before the stop sequence


def test_a_prompt_longer_than_the_context_is_llm_unavailable(llm):
    with pytest.raises(LLMUnavailable, match="exceed context window"):
        list(llm.generate("news " * 3000, max_tokens=8))
    assert not llm._lock.locked()


def test_the_lock_serializes_generations_and_closing_early_frees_it(llm):
    first = llm.generate(PROMPT, max_tokens=200)
    assert next(first)  # the first generation now holds the model
    second_done = threading.Event()
    second_text: list[str] = []

    def run_second():
        second_text.append("".join(llm.generate("Rome is the capital of", max_tokens=4)))
        second_done.set()

    worker = threading.Thread(target=run_second)
    worker.start()
    assert not second_done.wait(1.0), "a second generation ran while the first held the model"
    first.close()  # what a client disconnect does
    assert second_done.wait(60), "closing the first generation did not free the model"
    worker.join()
    assert second_text[0].strip()
    assert not llm._lock.locked()


def test_stop_on_repeats_closes_the_generation_and_frees_the_lock(llm):
    # A base model given a repetitive list keeps repeating it; the guard ends the stream at the first repeat.
    prompt = "Facts:\n- Rome is in Italy.\n- Rome is in Italy.\n- Rome is in Italy.\n-"
    text = "".join(stop_on_repeats(llm.generate(prompt, max_tokens=120, repeat_penalty=1.0), min_chars=8))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert len(lines) == len(set(lines))
    assert not llm._lock.locked()


def test_running_past_the_timeout_is_llm_unavailable(gguf):
    slow = LlamaCppLLM(gguf, n_ctx=512, timeout=0.01)
    try:
        with pytest.raises(LLMUnavailable, match="timeout"):
            list(slow.generate(PROMPT, max_tokens=64))
        assert not slow._lock.locked()
    finally:
        slow.close()


def test_chat_messages_run_with_the_prompt_style_forced_to_chat(gguf):
    chat = LlamaCppLLM(gguf, n_ctx=512, prompt_style="chat")
    try:
        assert chat.is_chat is True
        pieces = list(chat.generate([{"role": "user", "content": "Name the capital of France."}], max_tokens=16))
        assert len(pieces) <= 16 and all(isinstance(piece, str) for piece in pieces)
    finally:
        chat.close()


# --- the OpenAI-compatible backend against a real llama_cpp.server -------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def real_server(gguf, tmp_path_factory):
    """`python -m server.llm.llama_server` (llama_cpp.server, loaded safely) with the bundled model on a free loopback port, with an API key."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "server.llm.llama_server", "--model", str(gguf), "--model_alias", "gemma-270m",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--api_key", "test-key",
        # The bundled GGUF has no chat template, and the server's fallback (llama-2) makes the base model stop at
        # once with empty text; Gemma's turn format at least gets chat text streamed back to parse.
        "--chat_format", "gemma",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(base_url + "/models", headers={"Authorization": "Bearer test-key"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer /v1/models in 90 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def remote(real_server):
    client = OpenAICompatibleLLM(real_server, "gemma-270m", api_key="test-key", timeout=60, is_chat=False)
    yield client
    client.close()


def test_real_server_streams_a_completion(remote, llm):
    pieces = list(remote.generate(PROMPT, max_tokens=12))
    text = "".join(pieces)
    assert "Paris" in text and len(pieces) > 1
    assert text == "".join(llm.generate(PROMPT, max_tokens=12))  # same model, greedy: same text as in-process


def test_real_server_answers_a_completion_without_streaming(remote):
    streamed = "".join(remote.generate(PROMPT, max_tokens=12))
    whole = list(remote.generate(PROMPT, max_tokens=12, stream=False))
    assert len(whole) == 1 and whole[0] == streamed


def test_real_server_honours_stop_sequences(remote):
    free = "".join(remote.generate(PROMPT, max_tokens=24))
    stop = " " + free.split()[3]
    assert "".join(remote.generate(PROMPT, max_tokens=24, stop=[stop])) == free[: free.index(stop)]


def test_real_server_chat_streamed_and_not(remote):
    # A base model is no chat model: the text is real but no good answer, so only its arrival is checked.
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    streamed = "".join(remote.generate(messages, max_tokens=24))
    whole = list(remote.generate(messages, max_tokens=24, stream=False))
    assert len(whole) == 1 and whole[0] == streamed
    assert streamed.strip(), "the server returned no chat text"


def test_real_server_stream_closed_early_leaves_the_server_usable(remote):
    stream = remote.generate(PROMPT, max_tokens=200)
    assert next(stream)
    stream.close()  # a reader that went away: the connection is dropped mid-stream
    assert "Paris" in "".join(remote.generate(PROMPT, max_tokens=12))


def test_real_server_counts_tokens_with_the_models_tokenizer(remote, llm):
    text = "Dongfeng is in talks to build cars in Italy."
    assert abs(remote.count_tokens(text) - llm.count_tokens(text)) <= 1  # the server's count includes BOS


def test_make_llm_reaches_the_real_server_from_settings(real_server):
    settings = Settings(
        llm_backend="openai", llm_base_url=real_server, llm_model="gemma-270m", llm_api_key="test-key",
        llm_prompt_style="completion", llm_stream=False,
    )
    client = make_llm(settings)
    try:
        assert client.is_chat is False
        assert "Paris" in "".join(client.generate(PROMPT, max_tokens=12))
    finally:
        client.close()


def test_real_server_with_a_wrong_key_is_llm_unavailable(real_server):
    client = OpenAICompatibleLLM(real_server, "gemma-270m", api_key="wrong", timeout=30)
    with pytest.raises(LLMUnavailable, match=r"/v1/completions answered HTTP 401"):
        list(client.generate(PROMPT, max_tokens=4))
    client.close()
