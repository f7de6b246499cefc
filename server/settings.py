"""Byline's settings: one pydantic-settings class, read from BYLINE_* variables, built once at the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.chunking import ChunkSettings
from index.embed import DEFAULT_CACHE_DIR, DEFAULT_EMBEDDING_MODEL, EmbedderSpec
from index.types import CorpusLimits

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_MODEL_BUDGET_S = 2.3  # the whole answer is due in 2.5 s (p50, 2 cores); checking the last sentence takes the rest


class Settings(BaseSettings):
    """Every knob of Byline. Each field is also the environment variable BYLINE_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="BYLINE_", env_file=None, extra="ignore")

    # Index
    store: Literal["local", "milvus"] = Field(
        default="local",
        description="Where the index lives: `local` (FAISS + BM25 + SQLite files in BYLINE_INDEX_DIR) or `milvus`.",
    )
    index_dir: Path = Field(
        default=Path(user_data_dir("byline")) / "index",
        description="Folder holding the built index (manifest, FAISS vectors, SQLite metadata).",
    )
    milvus_uri: str = Field(
        default=str(Path(user_data_dir("byline")) / "milvus.db"),
        description="With BYLINE_STORE=milvus: a file ending in .db runs Milvus Lite in-process; http://host:19530 reaches a Milvus server or cluster.",
    )
    milvus_collection: str = Field(
        default="byline",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$",
        description="Prefix of the Milvus collections holding the index (<prefix>_chunks_d<dim>, _articles, _meta).",
    )
    reload_check_s: float = Field(
        default=2.0,
        ge=0,
        description="How often (seconds) a server looks for an index version another process published; 0: only after its own rebuilds.",
    )
    corpus_dir: Path = Field(
        default=REPO_ROOT / "corpus",
        description="Folder of articles that `byline index` and the rebuild endpoint read.",
    )
    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="Sentence-transformers model: the bundled package name or a model folder.",
    )
    embedding_backend: Literal["auto", "onnx", "torch"] = Field(
        default="auto",
        description=(
            "`onnx`: ONNX Runtime with int8 weights, exported once from the model's own weights (no torch when "
            "searching); `torch`: sentence-transformers on PyTorch, fp32. `auto`: onnx for the bundled model, "
            "torch for any other. An index is searched with the backend it was built with."
        ),
    )
    query_embedding_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Threads one answer's embedding uses (question, evidence sentences); building uses every core.",
    )
    embedding_cache_dir: Path = Field(
        default=DEFAULT_CACHE_DIR, description="Where the ONNX export of the embedding model is kept."
    )
    chunk_words: int = Field(default=200, ge=20, le=2000, description="Target words per chunk.")
    chunk_overlap_words: int = Field(
        default=0,
        ge=0,
        le=500,
        description=(
            "Words of whole sentences repeated between neighbouring chunks. None by default: on MultiHop-RAG 40 "
            "cost 15 % more chunks to embed and retrieved no better (results/retrieval.md)."
        ),
    )
    embed_metadata: bool = Field(
        default=True,
        description="Embed each chunk with its article's title, source and date in front (measured better on MultiHop-RAG).",
    )
    checkpoint_chunks: int = Field(
        default=2048,
        ge=1,
        description="A build saves its embedded vectors every this many chunks, so a killed or stopped build resumes there.",
    )
    max_file_bytes: int = Field(
        default=20_000_000, ge=1, description="Corpus files larger than this are skipped."
    )
    # Per-file limits against hostile corpus files: past one, the file (or article) is skipped with the reason.
    max_records_per_file: int = Field(
        default=10_000, ge=1, description="A JSON/JSONL file (or feed) holding more records than this is skipped."
    )
    max_chunks_per_article: int = Field(
        default=500, ge=1, description="An article that would make more chunks than this is skipped."
    )
    max_metadata_chars: int = Field(
        default=1_000, ge=1, description="A longer title, source, url, author or date is left out, with a warning."
    )

    # Retrieval
    k: int = Field(default=10, ge=1, le=100, description="Passages retrieved per question.")

    # LLM
    llm_backend: Literal["llama_cpp", "openai"] = Field(
        default="llama_cpp", description="`llama_cpp` runs a GGUF in-process; `openai` calls an OpenAI-compatible server."
    )
    llm_model_path: Path | None = Field(
        default=None, description="GGUF file for llama_cpp; empty means the bundled Gemma 3 270M Q4_K_M."
    )
    llm_cache_dir: Path = Field(
        default=Path(user_data_dir("byline")) / "models",
        description="Where the bundled GGUF is assembled once.",
    )
    llm_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for llama.cpp; empty means the cores other processes leave idle, checked before each generation.",
    )
    llm_context: int = Field(default=2048, ge=512, le=131072, description="Context window in tokens for llama.cpp.")
    llm_base_url: str = Field(
        default="http://127.0.0.1:8080/v1", description="Base URL of the OpenAI-compatible server (openai backend)."
    )
    llm_model: str = Field(default="default", description="Model name sent to the OpenAI-compatible server.")
    llm_api_key: str = Field(default="", description="API key for the OpenAI-compatible server, if it needs one.")
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds before a generation is abandoned.")
    llm_prompt_style: Literal["auto", "completion", "chat"] = Field(
        default="auto",
        description=(
            "How to prompt the model: `completion` (plain prompt and stop sequences, for base models) or `chat` "
            "(messages). `auto`: for llama_cpp, chat only if the GGUF has a chat template and its name marks it "
            "instruction-tuned (it/instruct/chat), else completion; for openai, chat."
        ),
    )
    llm_stream: bool = Field(
        default=True, description="Ask the OpenAI-compatible server to stream tokens; false sends one request, one reply."
    )
    llm_budget_s: float | None = Field(
        default=None,
        ge=0,
        le=3600,
        description=(
            "Seconds from the question to the end of the model's writing: the prompt holds only the evidence the model "
            "can read in time (at its measured speed), and writing stops at the budget, keeping the checked sentences "
            "written by then. Empty: 2.3 for the bundled model (small and slow on a CPU), none for any other GGUF or the "
            "openai backend, so a capable model writes the whole answer; 0: no budget."
        ),
    )
    max_answer_tokens: int = Field(default=160, ge=16, le=4096, description="Cap on generated tokens per answer.")
    evidence_tokens: int = Field(
        default=700, ge=100, le=100_000, description="Token budget for the numbered passages in the prompt."
    )
    use_llm: bool = Field(
        default=True,
        description=(
            "Let the model add sentences (each checked) after the evidence answer; false answers from the evidence "
            "alone, with no model call."
        ),
    )
    show_draft: bool = Field(
        default=False,
        description="Also return the model's unchecked text in `draft` (labelled an unchecked draft; never part of the answer).",
    )
    abstain_threshold: float = Field(
        default=0.3966,
        ge=-1.0,
        le=1.0,
        description=(
            "Abstain when the best embedding similarity between the question and a retrieved sentence is below "
            "this (set from the dev set's null queries; see results/answer.md)."
        ),
    )
    repeat_penalty: float = Field(default=1.15, ge=1.0, le=2.0, description="Repeat penalty for answer generation.")

    # Server
    host: str = Field(default="127.0.0.1", description="Address `byline serve` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `byline serve` listens on.")
    admin_token: str = Field(default="", description="Token for /admin, its endpoints and POST /api/index/rebuild; empty disables them.")
    api_keys: list[str] = Field(
        default_factory=list,
        description="Keys (JSON list) needed for everything but /healthz and /static/: a header, or the login form's cookie; empty means open.",
    )
    watch: bool = Field(
        default=False, description="`byline serve`: rebuild incrementally whenever files in the corpus folder change."
    )
    watch_debounce_ms: int = Field(
        default=1600, ge=50, le=60_000, description="Quiet time after the last corpus change before a watch rebuild starts."
    )
    session_hours: float = Field(default=12.0, gt=0, le=24 * 365, description="How long a login cookie stays valid.")
    queue_size: int = Field(default=8, ge=0, le=1000, description="Requests that may wait for the LLM before 429.")
    max_question_chars: int = Field(default=2000, ge=10, description="Longer questions (and search queries) are refused (413).")
    max_message_chars: int = Field(
        default=20_000, ge=10, description="Longer earlier messages (history turns, /v1 messages) are refused (413)."
    )
    max_history_chars: int = Field(
        default=60_000, ge=10, description="A longer history (all earlier messages together) is refused (413)."
    )
    max_request_bytes: int = Field(default=1_000_000, ge=1000, description="Larger JSON request bodies are refused (413).")

    def model_budget_s(self) -> float:
        """The model's time budget in seconds (`llm_budget_s`, or the bundled model's default); 0 means none."""
        if self.llm_budget_s is not None:
            return self.llm_budget_s
        return BUNDLED_MODEL_BUDGET_S if self.llm_backend == "llama_cpp" and self.llm_model_path is None else 0.0

    def chunk_settings(self) -> ChunkSettings:
        """How articles are chunked and embedded; recorded in, and checked against, the index manifest."""
        return ChunkSettings(self.chunk_words, self.chunk_overlap_words, self.embed_metadata)

    def corpus_limits(self) -> CorpusLimits:
        """The per-file limits a build reads the corpus under."""
        return CorpusLimits(
            self.max_file_bytes, self.max_records_per_file, self.max_chunks_per_article, self.max_metadata_chars
        )

    def embedder_spec(self) -> EmbedderSpec:
        """Which embedder to load (see index.embed.load_embedder)."""
        return EmbedderSpec(self.embedding_model, self.embedding_backend, self.embedding_cache_dir)
