"""LLM backends behind one interface: `generate(prompt_or_messages, **limits) -> Iterator[str]`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.llm.base import LLM, Messages

if TYPE_CHECKING:
    from server.settings import Settings

__all__ = ["LLM", "Messages", "make_llm"]


def make_llm(settings: Settings) -> LLM:
    """The backend named by `settings.llm_backend`, built from the settings (backends are imported lazily)."""
    if settings.llm_backend == "llama_cpp":
        from server.llm.llama_cpp import LlamaCppLLM, bundled_model_path

        path = settings.llm_model_path or bundled_model_path(settings.llm_cache_dir)
        return LlamaCppLLM(
            path,
            n_ctx=settings.llm_context,
            n_threads=settings.llm_threads,
            prompt_style=settings.llm_prompt_style,
            timeout=settings.llm_timeout,
        )
    if settings.llm_backend == "openai":
        from server.llm.openai_compat import OpenAICompatibleLLM

        return OpenAICompatibleLLM(
            settings.llm_base_url,
            settings.llm_model,
            settings.llm_api_key,
            settings.llm_timeout,
            is_chat=settings.llm_prompt_style != "completion",
            context_tokens=settings.llm_context,
            stream=settings.llm_stream,
        )
    raise ValueError(f"unknown llm_backend {settings.llm_backend!r}: expected 'llama_cpp' or 'openai'")
